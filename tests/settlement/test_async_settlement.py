"""Asynchronous settlement: the node posts first with the payer's consent, delivers the evidence by the deadline,
or the request fails, the node is slashed once and the payer refunded to escrow."""

import pytest
from eth_account import Account

from opgkit.receipts import NO_AUTHORIZATION, Status, zkml_proof_evidence
from opgkit.testing import advance, reverts
from settlement_helpers import (
    DAY, HOUR, INFERENCE_BIT, PRICE, PROOF_WINDOW, ZERO_ADDRESS, Mode, authorization, missed_proof_evidence_id, receipt,
    recorded_hash, reverts_exactly, zk_outputs, zk_receipt,
)

PROOF_REPORT_MARGIN = HOUR
NODE_BOND = 50_000 * 10**18  # as in conftest.py



@pytest.fixture
def post(settlement, operator, alice, sign_auth, chain):
    """Post `r` as pending from `node` (the TEE operator by default) under `payer`'s authorization for `node`, in a
    later second than the receipt's (a pending result needs a receipt from an earlier second)."""

    def post(r, node=None, payer=None):
        if chain.pending_timestamp <= r.timestamp:
            advance(chain, 1)
        node = node or operator
        auth = authorization(r, node=node.address)
        return settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, payer or alice), sender=node)

    return post


# ---------------------------------------------------------------- posting


def test_post_pending__tee_by_its_operator__pending_and_payment_held(settlement, token, tee_receipt, post, operator,
                                                                    alice):
    r = tee_receipt("async-tee")
    before = token.balanceOf(alice)
    tx = post(r)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.mode, record.settledAt) == (Status.PENDING, Mode.TEE, 0)
    assert record.receiptHash == recorded_hash(settlement, r)
    custody = settlement.custodyOf(alice, r.requestId)
    assert (custody.node, custody.held) == (operator.address, PRICE)
    requested = tx.events.filter(settlement.ProofRequested)[0]
    assert (requested.requestId, requested.payer, requested.node, requested.deadline) == (
        r.requestId, alice.address, operator.address, tx.timestamp + PROOF_WINDOW)
    assert token.balanceOf(alice) == before - PRICE
    assert settlement.proceedsOf(operator) == 0
    # Pending is good enough for a consumer that does not need finality, and no more.
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.TEE, False) == 0
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.TEE, True)


def test_post_pending__node_is_payer__no_authorization_needed(settlement, tee_receipt, operator):
    r = tee_receipt("async-own", price=0).with_changes(payer=operator.address)
    settlement.postPending(r.as_args(), NO_AUTHORIZATION, b"", sender=operator)
    assert settlement.recordOf(operator, r.requestId).status == Status.PENDING


def test_post_pending__vanilla__not_async(settlement, open_model, operator, alice, post, now):
    r = receipt("async-vanilla", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementModeNotAsync, mode=Mode.VANILLA):
        post(r)


def test_post_pending__tee_by_non_node__not_node(settlement, tee_receipt, post, operator, bob):
    r = tee_receipt("async-thief", price=0)
    with reverts_exactly(settlement.InferenceSettlementNotNode, account=bob.address, node=operator.address):
        post(r, node=bob)


def test_post_pending__zkml_for_another_signer__not_node(settlement, zk_model, operator, alice, bob, post, now):
    r = zk_receipt("async-zk-thief", zk_model, operator.address, now(), [1, 2, 3], payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementNotNode, account=bob.address, node=operator.address):
        post(r, node=bob)


def test_post_pending__zkml_by_another_active_node__not_node(settlement, staking, zk_model, operator, alice, bob,
                                                            post, now):
    """An active node cannot post another node's receipt, whichever of the two addresses is the smaller."""
    staking.registerOperator(INFERENCE_BIT, NODE_BOND, 0, sender=alice)
    assert int(operator.address, 16) < int(alice.address, 16)
    for poster, node in ((operator, alice), (alice, operator)):
        r = zk_receipt(f"async-zk-{poster.address}", zk_model, node.address, now(), [1, 2, 3], payer=bob.address)
        with reverts_exactly(settlement.InferenceSettlementNotNode, account=poster.address, node=node.address):
            post(r, node=poster, payer=bob)


