"""x402-style payments: consent (the payer's call or its authorization), escrow or allowance, the split, and pull
withdrawals. Nothing is ever credited to the zero address."""

from dataclasses import replace

import pytest
from eth_account import Account
from hypothesis import given, settings, strategies as st

from opgkit.attestation import build_statement, quorum_evidence
from opgkit.receipts import NO_AUTHORIZATION, PaymentAuthorization, Status, payment_digest, sign_payment
from opgkit.testing import advance, isolated_example, reverts
from settlement_helpers import (
    NITRO, OPG, PCR, PRICE, TLS_CERT_HASH, ZERO_ADDRESS, Mode, answer_hash, authorization, receipt, reverts_exactly,
)

BPS = 10_000


def expected_split(amount, protocol=500, stakers=1_000, owner=2_000, royalty=0):
    to_treasury, to_stakers, owner_cut = amount * protocol // BPS, amount * stakers // BPS, amount * owner // BPS
    to_royalty = amount * owner * royalty // (BPS * BPS)
    return dict(treasury=to_treasury, stakers=to_stakers, owner=owner_cut - to_royalty, royalty=to_royalty,
                node=amount - to_treasury - to_stakers - owner_cut)


def settle_for(settlement, r, evidence, auth, auth_signature, sender):
    """Settle ``r`` on its payer's behalf, under the payer's authorization."""
    return settlement.settleWithAuthorization(r.as_args(), evidence, auth.as_args(), auth_signature, sender=sender)


def assert_nothing_to_zero(settlement):
    assert settlement.proceedsOf(ZERO_ADDRESS) == 0


def staker_rewards_paid(tx, settlement, staking, operator):
    """What the settlement paid into `operator`'s staking pool in `tx` (stakers are paid as each price is split)."""
    return sum(e.amount for e in tx.events.filter(staking.RewardNotified)
               if e["from"] == settlement.address and e.operator == operator.address)


@pytest.fixture
def priced(open_model, operator, alice, now):
    """A VANILLA receipt by `operator` that `alice` pays PRICE for."""
    return lambda label, **kwargs: receipt(label, open_model, operator.address, now(), payer=alice.address,
                                           price=PRICE, **kwargs)


# ---------------------------------------------------------------- charging and splitting


def test_settle__priced_by_payer_from_allowance__charged_and_split(settlement, staking, token, priced, operator, alice,
                                                                   carol, treasury, sign):
    r = priced("paid-by-payer")
    before = token.balanceOf(alice)
    tx = settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    assert token.balanceOf(alice) == before - PRICE
    split = expected_split(PRICE)
    assert settlement.proceedsOf(operator) == split["node"]
    assert settlement.proceedsOf(carol) == split["owner"]
    assert settlement.proceedsOf(treasury) == split["treasury"]
    assert staker_rewards_paid(tx, settlement, staking, operator) == split["stakers"]
    charged = tx.events.filter(settlement.PaymentCharged)[0]
    assert (charged.requestId, charged.payer, charged.amount, charged.fromEscrow) == (
        r.requestId, alice.address, PRICE, False)
    paid = tx.events.filter(settlement.PaymentSplit)[0]
    assert (paid.nodePayee, paid.toNode, paid.toModelOwner, paid.toRoyalty, paid.toTreasury, paid.toStakers) == (
        operator.address, split["node"], split["owner"], 0, split["treasury"], split["stakers"])
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert_nothing_to_zero(settlement)


def test_settle__priced_by_payer_escrow_covers_price__drawn_from_escrow(settlement, token, priced, operator, alice,
                                                                        sign):
    settlement.deposit(5 * OPG, sender=alice)
    r = priced("escrowed")
    wallet = token.balanceOf(alice)
    tx = settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    assert settlement.escrowOf(alice) == 5 * OPG - PRICE
    assert token.balanceOf(alice) == wallet
    assert tx.events.filter(settlement.PaymentCharged)[0].fromEscrow
    assert settlement.proceedsOf(operator) == expected_split(PRICE)["node"]


