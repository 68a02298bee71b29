"""Exact-integer reference model of the TwinMarket curve and fees, for tests and monitors.

The k-th share costs (k−1)² · 1 ether / D, where D divides 1 ether, so prices are exact integers. A trade
of ``amount`` shares from ``supply`` costs the sum over those shares. Each fee is ``price * percent // 1e18``.
"""

from __future__ import annotations

from dataclasses import dataclass

ONE = 10**18


def sum_of_squares(n: int) -> int:
    """Σ_{j=0}^{n−1} j²."""
    return 0 if n == 0 else (n - 1) * n * (2 * n - 1) // 6


def price(supply: int, amount: int, divisor: int) -> int:
    """Price of shares ``supply + 1`` .. ``supply + amount``."""
    if ONE % divisor:
        raise ValueError(f"the curve divisor {divisor} must divide 1 ether")
    return (sum_of_squares(supply + amount) - sum_of_squares(supply)) * (ONE // divisor)


@dataclass(frozen=True)
class Quote:
    price: int
    protocol_fee: int
    subject_fee: int

    @property
    def buy_cost(self) -> int:
        return self.price + self.protocol_fee + self.subject_fee

    @property
    def sell_payout(self) -> int:
        return self.price - self.protocol_fee - self.subject_fee


def quote(trade_price: int, protocol_fee_percent: int, subject_fee_percent: int) -> Quote:
    return Quote(
        price=trade_price,
        protocol_fee=trade_price * protocol_fee_percent // ONE,
        subject_fee=trade_price * subject_fee_percent // ONE,
    )


def buy_quote(supply: int, amount: int, divisor: int, protocol_fee_percent: int, subject_fee_percent: int) -> Quote:
    return quote(price(supply, amount, divisor), protocol_fee_percent, subject_fee_percent)


def sell_quote(supply: int, amount: int, divisor: int, protocol_fee_percent: int, subject_fee_percent: int) -> Quote:
    return quote(price(supply - amount, amount, divisor), protocol_fee_percent, subject_fee_percent)
