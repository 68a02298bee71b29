"""Property tests of TwinMarket against the exact reference model. Invariants: tests/INVARIANTS.md (W1–W5)."""

import pytest
from hypothesis import given, strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from opgkit import twin_model
from opgkit.testing import ChainStateMachine, isolated_example
from twin_constants import ANY_FEE, FAR_DEADLINE, FEE_DELAY, PROTOCOL_FEE_CAP, SUBJECT_FEE_CAP, TWIN_FUN_DIVISOR

fee_percent = st.integers(min_value=0, max_value=PROTOCOL_FEE_CAP)


@pytest.mark.property
@given(supply=st.integers(0, 10**7), amount=st.integers(1, 10**4))
def test_get_price__any_supply_and_amount__equals_the_model(market, supply, amount):
    assert market.getPrice(supply, amount) == twin_model.price(supply, amount, TWIN_FUN_DIVISOR)


@pytest.mark.property
@given(protocol=fee_percent, subject=fee_percent, bought=st.integers(1, 60), sold=st.integers(1, 60))
def test_trades__any_fees__charge_exactly_the_model(deploy_market, gov, treasury, reporter, alice, bob, protocol, subject, bought, sold):
    with isolated_example():
        market = deploy_market(gov, treasury, reporter, protocol_fee=PROTOCOL_FEE_CAP, subject_fee=SUBJECT_FEE_CAP)
        market.setFees(protocol, subject, sender=gov)  # a decrease: applies at once
        twin = b"\x01" * 16
        market.createTwin(twin, "u", 1, 0, ANY_FEE, FAR_DEADLINE, sender=alice)
        q = twin_model.buy_quote(1, bought, TWIN_FUN_DIVISOR, protocol, subject)
        tx = market.buy(twin, bought, q.buy_cost, protocol + subject, FAR_DEADLINE, value=q.buy_cost, sender=bob)
        assert market.Trade(bob, twin, True, bought, q.price, q.protocol_fee, q.subject_fee, 1 + bought) in tx.events
        amount = min(sold, bought)
        s = twin_model.sell_quote(1 + bought, amount, TWIN_FUN_DIVISOR, protocol, subject)
        tx = market.sell(twin, amount, s.sell_payout, protocol + subject, FAR_DEADLINE, sender=bob)
        assert market.Trade(bob, twin, False, amount, s.price, s.protocol_fee, s.subject_fee, 1 + bought - amount) in tx.events