def test_settle__priced_by_payer_escrow_short_of_price__drawn_from_allowance(settlement, token, priced, operator, alice,
                                                                             sign):
    settlement.deposit(PRICE - 1, sender=alice)
    r = priced("escrow-short")
    wallet = token.balanceOf(alice)
    tx = settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    assert settlement.escrowOf(alice) == PRICE - 1
    assert token.balanceOf(alice) == wallet - PRICE
    assert not tx.events.filter(settlement.PaymentCharged)[0].fromEscrow


def test_settle_with_authorization__from_allowance__price_split_and_credited(settlement, staking, token, priced,
                                                                            operator, alice, carol, treasury, bob,
                                                                            sign, sign_auth):
    r = priced("paid")
    auth = authorization(r)
    before, bob_before = token.balanceOf(alice), token.balanceOf(bob)
    tx = settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)
    assert token.balanceOf(alice) == before - PRICE
    assert token.balanceOf(bob) == bob_before
    split = expected_split(PRICE)
    assert settlement.proceedsOf(operator) == split["node"]
    assert settlement.proceedsOf(carol) == split["owner"]
    assert settlement.proceedsOf(treasury) == split["treasury"]
    assert staker_rewards_paid(tx, settlement, staking, operator) == split["stakers"]
    charged = tx.events.filter(settlement.PaymentCharged)[0]
    assert (charged.payer, charged.amount, charged.fromEscrow) == (alice.address, PRICE, False)


def test_settle_with_authorization__escrow_covers_price__drawn_from_escrow(settlement, token, priced, operator, alice,
                                                                          bob, sign, sign_auth):
    settlement.deposit(5 * OPG, sender=alice)
    r = priced("escrowed-auth")
    auth = authorization(r)
    wallet = token.balanceOf(alice)
    tx = settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)
    assert settlement.escrowOf(alice) == 5 * OPG - PRICE
    assert token.balanceOf(alice) == wallet
    assert tx.events.filter(settlement.PaymentCharged)[0].fromEscrow


def test_settle__fork__royalty_to_parent_owner(settlement, fork_model, operator, alice, bob, carol, sign, now):
    r = receipt("royalty", fork_model, operator.address, now(), payer=alice.address, price=PRICE)
    settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    split = expected_split(PRICE, royalty=1_000)
    assert settlement.proceedsOf(bob) == split["owner"]
    assert settlement.proceedsOf(carol) == split["royalty"]


def test_settle_with_authorization__tee_receipt__node_share_to_tee_payee(settlement, staking, open_model, tee_key,
                                                                        operator, alice, bob, sign, sign_auth,
                                                                        heartbeat):
    r = receipt("tee-paid", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address, price=PRICE)
    auth = authorization(r, node=operator.address)
    tx = settle_for(settlement, r, sign(r, tee_key), auth, sign_auth(auth, alice), bob)
    assert settlement.proceedsOf(operator) == expected_split(PRICE)["node"]
    assert staker_rewards_paid(tx, settlement, staking, operator) == expected_split(PRICE)["stakers"]
    assert settlement.proceedsOf(tee_key.address) == 0


def test_settle__tee_payment_address_zero__node_share_to_operator(settlement, staking, tees, open_model, tee_key,
                                                                  operator, alice, attestor_keys, sign, heartbeat,
                                                                  chain, project):
    """A TEE that names no payment address is paid through its operator, never the zero address."""
    verifier = project.AttestorQuorumVerifier.at(tees.verifier())
    endpoint = "https://tee.example:8443"
    statement = build_statement(
        tees, operator=operator.address, tee_key=tee_key.address, tee_type=NITRO, measurement=PCR,
        tls_cert_hash=TLS_CERT_HASH, payment_address=ZERO_ADDRESS, endpoint=endpoint,
        expiry=chain.pending_timestamp + 3_600,
    )
    tees.reattest(tee_key.address, statement.as_args(), endpoint, quorum_evidence(verifier, statement, attestor_keys),
                  sender=operator)
    assert tees.payeeOf(tee_key.address) == (operator.address, ZERO_ADDRESS)

    r = receipt("tee-no-payee", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address,
                price=PRICE)
    tx = settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)
    assert tx.events.filter(settlement.PaymentSplit)[0].nodePayee == operator.address
    assert settlement.proceedsOf(operator) == expected_split(PRICE)["node"]
    assert staker_rewards_paid(tx, settlement, staking, operator) == expected_split(PRICE)["stakers"]
    assert_nothing_to_zero(settlement)


