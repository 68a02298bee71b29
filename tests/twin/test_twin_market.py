"""Unit tests of TwinMarket: curve, trades, adjustable-but-bounded fees, claims, twin ownership."""

import ape
import pytest

from opgkit import twin_model
from opgkit.testing import advance
from twin_constants import (
    ANY_FEE, FAR_DEADLINE, FEE_DELAY, PERCENT, PROTOCOL_FEE, SUBJECT_FEE, TRANSFER_DELAY, TWIN, TWIN_FUN_DIVISOR,
)

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
OTHER = bytes.fromhex("ff" * 16)


def quote_buy(market, amount, twin=TWIN):
    return twin_model.buy_quote(market.sharesSupply(twin), amount, TWIN_FUN_DIVISOR, *market.fees())


def create(market, creator, amount=1, twin=TWIN):
    cost = quote_buy(market, amount, twin).buy_cost
    return market.createTwin(twin, "https://twin.example/a", amount, cost, ANY_FEE, FAR_DEADLINE, value=cost, sender=creator)


def buy(market, buyer, amount, twin=TWIN, extra=0, **bounds):
    cost = quote_buy(market, amount, twin).buy_cost
    args = dict(max_cost=cost, max_fee=ANY_FEE, deadline=FAR_DEADLINE) | bounds
    return market.buy(twin, amount, args["max_cost"], args["max_fee"], args["deadline"], value=cost + extra, sender=buyer)


# ------------------------------------------------------------------ deployment


@pytest.mark.parametrize(
    "override",
    [
        {"divisor": 0},
        {"divisor": 3},
        {"min_shares": 0},
        {"protocol_cap": 30 * PERCENT, "subject_cap": 21 * PERCENT},
        {"fee_delay": 59 * 60},
        {"transfer_delay": 31 * 86_400},
    ],
)
def test_deploy__invalid_parameter__reverts(project, deploy_market, gov, treasury, reporter, override):
    with ape.reverts(project.TwinMarket.TwinMarketInvalidParameter):
        deploy_market(gov, treasury, reporter, **override)


def test_deploy__fee_above_cap__reverts(project, deploy_market, gov, treasury, reporter):
    with ape.reverts(project.TwinMarket.TwinMarketFeeAboveCap):
        deploy_market(gov, treasury, reporter, protocol_fee=11 * PERCENT)


@pytest.mark.parametrize("missing", ["fee_destination", "claim_manager"])
def test_deploy__zero_fee_destination_or_claim_manager__reverts(project, deploy_market, gov, treasury, reporter,
                                                                missing):
    roles = {"fee_destination": treasury, "claim_manager": reporter} | {missing: ZERO_ADDRESS}
    with ape.reverts(project.TwinMarket.TwinMarketZeroAddress):
        deploy_market(gov, roles["fee_destination"], roles["claim_manager"])


# ------------------------------------------------------------------ curve


@pytest.mark.parametrize("supply, amount", [(0, 1), (0, 10), (1, 1), (7, 3), (1_000, 50)])
def test_get_price__examples__match_the_reference_model(market, supply, amount):
    assert market.getPrice(supply, amount) == twin_model.price(supply, amount, TWIN_FUN_DIVISOR)


def test_get_price__first_share__is_free(market):
    assert market.getPrice(0, 1) == 0


def test_price_views__with_and_without_fees__match_the_reference_model(market, alice, bob):
    create(market, alice)
    buy(market, bob, 6)
    assert market.getBuyPrice(TWIN, 4) == twin_model.price(7, 4, TWIN_FUN_DIVISOR)
    assert market.getSellPrice(TWIN, 4) == twin_model.price(3, 4, TWIN_FUN_DIVISOR)
    assert market.getBuyPriceAfterFee(TWIN, 4) == twin_model.buy_quote(7, 4, TWIN_FUN_DIVISOR, PROTOCOL_FEE,
                                                                       SUBJECT_FEE).buy_cost
    assert market.getSellPriceAfterFee(TWIN, 4) == twin_model.sell_quote(7, 4, TWIN_FUN_DIVISOR, PROTOCOL_FEE,
                                                                         SUBJECT_FEE).sell_payout