class MarketMachine(ChainStateMachine):
    """Two twins, three traders, the owner changing fees within the caps, claims, and time travel."""

    market = None
    chain = None
    traders: list = []
    owner = None
    fee_destination = None
    twins = [b"\x0a" * 16, b"\x0b" * 16]

    def __init__(self):
        super().__init__()
        self.created = []
        self.fees_in = 0

    def _supply(self, twin):
        return self.market.sharesSupply(twin)

    @precondition(lambda self: len(self.created) < len(self.twins))
    @rule(creator=st.integers(0, 2), amount=st.integers(1, 5))
    def create(self, creator, amount):
        twin = self.twins[len(self.created)]
        cost = twin_model.buy_quote(0, amount, TWIN_FUN_DIVISOR, *self.market.fees()).buy_cost
        self.market.createTwin(twin, "u", amount, cost, ANY_FEE, FAR_DEADLINE, value=cost, sender=self.traders[creator])
        self.created.append(twin)

    @precondition(lambda self: self.created)
    @rule(trader=st.integers(0, 2), pick=st.integers(0, 1), amount=st.integers(1, 20), overpay=st.integers(0, 10**15))
    def buy(self, trader, pick, amount, overpay):
        twin = self.created[pick % len(self.created)]
        protocol, subject = self.market.fees()
        q = twin_model.buy_quote(self._supply(twin), amount, TWIN_FUN_DIVISOR, protocol, subject)
        tx = self.market.buy(twin, amount, q.buy_cost, protocol + subject, FAR_DEADLINE, value=q.buy_cost + overpay, sender=self.traders[trader])
        event = tx.events.filter(self.market.Trade)[0]
        # W3: fees never exceed the caps or the trade's own bound.
        assert event.protocolFee <= event.price * PROTOCOL_FEE_CAP // 10**18
        assert event.subjectFee <= event.price * SUBJECT_FEE_CAP // 10**18
        assert event.protocolFee + event.subjectFee <= event.price * (protocol + subject) // 10**18

    @precondition(lambda self: self.created)
    @rule(trader=st.integers(0, 2), pick=st.integers(0, 1), fraction=st.integers(1, 100))
    def sell(self, trader, pick, fraction):
        twin, account = self.created[pick % len(self.created)], self.traders[trader]
        amount = min(self.market.sharesBalance(twin, account) * fraction // 100, self._supply(twin) - 1)
        if amount == 0:
            return
        protocol, subject = self.market.fees()
        q = twin_model.sell_quote(self._supply(twin), amount, TWIN_FUN_DIVISOR, protocol, subject)
        self.market.sell(twin, amount, q.sell_payout, protocol + subject, FAR_DEADLINE, sender=account)

    @precondition(lambda self: self.created)
    @rule(trader=st.integers(0, 2), pick=st.integers(0, 1), amount=st.integers(1, 20))
    def round_trip(self, trader, pick, amount):
        """W2: buying then selling the same shares never returns more than it cost."""
        twin, account = self.created[pick % len(self.created)], self.traders[trader]
        protocol, subject = self.market.fees()
        q = twin_model.buy_quote(self._supply(twin), amount, TWIN_FUN_DIVISOR, protocol, subject)
        self.market.buy(twin, amount, q.buy_cost, ANY_FEE, FAR_DEADLINE, value=q.buy_cost, sender=account)
        s = twin_model.sell_quote(self._supply(twin), amount, TWIN_FUN_DIVISOR, protocol, subject)
        self.market.sell(twin, amount, 0, ANY_FEE, FAR_DEADLINE, sender=account)
        assert s.sell_payout <= q.buy_cost

    @rule(protocol=fee_percent, subject=fee_percent)
    def set_fees(self, protocol, subject):
        self.market.setFees(protocol, subject, sender=self.owner)

    @rule()
    def apply_or_cancel(self):
        pending = self.market.pendingFees()
        if pending.eta == 0:
            return
        if self.chain.blocks.head.timestamp + 1 >= pending.eta:
            self.chain.pending_timestamp = max(self.chain.pending_timestamp, pending.eta)
            self.market.applyFeeChange(sender=self.owner)
        else:
            self.market.cancelFeeChange(sender=self.owner)

    @rule(seconds=st.integers(0, 2 * FEE_DELAY))
    def time_travel(self, seconds):
        self.chain.pending_timestamp = self.chain.pending_timestamp + seconds
        self.chain.mine()

    @rule(pick=st.integers(0, 1))
    def claim(self, pick):
        if self.market.protocolFeesAccrued() > 0:
            self.market.claimProtocolFees(sender=self.fee_destination)
        if self.created:
            twin = self.created[pick % len(self.created)]
            owner = self.market.twinOwner(twin)
            if self.market.subjectFeesAccrued(twin) > 0:
                self.market.claimSubjectFees(twin, sender=next(t for t in self.traders if t.address == owner))

    @invariant()
    def w1_balance_equals_exit_value_plus_claimable_fees(self):
        owed = sum(self.market.getPrice(0, self._supply(twin)) for twin in self.created)
        owed += self.market.protocolFeesAccrued() + sum(self.market.subjectFeesAccrued(twin) for twin in self.created)
        assert self.market.balance == owed

    @invariant()
    def w4_fees_in_force_within_caps(self):
        protocol, subject = self.market.fees()
        assert protocol <= PROTOCOL_FEE_CAP and subject <= SUBJECT_FEE_CAP

    @invariant()
    def w5_every_holder_can_exit(self):
        for twin in self.created:
            total = sum(self.market.sharesBalance(twin, t) for t in self.traders)
            assert total == self._supply(twin)
            assert self._supply(twin) >= 1


@pytest.mark.machine
def test_market_state_machine(chain, market, alice, bob, carol, gov, treasury):
    MarketMachine.market = market
    MarketMachine.chain = chain
    MarketMachine.traders = [alice, bob, carol]
    MarketMachine.owner = gov
    MarketMachine.fee_destination = treasury
    run_state_machine_as_test(MarketMachine)
