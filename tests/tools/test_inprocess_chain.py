"""The in-process chain against anvil: the same transactions give the same results, events, errors and clock.

These run under `ape test` on anvil (the truth) and replay each scenario on a fresh in-process chain built from the
same compiled contracts and the same test accounts. Gas is not compared: the in-process chain keeps one journal
across transactions (that is what makes its snapshots cheap), so storage and accounts touched by an earlier
transaction stay warm and SSTORE prices see the journal's original values. Its gas readings are lower than a
real chain's; gas figures come from anvil (`make gas`).
"""

import pytest
from ape import project as compiled

from opgkit.inprocess.accounts import TestAccounts
from opgkit.inprocess.contracts import ContractRevert, ProjectContracts
from opgkit.inprocess.evm import InProcessChain
from opgkit.testing import reverts

MNEMONIC = "test test test test test test test test test test test junk"
DAY = 86_400
PERCENT = 10**16
TWIN = b"\x07" * 16
FAR = 2**40


class Chains:
    """One scenario step on both chains; every step returns the pair of outcomes for comparison."""

    def __init__(self, ape_chain, ape_accounts):
        self.inprocess = InProcessChain()
        self.inprocess_project = ProjectContracts(self.inprocess, compiled)
        self.inprocess_accounts = TestAccounts(self.inprocess, MNEMONIC, 10)
        self.ape_chain, self.ape_accounts = ape_chain, ape_accounts
        self.inprocess.pending_timestamp = ape_chain.pending_timestamp

    def deploy_markets(self):
        def deploy(project, accounts):
            owner, fees, manager = accounts[5], accounts[1], accounts[9]
            return project.TwinMarket.deploy(owner, fees, manager, 16_000, 1, 10 * PERCENT, 10 * PERCENT,
                                             5 * PERCENT, 5 * PERCENT, DAY, DAY, sender=accounts[0])

        return deploy(compiled, self.ape_accounts), deploy(self.inprocess_project, self.inprocess_accounts)


@pytest.fixture
def both(chain, accounts):
    return Chains(chain, accounts)


def _events(receipt):
    return [(event.event_name, dict(event.event_arguments)) for event in receipt.events]


def test_trades__same_transactions__same_results_and_events(both):
    on_anvil, in_process = both.deploy_markets()
    for market, accounts in ((on_anvil, both.ape_accounts), (in_process, both.inprocess_accounts)):
        market._trader = accounts[2]
    outcomes = []
    for market in (on_anvil, in_process):
        trader = market._trader
        create_cost = market.getPrice(0, 3) * 110 // 100
        created = market.createTwin(TWIN, "uri", 3, create_cost, 10**18, FAR, value=create_cost, sender=trader)
        price = market.getPrice(market.sharesSupply(TWIN), 5)
        bought = market.buy(TWIN, 5, price * 2, 10**18, FAR, value=price * 2, sender=trader)
        sold = market.sell(TWIN, 2, 0, 10**18, FAR, sender=trader)
        outcomes.append(dict(
            events=[_events(created), _events(bought), _events(sold)],
            views=[market.sharesSupply(TWIN), market.sharesBalance(TWIN, trader), market.fees(),
                   market.protocolFeesAccrued(), market.balance],
        ))
    anvil, revm = outcomes
    assert revm["views"] == anvil["views"]
    assert _normalized(revm["events"]) == _normalized(anvil["events"])


def _normalized(events):
    """Both sides' event arguments as plain Python values (ape and the in-process chain use the same types)."""
    return [[(name, {key: (bytes(value) if isinstance(value, bytes) else value) for key, value in args.items()})
             for name, args in receipt] for receipt in events]


def test_custom_error__same_name_and_fields_on_both_chains(both):
    on_anvil, in_process = both.deploy_markets()
    with reverts(on_anvil.TwinMarketUnknownTwin, id=TWIN):
        on_anvil.buy(TWIN, 1, 10**18, 10**18, FAR, value=10**18, sender=both.ape_accounts[2])
    with reverts(in_process.TwinMarketUnknownTwin, id=TWIN):
        in_process.buy(TWIN, 1, 10**18, 10**18, FAR, value=10**18, sender=both.inprocess_accounts[2])