# ------------------------------------------------------------------ create and buy


def test_create__first_buy__sets_owner_supply_and_emits(market, alice):
    tx = create(market, alice, amount=3)
    q = twin_model.buy_quote(0, 3, TWIN_FUN_DIVISOR, PROTOCOL_FEE, SUBJECT_FEE)
    assert market.twinOwner(TWIN) == alice.address and market.sharesSupply(TWIN) == 3
    assert market.sharesBalance(TWIN, alice) == 3 and market.hasAccess(alice, TWIN)
    assert market.TwinCreated(TWIN, alice, "https://twin.example/a") in tx.events
    assert market.Trade(alice, TWIN, True, 3, q.price, q.protocol_fee, q.subject_fee, 3) in tx.events


def test_create__existing_or_zero_id__reverts(market, alice, bob):
    create(market, alice)
    with ape.reverts(market.TwinMarketTwinExists):
        create(market, bob)
    with ape.reverts(market.TwinMarketZeroId):
        market.createTwin(b"\x00" * 16, "u", 1, 0, ANY_FEE, FAR_DEADLINE, sender=bob)


def test_create__below_minimum__reverts(deploy_market, gov, treasury, reporter, alice):
    market = deploy_market(gov, treasury, reporter, min_shares=2)
    with ape.reverts(market.TwinMarketBelowMinimumCreation, amount=1, minimum=2):
        market.createTwin(TWIN, "u", 1, 0, ANY_FEE, FAR_DEADLINE, sender=alice)


def test_buy__exact_cost__credits_shares_and_fees(market, alice, bob):
    create(market, alice)
    q = quote_buy(market, 4)
    buy(market, bob, 4)
    assert market.sharesBalance(TWIN, bob) == 4
    assert market.protocolFeesAccrued() == q.protocol_fee
    assert market.subjectFeesAccrued(TWIN) == q.subject_fee
    assert market.balance == q.buy_cost


def test_buy__overpaid__refunds_the_excess(market, alice, bob):
    create(market, alice)
    q = quote_buy(market, 2)
    before = bob.balance
    tx = buy(market, bob, 2, extra=10**18)
    assert before - bob.balance == q.buy_cost + tx.total_fees_paid
    assert market.balance == q.buy_cost


def test_buy__cost_above_max__reverts(market, alice, bob):
    create(market, alice)
    cost = quote_buy(market, 5).buy_cost
    with ape.reverts(market.TwinMarketCostAboveMax, cost=cost, maxCost=cost - 1):
        buy(market, bob, 5, max_cost=cost - 1)


def test_buy__fee_above_trade_bound__reverts(market, alice, bob):
    create(market, alice)
    with ape.reverts(market.TwinMarketFeeAboveMax, feePercent=10 * PERCENT, maxFeePercent=9 * PERCENT):
        buy(market, bob, 1, max_fee=9 * PERCENT)


def test_buy__past_deadline__reverts(chain, market, alice, bob):
    create(market, alice)
    deadline = chain.blocks.head.timestamp - 1
    with ape.reverts(market.TwinMarketExpired, deadline=deadline):
        buy(market, bob, 1, deadline=deadline)


def test_buy__underpaid__reverts(market, alice, bob):
    create(market, alice)
    cost = quote_buy(market, 3).buy_cost
    with ape.reverts(market.TwinMarketInsufficientPayment, paid=cost - 1, cost=cost):
        market.buy(TWIN, 3, cost, ANY_FEE, FAR_DEADLINE, value=cost - 1, sender=bob)


def test_buy__zero_or_unknown__reverts(market, alice, bob):
    create(market, alice)
    with ape.reverts(market.TwinMarketZeroAmount):
        market.buy(TWIN, 0, 0, ANY_FEE, FAR_DEADLINE, sender=bob)
    with ape.reverts(market.TwinMarketUnknownTwin):
        market.buy(OTHER, 1, 10**18, ANY_FEE, FAR_DEADLINE, value=10**18, sender=bob)


