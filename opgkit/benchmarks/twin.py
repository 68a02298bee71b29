"""TwinMarket gas at 5% + 5% fees, next to friend.tech's measured figures."""

from __future__ import annotations

from ape import project

from opgkit import twin_model
from opgkit.benchmarks import GasRow, gas_of

PERCENT = 10**16
FRIEND_TECH_DIVISOR = 16_000
FEE = 5 * PERCENT
ANY_FEE = 10**18
FAR_DEADLINE = 2**40
DAY = 86_400
TWIN = bytes.fromhex("5157aaaabbbbccccddddeeeeffff0000")
# friend.tech's FriendtechSharesV1 at 5% + 5% fees, measured (py-evm, Prague rules, optimizer 200).
FRIEND_TECH = {"buy (new holder)": 80_268, "buy (repeat holder)": 63_168, "sell": 70_420}
FRIEND_TECH_SOURCE = "friend.tech FriendtechSharesV1, 5% + 5% fees (measured)"
NO_ANCHOR = "no external anchor; tracked for regressions"


def measure(deployer, test_accounts) -> list[GasRow]:
    creator, buyer, destination, manager = test_accounts[:4]
    market = deployer.deploy(
        project.TwinMarket, deployer, destination, manager, FRIEND_TECH_DIVISOR, 1, 10 * PERCENT, 10 * PERCENT,
        FEE, FEE, DAY, DAY,
    )

    def cost(amount):
        return twin_model.buy_quote(market.sharesSupply(TWIN), amount, FRIEND_TECH_DIVISOR, FEE, FEE).buy_cost

    def buy(amount):
        value = cost(amount)
        return lambda: market.buy(TWIN, amount, value, ANY_FEE, FAR_DEADLINE, value=value, sender=buyer)

    gas = {
        "createTwin (first share)": gas_of(
            lambda: market.createTwin(TWIN, "https://twin.example", 1, 0, ANY_FEE, FAR_DEADLINE, sender=creator)
        ),
        "buy (new holder)": gas_of(buy(1)),
        "buy (repeat holder)": gas_of(buy(1)),
        "sell": gas_of(lambda: market.sell(TWIN, 1, 0, ANY_FEE, FAR_DEADLINE, sender=buyer)),
        "claimSubjectFees": gas_of(lambda: market.claimSubjectFees(TWIN, sender=creator)),
        "claimProtocolFees": gas_of(lambda: market.claimProtocolFees(sender=destination)),
    }
    return [
        GasRow("TwinMarket", op, value, FRIEND_TECH.get(op), FRIEND_TECH_SOURCE if op in FRIEND_TECH else NO_ANCHOR)
        for op, value in gas.items()
    ]