def test_post_pending__node_jailed__not_node(settlement, tee_receipt, post, operator, jail):
    r = tee_receipt("async-jailed-node", price=0)
    jail(operator)
    with reverts_exactly(settlement.InferenceSettlementNotNode, account=operator.address, node=operator.address):
        post(r)


def test_post_pending__tee_key_unknown_to_registry__unknown_signer(settlement, open_model, alice, bob, post, now):
    unknown = Account.create()
    r = receipt("async-unknown-tee", open_model, unknown.address, now(), mode=Mode.TEE, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementUnknownSigner, signer=unknown.address):
        post(r, node=bob)


def test_post_pending__zero_payer__zero_payer(settlement, tee_receipt, operator):
    r = tee_receipt("async-no-payer", price=0).with_changes(payer=ZERO_ADDRESS)
    with reverts_exactly(settlement.InferenceSettlementZeroPayer, requestId=r.requestId):
        settlement.postPending(r.as_args(), NO_AUTHORIZATION, b"", sender=operator)


def test_post_pending__without_payer_consent__mismatch(settlement, tee_receipt, operator, alice):
    """The node cannot put a request in a payer's namespace (nor charge it) on its own."""
    for price in (PRICE, 0):
        r = tee_receipt(f"async-unconsented-{price}", price=price)
        with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
            settlement.postPending(r.as_args(), NO_AUTHORIZATION, b"", sender=operator)
        assert settlement.recordOf(alice, r.requestId).status == Status.NONE


def test_post_pending__authorization_naming_tee_key__mismatch(settlement, tee_receipt, tee_key, operator, alice,
                                                             sign_auth):
    r = tee_receipt("async-key-auth")
    auth = authorization(r, node=tee_key.address)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)


def test_post_pending__payer_without_funds__reverts_and_nothing_recorded(settlement, tee_receipt, operator, sign_auth):
    broke = Account.create()
    r = tee_receipt("async-broke").with_changes(payer=broke.address)
    auth = authorization(r, node=operator.address)
    with reverts():
        settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, broke), sender=operator)
    assert settlement.recordOf(broke.address, r.requestId).status == Status.NONE


def test_post_pending__request_already_settled__already_settled(settlement, tee_receipt, tee_key, post, alice, sign):
    r = tee_receipt("async-settled", price=0)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        post(r)


def test_post_pending__request_already_pending__already_settled(settlement, tee_receipt, post, alice):
    r = tee_receipt("async-posted-twice", price=0)
    post(r)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        post(r)


# ---------------------------------------------------------------- delivering


def test_deliver_proof__tee_signature_in_time__final_and_paid(settlement, tee_receipt, tee_key, post, operator, alice,
                                                             bob, sign):
    r = tee_receipt("deliver-tee")
    post(r)
    tx = settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=bob)
    delivered = tx.events.filter(settlement.ProofDelivered)[0]
    assert (delivered.requestId, delivered.payer, delivered.deliveredBy) == (r.requestId, alice.address, bob.address)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.settledAt) == (Status.FINAL, tx.timestamp)
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.TEE, True) == tx.timestamp
    assert settlement.proceedsOf(operator) > 0
    assert settlement.custodyOf(alice, r.requestId) == (ZERO_ADDRESS, 0)
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=bob)


def test_deliver_proof__zkml_in_time__final(settlement, zk_model, operator, alice, bob, post, now):
    inputs = [7, 8, 9]
    r = zk_receipt("async-zk", zk_model, operator.address, now(), inputs, payer=alice.address, price=PRICE)
    post(r)
    assert settlement.custodyOf(alice, r.requestId) == (operator.address, PRICE)
    settlement.deliverProof(r.as_args(), zkml_proof_evidence(b"", inputs, zk_outputs(inputs)), sender=bob)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.mode) == (Status.FINAL, Mode.ZKML)
    assert settlement.proceedsOf(operator) > 0