# ------------------------------------------------------------------ sell


def test_sell__shares__pays_price_less_fees(market, alice, bob):
    create(market, alice)
    buy(market, bob, 5)
    q = twin_model.sell_quote(6, 2, TWIN_FUN_DIVISOR, PROTOCOL_FEE, SUBJECT_FEE)
    before = bob.balance
    tx = market.sell(TWIN, 2, q.sell_payout, ANY_FEE, FAR_DEADLINE, sender=bob)
    assert bob.balance - before == q.sell_payout - tx.total_fees_paid
    assert market.sharesBalance(TWIN, bob) == 3 and market.sharesSupply(TWIN) == 4
    assert market.Trade(bob, TWIN, False, 2, q.price, q.protocol_fee, q.subject_fee, 4) in tx.events


def test_sell__last_share__reverts(market, alice):
    create(market, alice)
    with ape.reverts(market.TwinMarketLastShare):
        market.sell(TWIN, 1, 0, ANY_FEE, FAR_DEADLINE, sender=alice)


def test_sell__more_than_held__reverts(market, alice, bob):
    create(market, alice, amount=3)
    buy(market, bob, 1)
    with ape.reverts(market.TwinMarketInsufficientShares, balance=1, amount=2):
        market.sell(TWIN, 2, 0, ANY_FEE, FAR_DEADLINE, sender=bob)


def test_sell__zero__reverts(market, alice):
    create(market, alice, amount=2)
    with ape.reverts(market.TwinMarketZeroAmount):
        market.sell(TWIN, 0, 0, ANY_FEE, FAR_DEADLINE, sender=alice)


def test_sell__past_deadline_or_unknown_twin__reverts(chain, market, alice, bob):
    create(market, alice)
    buy(market, bob, 2)
    deadline = chain.blocks.head.timestamp - 1
    with ape.reverts(market.TwinMarketExpired, deadline=deadline):
        market.sell(TWIN, 1, 0, ANY_FEE, deadline, sender=bob)
    with ape.reverts(market.TwinMarketUnknownTwin, id=OTHER):
        market.sell(OTHER, 1, 0, ANY_FEE, FAR_DEADLINE, sender=bob)


def test_sell__payout_below_min__reverts(market, alice, bob):
    create(market, alice)
    buy(market, bob, 3)
    payout = twin_model.sell_quote(4, 1, TWIN_FUN_DIVISOR, PROTOCOL_FEE, SUBJECT_FEE).sell_payout
    with ape.reverts(market.TwinMarketPayoutBelowMin, payout=payout, minPayout=payout + 1):
        market.sell(TWIN, 1, payout + 1, ANY_FEE, FAR_DEADLINE, sender=bob)


# ------------------------------------------------------------------ fees


def test_set_fees__decrease__applies_at_once(market, gov):
    tx = market.setFees(1 * PERCENT, 2 * PERCENT, sender=gov)
    assert market.fees() == (1 * PERCENT, 2 * PERCENT)
    assert tx.events == [market.FeesChanged(PROTOCOL_FEE, SUBJECT_FEE, 1 * PERCENT, 2 * PERCENT)]


def test_set_fees__increase__waits_for_the_delay(chain, market, gov, bob):
    tx = market.setFees(8 * PERCENT, SUBJECT_FEE, sender=gov)
    eta = chain.blocks.head.timestamp + FEE_DELAY
    assert tx.events == [market.FeeChangeScheduled(8 * PERCENT, SUBJECT_FEE, eta)]
    assert market.fees() == (PROTOCOL_FEE, SUBJECT_FEE)
    with ape.reverts(market.TwinMarketTooEarly, eta=eta):
        market.applyFeeChange(sender=bob)
    advance(chain, FEE_DELAY)
    applied = market.applyFeeChange(sender=bob)
    assert market.fees() == (8 * PERCENT, SUBJECT_FEE)
    assert applied.events == [market.FeesChanged(PROTOCOL_FEE, SUBJECT_FEE, 8 * PERCENT, SUBJECT_FEE)]


