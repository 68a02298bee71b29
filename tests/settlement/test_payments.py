"""x402-style payments: authorization, escrow or allowance, the split, and pull withdrawals."""

import ape
from eth_account import Account
from hypothesis import given, settings, strategies as st

from opgkit.receipts import PaymentAuthorization, payment_digest, sign_payment
from opgkit.testing import advance, isolated_example
from settlement_helpers import OPG, PRICE, Mode, authorization, receipt

BPS = 10_000


def expected_split(amount, protocol=500, stakers=1_000, owner=2_000, royalty=0):
    to_treasury, to_stakers, owner_cut = amount * protocol // BPS, amount * stakers // BPS, amount * owner // BPS
    to_royalty = amount * owner * royalty // (BPS * BPS)
    return dict(treasury=to_treasury, stakers=to_stakers, owner=owner_cut - to_royalty, royalty=to_royalty,
                node=amount - to_treasury - to_stakers - owner_cut)


def pay(settlement, r, signature, auth, auth_signature, sender):
    return settlement.settleAndPay(r.as_args(), signature, auth.as_args(), auth_signature, sender=sender)


def test_settle_and_pay__from_allowance__price_split_and_credited(settlement, token, open_model, operator, alice, carol,
                                                                 treasury, bob, sign, sign_auth, now):
    r = receipt("paid", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    before = token.balanceOf(alice)
    tx = pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)
    assert token.balanceOf(alice) == before - PRICE
    split = expected_split(PRICE)
    assert settlement.proceedsOf(operator) == split["node"]
    assert settlement.proceedsOf(carol) == split["owner"]
    assert settlement.proceedsOf(treasury) == split["treasury"]
    assert settlement.stakerRewardsOwed(operator) == split["stakers"]
    charged = tx.events.filter(settlement.PaymentCharged)[0]
    assert (charged.payer, charged.amount, charged.fromEscrow) == (alice.address, PRICE, False)


def test_settle_and_pay__escrow_covers_price__drawn_from_escrow(settlement, token, open_model, operator, alice, sign,
                                                               sign_auth, now):
    settlement.deposit(5 * OPG, sender=alice)
    r = receipt("escrowed", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    wallet = token.balanceOf(alice)
    tx = pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)
    assert settlement.escrowOf(alice) == 5 * OPG - PRICE
    assert token.balanceOf(alice) == wallet
    assert tx.events.filter(settlement.PaymentCharged)[0].fromEscrow


def test_settle_and_pay__fork__royalty_to_parent_owner(settlement, fork_model, operator, alice, bob, carol, sign,
                                                       sign_auth, now):
    r = receipt("royalty", fork_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)
    split = expected_split(PRICE, royalty=1_000)
    assert settlement.proceedsOf(bob) == split["owner"]
    assert settlement.proceedsOf(carol) == split["royalty"]


def test_settle_and_pay__tee_receipt__node_share_to_tee_payee(settlement, open_model, tee_key, operator, alice, sign,
                                                             sign_auth, heartbeat):
    r = receipt("tee-paid", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address, price=PRICE)
    auth = authorization(r)
    pay(settlement, r, sign(r, tee_key), auth, sign_auth(auth, alice), alice)
    assert settlement.proceedsOf(operator) == expected_split(PRICE)["node"]
    assert settlement.stakerRewardsOwed(operator) == expected_split(PRICE)["stakers"]


def test_settle_and_pay__authorization_reused_for_same_request__already_settled(settlement, open_model, operator, alice,
                                                                               sign, sign_auth, now):
    r = receipt("reuse", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r, max_amount=10 * PRICE)
    auth_signature = sign_auth(auth, alice)
    pay(settlement, r, sign(r, operator), auth, auth_signature, alice)
    again = r.with_changes(outputHash=b"\x01" * 32)
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        pay(settlement, again, sign(again, operator), auth, auth_signature, alice)


def test_settle_and_pay__authorization_for_other_request__mismatch(settlement, open_model, operator, alice, sign,
                                                                    sign_auth, now):
    paid_for = receipt("authorized", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(paid_for)
    r = receipt("not-authorized", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    with ape.reverts(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId,
                     authorizedRequestId=paid_for.requestId):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)


def test_settle_and_pay__price_above_authorization__named_error(settlement, open_model, operator, alice, sign,
                                                                sign_auth, now):
    r = receipt("exceeded", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r, max_amount=PRICE - 1)
    with ape.reverts(settlement.InferenceSettlementPriceAboveAuthorization, price=PRICE, maxAmount=PRICE - 1):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)


def test_settle_and_pay__authorization_expired__named_error(settlement, open_model, operator, alice, sign, sign_auth,
                                                            now, chain):
    r = receipt("expired", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r, deadline=now() + 10)
    advance(chain, 60)
    with ape.reverts(settlement.InferenceSettlementAuthorizationExpired, deadline=auth.deadline):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)


def test_settle_and_pay__authorizations_revoked__stale(settlement, open_model, operator, alice, sign, sign_auth, now):
    r = receipt("revoked", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    settlement.revokeAuthorizations(sender=alice)
    with ape.reverts(settlement.InferenceSettlementStaleAuthorization, nonce=0, currentNonce=1):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)


