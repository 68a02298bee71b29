"""Asynchronous settlement: post first, deliver the evidence by the deadline, or fail, slash and refund."""

import ape
import pytest
from ape.utils import ZERO_ADDRESS
from eth_account import Account

from opgkit.receipts import Status, zkml_proof_evidence
from opgkit.testing import advance
from settlement_helpers import PRICE, PROOF_WINDOW, Mode, authorization, receipt, zk_outputs, zk_receipt


@pytest.fixture
def tee_receipt(open_model, tee_key, alice, heartbeat):
    def make(label, price=PRICE):
        return receipt(label, open_model, tee_key.address, heartbeat(), mode=Mode.TEE,
                       payer=alice.address if price else ZERO_ADDRESS, price=price)

    return make


def post_paid(settlement, r, payer, sign_auth, node):
    auth = authorization(r)
    return settlement.postPendingAndPay(r.as_args(), auth.as_args(), sign_auth(auth, payer), sender=node)


def test_post_pending__tee_by_its_operator__pending_and_payment_held(settlement, token, tee_receipt, operator, alice,
                                                                    sign_auth):
    r = tee_receipt("async-tee")
    before = token.balanceOf(alice)
    tx = post_paid(settlement, r, alice, sign_auth, operator)
    out = settlement.verifiedOutput(r.requestId)
    assert (out.status, out.mode, out.settledAt) == (Status.PENDING, Mode.TEE, 0)
    pending = settlement.pendingProof(r.requestId)
    assert (pending.node, pending.payer, pending.held) == (operator.address, alice.address, PRICE)
    assert pending.deadline == tx.timestamp + PROOF_WINDOW
    assert token.balanceOf(alice) == before - PRICE
    assert settlement.proceedsOf(operator) == 0


def test_deliver_proof__tee_signature_in_time__final_and_paid(settlement, tee_receipt, tee_key, operator, alice, bob,
                                                             sign, sign_auth):
    r = tee_receipt("deliver-tee")
    post_paid(settlement, r, alice, sign_auth, operator)
    settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=bob)
    out = settlement.verifiedOutput(r.requestId)
    assert out.status == Status.FINAL and out.settledAt > 0
    assert settlement.proceedsOf(operator) > 0
    assert settlement.pendingProof(r.requestId).node == ZERO_ADDRESS
    with ape.reverts(settlement.InferenceSettlementNotPending, requestId=r.requestId):
        settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=bob)


def test_deliver_proof__zkml_in_time__final(settlement, zk_model, operator, bob, now):
    inputs = [7, 8, 9]
    r = zk_receipt("async-zk", zk_model, operator.address, now(), inputs)
    settlement.postPending(r.as_args(), sender=operator)
    settlement.deliverProof(r.as_args(), zkml_proof_evidence(b"", inputs, zk_outputs(inputs)), sender=bob)
    assert settlement.verifiedOutput(r.requestId).status == Status.FINAL


def test_deliver_proof__zkml_proof_of_other_input__input_not_bound(settlement, zk_model, operator, bob, now):
    inputs, other = [7, 8, 9], [1, 1, 1]
    r = zk_receipt("async-zk-other", zk_model, operator.address, now(), inputs)
    settlement.postPending(r.as_args(), sender=operator)
    with ape.reverts(settlement.InferenceSettlementInputNotBound, inputHash=r.inputHash):
        settlement.deliverProof(r.as_args(), zkml_proof_evidence(b"", other, zk_outputs(other)), sender=bob)


def test_deliver_proof__tee_signature_by_other_key__bad_signature(settlement, tee_receipt, tee_key, operator, bob,
                                                                  sign):
    r = tee_receipt("async-badsig", price=0)
    settlement.postPending(r.as_args(), sender=operator)
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=tee_key.address):
        settlement.deliverProof(r.as_args(), sign(r, Account.create()), sender=bob)