def test_deliver_proof__zkml_proof_of_other_input__input_not_bound(settlement, zk_model, operator, alice, bob, post,
                                                                   now):
    inputs, other = [7, 8, 9], [1, 1, 1]
    r = zk_receipt("async-zk-other", zk_model, operator.address, now(), inputs, payer=alice.address)
    post(r)
    with reverts_exactly(settlement.InferenceSettlementInputNotBound, inputHash=r.inputHash):
        settlement.deliverProof(r.as_args(), zkml_proof_evidence(b"", other, zk_outputs(other)), sender=bob)


def test_deliver_proof__tee_signature_by_other_key__bad_signature(settlement, tee_receipt, tee_key, post, bob, sign):
    r = tee_receipt("async-badsig", price=0)
    post(r)
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=tee_key.address):
        settlement.deliverProof(r.as_args(), sign(r, Account.create()), sender=bob)


def test_deliver_proof__different_receipt__mismatch(settlement, tee_receipt, tee_key, post, bob, sign):
    r = tee_receipt("async-mismatch", price=0)
    post(r)
    swapped = r.with_changes(outputHash=b"\x05" * 32)
    with reverts_exactly(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        settlement.deliverProof(swapped.as_args(), sign(swapped, tee_key), sender=bob)


def test_deliver_proof__after_deadline__refused(settlement, tee_receipt, tee_key, post, bob, sign, chain):
    r = tee_receipt("async-late", price=0)
    tx = post(r)
    advance(chain, PROOF_WINDOW + 1)
    with reverts_exactly(settlement.InferenceSettlementProofDeadlinePassed, requestId=r.requestId,
                         deadline=tx.timestamp + PROOF_WINDOW):
        settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=bob)


def test_deliver_proof__operator_jailed_after_posting__final_and_not_slashed_again(settlement, staking, tee_receipt,
                                                                                  tee_key, post, operator, alice,
                                                                                  reporter, sign, jail, chain):
    """Evidence is judged at the receipt's timestamp: a jail for something else does not make it undeliverable."""
    r = tee_receipt("async-jailed")
    post(r)
    evidence = sign(r, tee_key)
    advance(chain, 5)
    jail(operator)
    assert not staking.isActiveOperator(operator, 1)

    settlement.deliverProof(r.as_args(), evidence, sender=operator)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert settlement.proceedsOf(operator) > 0

    bond = staking.selfBond(operator)
    advance(chain, PROOF_WINDOW + 1)
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    assert staking.selfBond(operator) == bond


def test_post_pending__tee_key_inactive_at_timestamp__signer_inactive(settlement, tees, open_model, tee_key, post,
                                                                       operator, alice, heartbeat, now):
    """The key is judged at posting exactly as its evidence will be: a result whose evidence could never be
    delivered (and whose node would then be slashed) is refused up front."""
    heartbeat()
    tees.setEnabled(tee_key.address, False, sender=operator)
    r = receipt("async-disabled-tee", open_model, tee_key.address, now(), mode=Mode.TEE, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=tee_key.address, timestamp=r.timestamp):
        post(r)


# ---------------------------------------------------------------- missing the deadline


def test_record__overdue_pending__reads_failed_before_report(settlement, tee_receipt, post, alice, chain):
    r = tee_receipt("async-overdue", price=0)
    post(r)
    advance(chain, PROOF_WINDOW + 1)  # deadline passed, nobody has reported it yet
    assert settlement.recordOf(alice, r.requestId).status == Status.FAILED
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, False)