def test_settle__payer_without_funds__reverts_and_nothing_recorded(settlement, open_model, operator, sign, now):
    broke = Account.create()
    r = receipt("broke", open_model, operator.address, now(), payer=broke.address, price=PRICE)
    auth = authorization(r)
    with reverts():
        settle_for(settlement, r, sign(r, operator), auth, sign_payment(settlement, auth, broke.key), operator)
    assert settlement.recordOf(broke.address, r.requestId).status == Status.NONE
    assert settlement.proceedsOf(operator) == 0


# ---------------------------------------------------------------- the authorization


def test_settle_with_authorization__reused_for_same_request__already_settled(settlement, priced, operator, alice, bob,
                                                                            sign, sign_auth):
    r = priced("reuse")
    auth = authorization(r, max_amount=10 * PRICE)
    auth_signature = sign_auth(auth, alice)
    settle_for(settlement, r, sign(r, operator), auth, auth_signature, bob)
    again = r.with_changes(outputHash=b"\x01" * 32)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        settle_for(settlement, again, sign(again, operator), auth, auth_signature, bob)


MISMATCHES = {
    "request": lambda r, other: dict(requestId=other.requestId),
    "node": lambda r, other: dict(node=other.signer),
    "model": lambda r, other: dict(modelId=other.modelId),
    "input": lambda r, other: dict(inputHash=other.inputHash),
}


@pytest.mark.parametrize("field", MISMATCHES, ids=list(MISMATCHES))
def test_settle_with_authorization__for_other_request_node_model_or_input__mismatch(field, settlement, priced,
                                                                                   fork_model, operator, alice, bob,
                                                                                   sign, sign_auth, now):
    """An authorization is for one request, one node, one model and one input: nothing else can use it."""
    r = priced(f"authorized-{field}")
    other = receipt(f"other-{field}", fork_model, bob.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    auth = replace(auth, **MISMATCHES[field](r, other))
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)
    assert settlement.recordOf(alice, r.requestId).status == Status.NONE


def test_settle_with_authorization__other_node_answers__mismatch(settlement, staking, priced, operator, alice, bob,
                                                                sign, sign_auth):
    """A second active node cannot answer (and be paid for) a request the payer authorized for another node."""
    staking.registerOperator(1, 50_000 * OPG, 0, sender=bob)
    honest = priced("front-run")
    auth = authorization(honest, max_amount=3 * PRICE)
    auth_signature = sign_auth(auth, alice)
    stolen = honest.with_changes(signer=bob.address, price=3 * PRICE, outputHash=answer_hash("bob's answer"))
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=honest.requestId):
        settle_for(settlement, stolen, sign(stolen, bob), auth, auth_signature, bob)
    settle_for(settlement, honest, sign(honest, operator), auth, auth_signature, operator)
    assert settlement.proceedsOf(bob) == 0
    assert settlement.proceedsOf(operator) == expected_split(PRICE)["node"]


def test_settle_with_authorization__tee_authorization_naming_key__mismatch(settlement, open_model, tee_key, alice, bob,
                                                                           sign, sign_auth, heartbeat):
    """For TEE receipts the node is the TEE's operator, not its signing key."""
    r = receipt("tee-key-auth", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address,
                price=PRICE)
    auth = authorization(r)  # node defaults to the signer: the TEE key
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        settle_for(settlement, r, sign(r, tee_key), auth, sign_auth(auth, alice), bob)


def test_settle_with_authorization__price_above_authorization__named_error(settlement, priced, operator, alice, bob,
                                                                           sign, sign_auth):
    r = priced("exceeded")
    auth = authorization(r, max_amount=PRICE - 1)
    with reverts_exactly(settlement.InferenceSettlementPriceAboveAuthorization, price=PRICE, maxAmount=PRICE - 1):
        settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)


def test_settle_with_authorization__expired__named_error(settlement, priced, operator, alice, bob, sign, sign_auth,
                                                         now, chain):
    r = priced("expired")
    auth = authorization(r, deadline=now() + 10)
    advance(chain, 60)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationExpired, deadline=auth.deadline):
        settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)