def test_set_fees__while_an_increase_is_pending__replaces_it(chain, market, gov, bob):
    market.setFees(8 * PERCENT, SUBJECT_FEE, sender=gov)
    tx = market.setFees(PROTOCOL_FEE, 9 * PERCENT, sender=gov)
    eta = chain.blocks.head.timestamp + FEE_DELAY
    assert tx.events == [market.FeeChangeCancelled(8 * PERCENT, SUBJECT_FEE),
                         market.FeeChangeScheduled(PROTOCOL_FEE, 9 * PERCENT, eta)]
    advance(chain, FEE_DELAY)
    market.applyFeeChange(sender=bob)
    assert market.fees() == (PROTOCOL_FEE, 9 * PERCENT)


def test_set_fees__above_cap__reverts(market, gov):
    with ape.reverts(market.TwinMarketFeeAboveCap, feePercent=11 * PERCENT, cap=10 * PERCENT):
        market.setFees(PROTOCOL_FEE, 11 * PERCENT, sender=gov)


def test_cancel_fee_change__pending__removes_it(chain, market, gov):
    market.setFees(9 * PERCENT, 9 * PERCENT, sender=gov)
    tx = market.cancelFeeChange(sender=gov)
    assert tx.events == [market.FeeChangeCancelled(9 * PERCENT, 9 * PERCENT)]
    advance(chain, FEE_DELAY)
    with ape.reverts(market.TwinMarketNoPendingFeeChange):
        market.applyFeeChange(sender=gov)


def test_fee_change__nothing_pending__apply_and_cancel_revert(market, gov, bob):
    with ape.reverts(market.TwinMarketNoPendingFeeChange):
        market.applyFeeChange(sender=bob)
    with ape.reverts(market.TwinMarketNoPendingFeeChange):
        market.cancelFeeChange(sender=gov)


def test_propose_fee_destination__zero_address__reverts(market, gov):
    with ape.reverts(market.TwinMarketZeroAddress):
        market.proposeFeeDestination(ZERO_ADDRESS, sender=gov)


def test_claim_protocol_fees__nothing_accrued__reverts(market, treasury):
    assert market.protocolFeesAccrued() == 0
    with ape.reverts(market.TwinMarketNothingToClaim):
        market.claimProtocolFees(sender=treasury)


def test_set_claim_manager__owner__hands_over_transfers(market, gov, alice, bob, carol, reporter):
    create(market, alice)
    tx = market.setClaimManager(carol, sender=gov)
    assert tx.events == [market.ClaimManagerChanged(reporter, carol)]
    assert market.claimManager() == carol.address
    with ape.reverts(market.TwinMarketNotClaimManager, account=reporter.address):
        market.startTwinOwnershipTransfer(TWIN, bob, sender=reporter)
    market.startTwinOwnershipTransfer(TWIN, bob, sender=carol)
    with ape.reverts(market.TwinMarketZeroAddress):
        market.setClaimManager(ZERO_ADDRESS, sender=gov)


def test_fee_increase__pending_buy_with_old_bound__is_protected(chain, market, gov, alice, bob):
    """Regression: a fee increase can never hit a trade signed under the old fees."""
    create(market, alice)
    market.setFees(10 * PERCENT, 10 * PERCENT, sender=gov)
    advance(chain, FEE_DELAY)
    market.applyFeeChange(sender=gov)
    with ape.reverts(market.TwinMarketFeeAboveMax):
        buy(market, bob, 1, max_fee=PROTOCOL_FEE + SUBJECT_FEE)