def test_report_missed_proof__after_deadline__failed_node_slashed_payer_refunded_once(settlement, staking, token,
                                                                                     tee_receipt, tee_key, post,
                                                                                     operator, alice, reporter, sign,
                                                                                     chain):
    r = tee_receipt("async-missed")
    post(r)
    bond = staking.selfBond(operator)
    held = token.balanceOf(settlement)
    advance(chain, PROOF_WINDOW + 1)
    tx = settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    assert settlement.recordOf(alice, r.requestId).status == Status.FAILED
    assert settlement.escrowOf(alice) == PRICE
    assert token.balanceOf(settlement) == held  # the refund stays in custody, as the payer's escrow
    assert settlement.custodyOf(alice, r.requestId) == (ZERO_ADDRESS, 0)
    assert staking.selfBond(operator) == bond - bond * settlement.nodeSlashBps() // 10_000
    slashed = tx.events.filter(staking.Slashed)[0]
    assert (slashed.operator, slashed.reporter, slashed.evidenceId) == (
        operator.address, reporter.address, missed_proof_evidence_id(settlement, alice.address, r.requestId))
    missed = tx.events.filter(settlement.ProofMissed)[0]
    assert (missed.requestId, missed.payer, missed.node, missed.refund) == (
        r.requestId, alice.address, operator.address, PRICE)
    refunded = tx.events.filter(settlement.PaymentRefunded)[0]
    assert (refunded.requestId, refunded.payer, refunded.amount) == (r.requestId, alice.address, PRICE)
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, False)

    # Exactly once: a second report neither refunds nor slashes again.
    bond_after = staking.selfBond(operator)
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    assert settlement.escrowOf(alice) == PRICE
    assert staking.selfBond(operator) == bond_after
    # And the failed request cannot be recorded again.
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)


def test_report_missed_proof__before_deadline__not_due(settlement, tee_receipt, post, alice, reporter):
    r = tee_receipt("async-early", price=0)
    tx = post(r)
    with reverts_exactly(settlement.InferenceSettlementProofNotDue, requestId=r.requestId,
                         deadline=tx.timestamp + PROOF_WINDOW):
        settlement.reportMissedProof(alice, r.requestId, sender=reporter)


def test_report_missed_proof__delivered__not_pending(settlement, tee_receipt, tee_key, post, operator, alice, reporter,
                                                     sign, chain):
    r = tee_receipt("async-done", price=0)
    post(r)
    settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=operator)
    advance(chain, PROOF_WINDOW + 1)
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.reportMissedProof(alice, r.requestId, sender=reporter)


def test_report_missed_proof__other_payers_namespace__not_pending(settlement, tee_receipt, post, bob, reporter, chain):
    r = tee_receipt("async-namespace", price=0)
    post(r)
    advance(chain, PROOF_WINDOW + 1)
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=bob.address, requestId=r.requestId):
        settlement.reportMissedProof(bob, r.requestId, sender=reporter)


# ---------------------------------------------------------------- the proof window against the unbonding delay


def test_set_proof_window__window_plus_margin_above_unbonding_delay__out_of_bounds(settlement, staking, gov):
    delay = staking.unbondingDelay()
    too_long = delay - PROOF_REPORT_MARGIN + 1
    with reverts_exactly(settlement.InferenceSettlementProofWindowOutOfBounds, window=too_long, unbondingDelay=delay):
        settlement.setProofWindow(too_long, sender=gov)
    with reverts_exactly(settlement.InferenceSettlementProofWindowOutOfBounds, window=delay, unbondingDelay=delay):
        settlement.setProofWindow(delay, sender=gov)
    settlement.setProofWindow(delay - PROOF_REPORT_MARGIN, sender=gov)
    assert settlement.proofWindow() == delay - PROOF_REPORT_MARGIN


def test_post_pending__unbonding_delay_shortened_after_window_set__out_of_bounds(settlement, staking, tee_receipt, post,
                                                                                alice, gov):
    settlement.setProofWindow(2 * DAY, sender=gov)
    staking.setUnbondingDelay(DAY, sender=gov)
    r = tee_receipt("async-short-delay", price=0)
    with reverts_exactly(settlement.InferenceSettlementProofWindowOutOfBounds, window=2 * DAY, unbondingDelay=DAY):
        post(r)
    assert settlement.recordOf(alice, r.requestId).status == Status.NONE