def test_settle_with_authorization__nonce_ahead_of_the_payers__stale(settlement, priced, operator, alice, bob, sign,
                                                                    sign_auth):
    """Only the current epoch's authorizations pay: one signed for a later nonce is refused too (it would
    otherwise be live already, before the payer revoked anything)."""
    r = priced("ahead")
    auth = authorization(r, nonce=1)
    with reverts_exactly(settlement.InferenceSettlementStaleAuthorization, nonce=1, currentNonce=0):
        settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)


def test_settle_with_authorization__authorizations_revoked__stale(settlement, priced, operator, alice, bob, sign,
                                                                  sign_auth):
    r = priced("revoked")
    auth = authorization(r)
    tx = settlement.revokeAuthorizations(sender=alice)
    assert tx.events.filter(settlement.AuthorizationsRevoked)[0].newNonce == 1
    with reverts_exactly(settlement.InferenceSettlementStaleAuthorization, nonce=0, currentNonce=1):
        settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)
    # An authorization for the new epoch works.
    fresh = authorization(r, nonce=1)
    settle_for(settlement, r, sign(r, operator), fresh, sign_auth(fresh, alice), bob)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL


def test_settle_with_authorization__signed_by_someone_else__bad_authorization(settlement, priced, operator, alice, bob,
                                                                              sign, sign_auth):
    r = priced("not-payer")
    auth = authorization(r)
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=alice.address):
        settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, bob), bob)
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=alice.address):
        settle_for(settlement, r, sign(r, operator), auth, b"", bob)