def test_fee_destination__two_steps_after_delay__moves_claims(chain, market, gov, treasury, alice, bob, carol):
    create(market, alice)
    buy(market, bob, 3)
    tx = market.proposeFeeDestination(carol, sender=gov)
    eta = chain.blocks.head.timestamp + FEE_DELAY
    assert tx.events == [market.FeeDestinationProposed(treasury, carol, eta)]
    with ape.reverts(market.TwinMarketTooEarly, eta=eta):
        market.acceptFeeDestination(sender=carol)
    with ape.reverts(market.TwinMarketNotPendingFeeDestination, account=bob.address):
        market.acceptFeeDestination(sender=bob)
    advance(chain, FEE_DELAY)
    market.acceptFeeDestination(sender=carol)
    assert market.feeDestination() == carol.address
    with ape.reverts(market.TwinMarketNotFeeDestination, account=treasury.address):
        market.claimProtocolFees(sender=treasury)
    accrued = market.protocolFeesAccrued()
    before = carol.balance
    claim = market.claimProtocolFees(sender=carol)
    assert carol.balance - before == accrued - claim.total_fees_paid


def test_claim_subject_fees__twin_owner__paid(market, alice, bob):
    create(market, alice)
    buy(market, bob, 3)
    accrued = market.subjectFeesAccrued(TWIN)
    before = alice.balance
    tx = market.claimSubjectFees(TWIN, sender=alice)
    assert alice.balance - before == accrued - tx.total_fees_paid
    assert tx.events == [market.SubjectFeesClaimed(TWIN, alice, accrued)]
    with ape.reverts(market.TwinMarketNothingToClaim):
        market.claimSubjectFees(TWIN, sender=alice)
    with ape.reverts(market.TwinMarketNotTwinOwner):
        market.claimSubjectFees(TWIN, sender=bob)


# ------------------------------------------------------------------ twin ownership


def test_twin_transfer__by_claim_manager_after_delay__moves_owner(chain, market, alice, bob, reporter):
    create(market, alice)
    tx = market.startTwinOwnershipTransfer(TWIN, bob, sender=reporter)
    eta = chain.blocks.head.timestamp + TRANSFER_DELAY
    assert tx.events == [market.TwinOwnershipTransferStarted(TWIN, alice, bob, eta)]
    with ape.reverts(market.TwinMarketTooEarly, eta=eta):
        market.completeTwinOwnershipTransfer(TWIN, sender=bob)
    advance(chain, TRANSFER_DELAY)
    done = market.completeTwinOwnershipTransfer(TWIN, sender=bob)
    assert market.twinOwner(TWIN) == bob.address
    assert done.events == [market.TwinOwnershipTransferred(TWIN, alice, bob)]


def test_twin_transfer__cancelled_by_owner__cannot_complete(chain, market, alice, bob, reporter):
    create(market, alice)
    market.startTwinOwnershipTransfer(TWIN, bob, sender=reporter)
    assert market.cancelTwinOwnershipTransfer(TWIN, sender=alice).events == [market.TwinOwnershipTransferCancelled(TWIN)]
    advance(chain, TRANSFER_DELAY)
    with ape.reverts(market.TwinMarketNoPendingTransfer):
        market.completeTwinOwnershipTransfer(TWIN, sender=bob)


def test_twin_transfer__not_claim_manager__reverts(market, alice, bob):
    create(market, alice)
    with ape.reverts(market.TwinMarketNotClaimManager, account=alice.address):
        market.startTwinOwnershipTransfer(TWIN, bob, sender=alice)


def test_twin_transfer__unknown_twin_or_zero_recipient__reverts(market, alice, bob, reporter):
    create(market, alice)
    with ape.reverts(market.TwinMarketUnknownTwin, id=OTHER):
        market.startTwinOwnershipTransfer(OTHER, bob, sender=reporter)
    with ape.reverts(market.TwinMarketZeroAddress):
        market.startTwinOwnershipTransfer(TWIN, ZERO_ADDRESS, sender=reporter)