def test_reverts__other_error_or_no_revert__fails_the_test(both):
    _, market = both.deploy_markets()
    trader = both.inprocess_accounts[2]
    with pytest.raises(AssertionError, match="Expected error 'TwinMarketZeroAmount' but was 'TwinMarketUnknownTwin'"):
        with reverts(market.TwinMarketZeroAmount):
            market.buy(TWIN, 1, 10**18, 10**18, FAR, value=10**18, sender=trader)
    with pytest.raises(AssertionError, match="Transaction did not revert"):
        with reverts(market.TwinMarketUnknownTwin):
            market.getPrice(0, 1)
    with pytest.raises(AssertionError, match="Expected input 'id'"):
        with reverts(market.TwinMarketUnknownTwin, id=b"\x01" * 16):
            market.buy(TWIN, 1, 10**18, 10**18, FAR, value=10**18, sender=trader)


def test_reverted_transaction__mined_without_effect_on_both_chains(both):
    """ape sends a transaction without estimating it on a local chain: anvil mines it reverted, using up a pinned
    timestamp; the in-process chain does the same, and keeps none of its effects."""
    on_anvil, in_process = both.deploy_markets()
    for market, chain, stranger in ((on_anvil, both.ape_chain, both.ape_accounts[2]),
                                    (in_process, both.inprocess, both.inprocess_accounts[2])):
        head = chain.blocks.head.number
        chain.pending_timestamp = pinned = chain.pending_timestamp + 500
        with reverts(market.OwnableUnauthorizedAccount, account=stranger.address):
            market.setFees(1, 1, sender=stranger)
        assert chain.blocks.head.number == head + 1
        assert chain.blocks.head.timestamp == pinned
        assert market.fees() == (5 * PERCENT, 5 * PERCENT)


def test_expected_event__of_another_contract__does_not_match(both):
    market_a = both.deploy_markets()[1]
    market_b = both.deploy_markets()[1]
    trader = both.inprocess_accounts[2]
    cost = market_b.getPrice(0, 3) * 2
    tx = market_b.createTwin(TWIN, "uri", 3, cost, 10**18, FAR, value=cost, sender=trader)
    assert market_b.TwinCreated(TWIN, trader) in tx.events
    assert market_a.TwinCreated(TWIN, trader) not in tx.events


def test_clock__time_never_runs_backwards(both):
    chain = both.inprocess
    chain.mine()
    with pytest.raises(ValueError, match="before the latest block"):
        chain.pending_timestamp = chain.head.timestamp - 1


def test_restore__many_snapshots__leaves_the_evm_call_depth_alone(both):
    _, market = both.deploy_markets()
    chain = both.inprocess
    base = chain.snapshot()
    for _ in range(1_100):
        chain.snapshot()
    chain.restore(base)
    assert market.setFees(1, 1, sender=both.inprocess_accounts[5]).events  # would halt CallTooDeep otherwise


def test_clock__pending_timestamp_snapshots_and_fee_delay_match_anvil(both):
    on_anvil, in_process = both.deploy_markets()
    for market, chain, owner in ((on_anvil, both.ape_chain, both.ape_accounts[5]),
                                 (in_process, both.inprocess, both.inprocess_accounts[5])):
        start = chain.pending_timestamp + 100
        chain.pending_timestamp = start  # pinned: anvil's own clock follows the wall clock
        queued = market.setFees(8 * PERCENT, 5 * PERCENT, sender=owner)  # an increase waits for the delay
        assert queued.timestamp == start == chain.blocks[queued.block_number].timestamp
        assert chain.blocks.head.number == queued.block_number
        eta = market.pendingFees().eta
        assert eta == start + DAY
        snapshot = chain.snapshot()
        with reverts(market.TwinMarketTooEarly, eta=eta):
            market.applyFeeChange(sender=owner)
        chain.pending_timestamp = eta
        market.applyFeeChange(sender=owner)
        assert market.fees() == (8 * PERCENT, 5 * PERCENT)
        chain.restore(snapshot)
        assert market.fees() == (5 * PERCENT, 5 * PERCENT)
        assert market.pendingFees().eta == eta