def test_settle_with_authorization__free_receipt_without_authorization__mismatch(settlement, open_model, operator,
                                                                                alice, bob, sign, now):
    """Consent is needed for every record, free or priced: nobody occupies a payer's request id for free."""
    r = receipt("free", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        settlement.settleWithAuthorization(r.as_args(), sign(r, operator), NO_AUTHORIZATION, b"", sender=bob)
    assert settlement.recordOf(alice, r.requestId).status == Status.NONE


def test_settle_with_authorization__free_receipt_with_authorization__final_nothing_charged(settlement, token,
                                                                                          open_model, operator, alice,
                                                                                          bob, sign, sign_auth, now):
    r = receipt("free-authorized", open_model, operator.address, now(), payer=alice.address)
    auth = authorization(r)
    assert auth.maxAmount == 0
    before = token.balanceOf(alice)
    tx = settle_for(settlement, r, sign(r, operator), auth, sign_auth(auth, alice), bob)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert token.balanceOf(alice) == before
    assert not tx.events.filter(settlement.PaymentCharged)


def test_settle_with_authorization__payer_calls_itself__authorization_ignored(settlement, priced, operator, alice,
                                                                              sign):
    r = priced("payer-itself")
    settlement.settleWithAuthorization(r.as_args(), sign(r, operator), NO_AUTHORIZATION, b"", sender=alice)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL


def test_payment_digest__python_equals_contract(settlement):
    auth = PaymentAuthorization(payer="0x00000000000000000000000000000000000000B2", requestId=b"\x07" * 32,
                                node="0x00000000000000000000000000000000000000A1", modelId=b"\x08" * 32,
                                inputHash=b"\x09" * 32, mode=Mode.TEE, maxAmount=123, deadline=456, nonce=7)
    assert settlement.paymentDigest(auth.as_args()) == payment_digest(settlement, auth)


# ---------------------------------------------------------------- withdrawals and escrow


def test_withdraw_proceeds__after_payment__paid_once(settlement, token, priced, operator, alice, sign):
    r = priced("withdraw")
    settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    owed = settlement.proceedsOf(operator)
    before = token.balanceOf(operator)
    tx = settlement.withdrawProceeds(sender=operator)
    assert token.balanceOf(operator) == before + owed
    assert tx.events.filter(settlement.ProceedsWithdrawn) == [settlement.ProceedsWithdrawn(operator, owed)]
    with reverts_exactly(settlement.InferenceSettlementNothingToWithdraw, account=operator.address):
        settlement.withdrawProceeds(sender=operator)


def test_settle__priced__stakers_share_paid_into_the_pool_at_once(settlement, staking, priced, operator, alice, sign):
    """Stakers are paid as the price is split, at the operator's commission of that moment (finding A8)."""
    r = priced("stakers")
    reserve = staking.rewardReserve()
    commission = staking.pool(operator).commissionBps
    tx = settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    to_stakers = expected_split(PRICE)["stakers"]
    assert staking.rewardReserve() == reserve + to_stakers
    assert tx.events.filter(staking.RewardNotified) == [
        staking.RewardNotified(operator, settlement, to_stakers, to_stakers * commission // BPS)]


def test_escrow__deposit_and_withdraw__balances_follow(settlement, token, alice):
    before = token.balanceOf(alice)
    settlement.deposit(3 * OPG, sender=alice)
    settlement.withdrawEscrow(OPG, sender=alice)
    assert settlement.escrowOf(alice) == 2 * OPG
    assert token.balanceOf(alice) == before - 2 * OPG
    with reverts_exactly(settlement.InferenceSettlementInsufficientEscrow, available=2 * OPG, requested=3 * OPG):
        settlement.withdrawEscrow(3 * OPG, sender=alice)
    with reverts_exactly(settlement.InferenceSettlementZeroAmount):
        settlement.deposit(0, sender=alice)
    with reverts_exactly(settlement.InferenceSettlementZeroAmount):
        settlement.withdrawEscrow(0, sender=alice)


def test_escrow__contract_account_deposits_and_withdraws__its_own_escrow_and_events(project, deployer, settlement,
                                                                                  token, alice):
    """The escrow and its events belong to the calling account (a smart wallet here), never to the transaction's
    origin (the wallet's owner)."""
    wallet = deployer.deploy(project.ExploitOwnerWallet, alice)
    token.transfer(wallet, 3 * OPG, sender=alice)
    wallet.execute(token, token.approve.encode_input(settlement, 3 * OPG), sender=alice)
    deposited = wallet.execute(settlement, settlement.deposit.encode_input(3 * OPG), sender=alice)
    withdrawn = wallet.execute(settlement, settlement.withdrawEscrow.encode_input(OPG), sender=alice)
    assert deposited.events.filter(settlement.Deposited) == [settlement.Deposited(wallet, 3 * OPG)]
    assert withdrawn.events.filter(settlement.EscrowWithdrawn) == [settlement.EscrowWithdrawn(wallet, OPG)]
    assert (settlement.escrowOf(wallet), settlement.escrowOf(alice)) == (2 * OPG, 0)
    assert token.balanceOf(wallet) == OPG


def test_set_fee_split__above_half__refused(settlement, gov):
    with reverts_exactly(settlement.InferenceSettlementFeeSplitTooHigh, totalBps=5_001, maximum=5_000):
        settlement.setFeeSplit(1, 2_500, 2_500, sender=gov)


@settings(max_examples=15, deadline=None)
@pytest.mark.property
@given(price=st.integers(min_value=1, max_value=10**24), protocol=st.integers(0, 2_000), stakers=st.integers(0, 1_500),
       owner=st.integers(0, 1_500))
def test_split__random_price_and_shares__exact_and_conserved(settlement, staking, token, fork_model, operator, alice,
                                                             bob, carol, treasury, gov, sign, now, price, protocol,
                                                             stakers, owner):
    with isolated_example():
        settlement.setFeeSplit(protocol, stakers, owner, sender=gov)
        r = receipt(f"split {price} {protocol} {stakers} {owner}", fork_model, operator.address, now(),
                    payer=alice.address, price=price)
        held_before = token.balanceOf(settlement)
        tx = settlement.settle(r.as_args(), sign(r, operator), sender=alice)
        split = expected_split(price, protocol, stakers, owner, royalty=1_000)
        assert settlement.proceedsOf(operator) == split["node"]
        assert settlement.proceedsOf(bob) == split["owner"]
        assert settlement.proceedsOf(carol) == split["royalty"]
        assert settlement.proceedsOf(treasury) == split["treasury"]
        assert staker_rewards_paid(tx, settlement, staking, operator) == split["stakers"]
        assert sum(split.values()) == price
        assert token.balanceOf(settlement) - held_before == price - split["stakers"], "all but the stakers' share held"
        assert_nothing_to_zero(settlement)