def test_twin_transfer__cancel_by_stranger_or_without_pending__reverts(market, alice, bob, carol, reporter):
    create(market, alice)
    with ape.reverts(market.TwinMarketNoPendingTransfer, id=TWIN):
        market.cancelTwinOwnershipTransfer(TWIN, sender=alice)
    market.startTwinOwnershipTransfer(TWIN, bob, sender=reporter)
    with ape.reverts(market.TwinMarketNotTwinOwner, id=TWIN, account=carol.address):
        market.cancelTwinOwnershipTransfer(TWIN, sender=carol)
    assert market.cancelTwinOwnershipTransfer(TWIN, sender=reporter).events == [
        market.TwinOwnershipTransferCancelled(TWIN)]


def test_twin_transfer__wrong_recipient__reverts(market, alice, bob, carol, reporter):
    create(market, alice)
    market.startTwinOwnershipTransfer(TWIN, bob, sender=reporter)
    with ape.reverts(market.TwinMarketNotPendingTwinOwner):
        market.completeTwinOwnershipTransfer(TWIN, sender=carol)


def test_set_twin_url__owner_only__updates(market, alice, bob):
    create(market, alice)
    assert market.setTwinUrl(TWIN, "https://new", sender=alice).events == [market.TwinUrlChanged(TWIN, "https://new")]
    assert market.twinUrl(TWIN) == "https://new"
    with ape.reverts(market.TwinMarketNotTwinOwner):
        market.setTwinUrl(TWIN, "x", sender=bob)


# ------------------------------------------------------------------ owner-only matrix


@pytest.mark.parametrize(
    "function, args",
    [
        ("setFees", (0, 0)),
        ("cancelFeeChange", ()),
        ("proposeFeeDestination", ("0x00000000000000000000000000000000000000D1",)),
        ("setClaimManager", ("0x00000000000000000000000000000000000000D1",)),
        ("transferOwnership", ("0x00000000000000000000000000000000000000D1",)),
        ("renounceOwnership", ()),
    ],
)
@pytest.mark.parametrize("caller", ["alice", "treasury", "reporter"])
def test_owner_only__other_caller__reverts(market, request, function, args, caller):
    account = request.getfixturevalue(caller)
    with ape.reverts(market.OwnableUnauthorizedAccount, account=account.address):
        getattr(market, function)(*args, sender=account)


def test_fee_history__rebuilt_from_logs_alone__matches_the_contract(chain, deploy_market, gov, treasury, reporter):
    market = deploy_market(gov, treasury, reporter)
    market.setFees(2 * PERCENT, 3 * PERCENT, sender=gov)
    market.setFees(9 * PERCENT, 3 * PERCENT, sender=gov)
    market.cancelFeeChange(sender=gov)
    market.setFees(7 * PERCENT, 4 * PERCENT, sender=gov)
    advance(chain, FEE_DELAY)
    market.applyFeeChange(sender=gov)

    start = market.creation_metadata.receipt.block_number
    changes = list(market.FeesChanged.range(start, chain.blocks.head.number + 1))
    history = [(log.protocolFeePercent, log.subjectFeePercent) for log in changes]
    assert history == [(PROTOCOL_FEE, SUBJECT_FEE), (2 * PERCENT, 3 * PERCENT), (7 * PERCENT, 4 * PERCENT)]
    for previous, log in zip(history, changes[1:]):
        assert (log.previousProtocolFeePercent, log.previousSubjectFeePercent) == previous
    assert history[-1] == market.fees()
    scheduled = list(market.FeeChangeScheduled.range(start, chain.blocks.head.number + 1))
    cancelled = list(market.FeeChangeCancelled.range(start, chain.blocks.head.number + 1))
    assert [(s.protocolFeePercent, s.subjectFeePercent) for s in scheduled] == [(9 * PERCENT, 3 * PERCENT), (7 * PERCENT, 4 * PERCENT)]
    assert [(c.protocolFeePercent, c.subjectFeePercent) for c in cancelled] == [(9 * PERCENT, 3 * PERCENT)]