def test_settle_and_pay__signed_by_someone_else__bad_authorization(settlement, open_model, operator, alice, bob, sign,
                                                                   sign_auth, now):
    r = receipt("not-payer", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    with ape.reverts(settlement.InferenceSettlementBadAuthorizationSignature, payer=alice.address):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, bob), bob)


def test_settle_and_pay__zero_payer__named_error(settlement, open_model, operator, alice, sign, sign_auth, now):
    r = receipt("no-payer", open_model, operator.address, now(), price=PRICE)
    auth = authorization(r)
    with ape.reverts(settlement.InferenceSettlementZeroPayer, requestId=r.requestId):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)


def test_settle_and_pay__free_receipt__nothing_to_pay(settlement, open_model, operator, alice, sign, sign_auth, now):
    r = receipt("free", open_model, operator.address, now())
    auth = authorization(r)
    with ape.reverts(settlement.InferenceSettlementNothingToPay, requestId=r.requestId):
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)


def test_settle_and_pay__payer_without_funds__reverts_and_nothing_recorded(settlement, open_model, operator, sign, now):
    broke = Account.create()
    r = receipt("broke", open_model, operator.address, now(), payer=broke.address, price=PRICE)
    auth = authorization(r)
    with ape.reverts():
        pay(settlement, r, sign(r, operator), auth, sign_payment(settlement, auth, broke.key), operator)
    assert settlement.verifiedOutput(r.requestId).status == 0


def test_payment_digest__python_equals_contract(settlement):
    auth = PaymentAuthorization(requestId=b"\x07" * 32, maxAmount=123, deadline=456, nonce=7)
    assert settlement.paymentDigest(auth.as_args()) == payment_digest(settlement, auth)


def test_withdraw_proceeds__after_payment__paid_once(settlement, token, open_model, operator, alice, sign, sign_auth,
                                                   now):
    r = receipt("withdraw", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)
    owed = settlement.proceedsOf(operator)
    before = token.balanceOf(operator)
    settlement.withdrawProceeds(sender=operator)
    assert token.balanceOf(operator) == before + owed
    with ape.reverts(settlement.InferenceSettlementNothingToWithdraw, account=operator.address):
        settlement.withdrawProceeds(sender=operator)


def test_distribute_staker_rewards__owed__notified_to_staking(settlement, staking, open_model, operator, alice, sign,
                                                             sign_auth, now):
    r = receipt("stakers", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)
    owed = settlement.stakerRewardsOwed(operator)
    reserve = staking.rewardReserve()
    tx = settlement.distributeStakerRewards(operator, sender=alice)
    assert staking.rewardReserve() == reserve + owed
    assert tx.events.filter(staking.RewardNotified)[0].amount == owed
    with ape.reverts(settlement.InferenceSettlementNothingToWithdraw, account=operator.address):
        settlement.distributeStakerRewards(operator, sender=alice)


def test_escrow__deposit_and_withdraw__balances_follow(settlement, token, alice):
    before = token.balanceOf(alice)
    settlement.deposit(3 * OPG, sender=alice)
    settlement.withdrawEscrow(OPG, sender=alice)
    assert settlement.escrowOf(alice) == 2 * OPG
    assert token.balanceOf(alice) == before - 2 * OPG
    with ape.reverts(settlement.InferenceSettlementInsufficientEscrow, available=2 * OPG, requested=3 * OPG):
        settlement.withdrawEscrow(3 * OPG, sender=alice)
    with ape.reverts(settlement.InferenceSettlementZeroAmount):
        settlement.deposit(0, sender=alice)
    with ape.reverts(settlement.InferenceSettlementZeroAmount):
        settlement.withdrawEscrow(0, sender=alice)


def test_set_fee_split__above_half__refused(settlement, gov):
    with ape.reverts(settlement.InferenceSettlementFeeSplitTooHigh, totalBps=5_001, maximum=5_000):
        settlement.setFeeSplit(1, 2_500, 2_500, sender=gov)


@settings(max_examples=15, deadline=None)
@given(price=st.integers(min_value=1, max_value=10**24), protocol=st.integers(0, 2_000), stakers=st.integers(0, 1_500),
       owner=st.integers(0, 1_500))
def test_split__random_price_and_shares__exact_and_conserved(settlement, token, fork_model, operator, alice, bob, carol,
                                                             treasury, gov, sign, sign_auth, now, price, protocol,
                                                             stakers, owner):
    with isolated_example():
        settlement.setFeeSplit(protocol, stakers, owner, sender=gov)
        r = receipt(f"split {price} {protocol} {stakers} {owner}", fork_model, operator.address, now(),
                    payer=alice.address, price=price)
        auth = authorization(r)
        held_before = token.balanceOf(settlement)
        pay(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), alice)
        split = expected_split(price, protocol, stakers, owner, royalty=1_000)
        assert settlement.proceedsOf(operator) == split["node"]
        assert settlement.proceedsOf(bob) == split["owner"]
        assert settlement.proceedsOf(carol) == split["royalty"]
        assert settlement.proceedsOf(treasury) == split["treasury"]
        assert settlement.stakerRewardsOwed(operator) == split["stakers"]
        assert sum(split.values()) == price == token.balanceOf(settlement) - held_before