def test_deliver_proof__different_receipt__mismatch(settlement, tee_receipt, tee_key, operator, bob, sign):
    r = tee_receipt("async-mismatch", price=0)
    settlement.postPending(r.as_args(), sender=operator)
    swapped = r.with_changes(outputHash=b"\x05" * 32)
    with ape.reverts(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        settlement.deliverProof(swapped.as_args(), sign(swapped, tee_key), sender=bob)


def test_deliver_proof__after_deadline__refused(settlement, tee_receipt, tee_key, operator, bob, sign, chain):
    r = tee_receipt("async-late", price=0)
    tx = settlement.postPending(r.as_args(), sender=operator)
    advance(chain, PROOF_WINDOW + 1)
    with ape.reverts(settlement.InferenceSettlementProofDeadlinePassed, requestId=r.requestId, deadline=tx.timestamp + PROOF_WINDOW):
        settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=bob)


def test_report_missed_proof__after_deadline__failed_node_slashed_payer_refunded(settlement, staking, tee_receipt,
                                                                               operator, alice, reporter, sign_auth,
                                                                               chain):
    r = tee_receipt("async-missed")
    post_paid(settlement, r, alice, sign_auth, operator)
    bond = staking.selfBond(operator)
    advance(chain, PROOF_WINDOW + 1)
    tx = settlement.reportMissedProof(r.requestId, sender=reporter)
    assert settlement.verifiedOutput(r.requestId).status == Status.FAILED
    assert settlement.escrowOf(alice) == PRICE
    assert staking.selfBond(operator) == bond - bond * settlement.nodeSlashBps() // 10_000
    assert tx.events.filter(staking.Slashed)[0].reporter == reporter.address
    assert tx.events.filter(settlement.ProofMissed)[0].refund == PRICE
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
        settlement.requireVerified(r.requestId, Mode.VANILLA, False)
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.postPending(r.with_changes(price=0, payer=ZERO_ADDRESS).as_args(), sender=operator)


def test_report_missed_proof__before_deadline__not_due(settlement, tee_receipt, operator, reporter):
    r = tee_receipt("async-early", price=0)
    tx = settlement.postPending(r.as_args(), sender=operator)
    with ape.reverts(settlement.InferenceSettlementProofNotDue, requestId=r.requestId, deadline=tx.timestamp + PROOF_WINDOW):
        settlement.reportMissedProof(r.requestId, sender=reporter)


def test_report_missed_proof__delivered__not_pending(settlement, tee_receipt, tee_key, operator, reporter, sign, chain):
    r = tee_receipt("async-done", price=0)
    settlement.postPending(r.as_args(), sender=operator)
    settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=operator)
    advance(chain, PROOF_WINDOW + 1)
    with ape.reverts(settlement.InferenceSettlementNotPending, requestId=r.requestId):
        settlement.reportMissedProof(r.requestId, sender=reporter)


def test_post_pending__vanilla__not_async(settlement, open_model, operator, now):
    r = receipt("async-vanilla", open_model, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementModeNotAsync, mode=Mode.VANILLA):
        settlement.postPending(r.as_args(), sender=operator)


def test_post_pending__tee_of_another_operator__not_node(settlement, tee_receipt, tee_key, bob):
    r = tee_receipt("async-thief", price=0)
    with ape.reverts(settlement.InferenceSettlementNotNode, account=bob.address, signer=tee_key.address):
        settlement.postPending(r.as_args(), sender=bob)


def test_post_pending__zkml_for_another_signer__not_node(settlement, zk_model, operator, bob, now):
    r = zk_receipt("async-zk-thief", zk_model, operator.address, now(), [1, 2, 3])
    with ape.reverts(settlement.InferenceSettlementNotNode, account=bob.address, signer=operator.address):
        settlement.postPending(r.as_args(), sender=bob)


def test_post_pending__priced_without_payment__payment_required(settlement, tee_receipt, operator):
    r = tee_receipt("async-unpaid")
    with ape.reverts(settlement.InferenceSettlementPaymentRequired, price=PRICE):
        settlement.postPending(r.as_args(), sender=operator)


def test_post_pending__request_already_settled__refused(settlement, tee_receipt, tee_key, operator, sign):
    r = tee_receipt("async-settled", price=0)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=operator)
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.postPending(r.as_args(), sender=operator)
