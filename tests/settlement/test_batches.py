"""Batch settlement: commit, inclusion, claims with the payer's consent, held payments, and every fault a
challenge can prove (judged as of the posting, from the leaf alone)."""

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit.receipts import NO_AUTHORIZATION, Fault, Status
from opgkit.testing import advance
from settlement_helpers import (
    CHALLENGE_WINDOW, DAY, HOUR, INFERENCE_BIT, MAX_RECEIPT_AGE, OPG, PRICE, RELAYER_BIT, TEE_BIT, ZERO_ADDRESS,
    Mode, authorization, funds_of, post_batch, receipt, recorded_hash, reverts_exactly, signed_batch, zk_receipt,
)

NODE_BOND = 50_000 * OPG  # as in conftest.py
BAD_SIGNATURE = b"\x11" * 65
NODE_SHARE_BPS = 10_000 - 500 - 1_000 - 2_000  # what the default fee split leaves the node


@pytest.fixture
def honest(open_model, operator, alice, now):
    """A leaf signed by the active node `operator`, for a request of `alice` (free unless priced)."""

    def make(label, payer=None, **kwargs):
        return receipt(label, open_model, operator.address, now(), payer=(payer or alice).address, **kwargs), operator

    return make


@pytest.fixture
def forged(open_model, operator, alice, now):
    """A leaf whose signature is not its signer's: a BadSignature fault."""
    return lambda label: (receipt(label, open_model, operator.address, now(), payer=alice.address), None, BAD_SIGNATURE)


@pytest.fixture
def copycat_relayer(staking, bob):
    staking.registerOperator(RELAYER_BIT, NODE_BOND, 0, sender=bob)
    return bob


def claim(batches, batch_id, batch, index, payer):
    """The payer claims its own leaf: no authorization needed."""
    return batches.claimBatchReceipt(batch_id, batch.leaf(index), NO_AUTHORIZATION, b"", sender=payer)


# ---------------------------------------------------------------- posting and inclusion


def test_post_batch__active_relayer__pending_until_window_ends(batches, make_batch, honest, operator2, chain):
    batch = make_batch([honest(f"b{i}") for i in range(4)])
    count_before = batches.batchCount()
    tx = batches.postBatch(batch.root, len(batch), "ipfs://batch", sender=operator2)
    event = tx.events.filter(batches.BatchPosted)[0]
    batch_id = event.batchId
    assert batch_id == count_before + 1 == batches.batchCount()
    assert (event.relayer, event.root, event.count, event.dataUri) == (operator2.address, batch.root, 4, "ipfs://batch")
    stored = batches.batch(batch_id)
    assert (stored.relayer, stored.root, stored.rejected, stored.postedAt) == (operator2.address, batch.root, False,
                                                                             tx.timestamp)
    assert stored.challengeDeadline == stored.postedAt + CHALLENGE_WINDOW
    assert batches.batchStatus(batch_id) == Status.PENDING
    advance(chain, CHALLENGE_WINDOW + 1)
    assert batches.batchStatus(batch_id) == Status.FINAL


def test_post_batch__not_a_relayer__refused(batches, make_batch, honest, operator):
    batch = make_batch([honest("nr")])
    with reverts_exactly(batches.BatchSettlementNotRelayer, account=operator.address):
        batches.postBatch(batch.root, 1, "", sender=operator)


def test_post_batch__zero_count__refused(batches, operator2):
    with reverts_exactly(batches.BatchSettlementEmptyBatch):
        batches.postBatch(b"\x01" * 32, 0, "", sender=operator2)


def test_post_batch__more_than_max_size__refused(batches, operator2):
    maximum = batches.MAX_BATCH_SIZE()
    with reverts_exactly(batches.BatchSettlementBatchTooLarge, count=maximum + 1, maximum=maximum):
        batches.postBatch(b"\x01" * 32, maximum + 1, "", sender=operator2)


def test_batch_status__unknown_batch__none(batches):
    assert batches.batchStatus(batches.batchCount() + 1) == Status.NONE


def test_is_included__every_leaf_true_altered_false(batches, make_batch, post, honest):
    """opgkit's trees verify with OpenZeppelin's MerkleProof on chain, leaf by leaf."""
    batch = make_batch([honest(f"inc{i}") for i in range(7)])
    batch_id = post(batch)
    for index in range(len(batch)):
        assert batches.isIncluded(batch_id, batch.leaf(index))
    r, signature, proof = batch.leaf(3)
    assert not batches.isIncluded(batch_id, (batch.leaf(4)[0], signature, proof))
    assert not batches.isIncluded(batch_id, (r, BAD_SIGNATURE, proof))
    assert not batches.isIncluded(batch_id + 1, batch.leaf(3))


# ---------------------------------------------------------------- claims


def test_claim__by_payer_while_pending__recorded_pending_then_final(settlement, batches, make_batch, post, honest,
                                                                   alice, chain):
    batch = make_batch([honest(f"cl{i}") for i in range(3)])
    batch_id = post(batch)
    r = batch.signed[1].receipt
    tx = claim(batches, batch_id, batch, 1, alice)
    event = tx.events.filter(settlement.BatchReceiptRecorded)[0]
    assert (event.batchId, event.requestId, event.payer, event.outputHash) == (batch_id, r.requestId, alice.address,
                                                                               r.outputHash)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.mode, record.settledAt, record.receiptHash) == (
        Status.PENDING, Mode.VANILLA, 0, recorded_hash(settlement, r))
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, True)
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, False) == 0

    advance(chain, CHALLENGE_WINDOW + 1)
    final_at = batches.batch(batch_id).challengeDeadline + 1
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.settledAt) == (Status.FINAL, final_at)
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, True) == final_at
    with reverts_exactly(settlement.InferenceSettlementModeTooWeak, requestId=r.requestId, mode=Mode.VANILLA,
                         minMode=Mode.TEE):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.TEE, True)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        claim(batches, batch_id, batch, 1, alice)


def test_claim__third_party__needs_the_payers_authorization(settlement, batches, make_batch, post, honest, operator,
                                                            alice, bob, sign_auth):
    batch = make_batch([honest("consent"), honest("other")])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=operator)
    wrong_node = authorization(r, node=bob.address)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), wrong_node.as_args(), sign_auth(wrong_node, alice),
                                  sender=operator)
    auth = authorization(r)
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=alice.address):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, bob), sender=operator)
    assert settlement.recordOf(alice, r.requestId).status == Status.NONE

    batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert settlement.recordOf(alice, r.requestId).status == Status.PENDING


def test_claim__priced_leaf_after_window__charged_and_split_at_once(settlement, token, batches, make_batch, post,
                                                                    honest, operator, alice, sign_auth, chain):
    batch = make_batch([honest("paid-leaf", price=PRICE), honest("free-leaf")])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    advance(chain, CHALLENGE_WINDOW + 1)
    auth = authorization(r)
    before = token.balanceOf(alice)
    tx = batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert token.balanceOf(alice) == before - PRICE
    assert settlement.proceedsOf(operator) == PRICE * NODE_SHARE_BPS // 10_000
    assert settlement.custodyOf(alice, r.requestId).held == 0
    split = tx.events.filter(settlement.PaymentSplit)[0]
    assert (split.requestId, split.nodePayee, split.toNode) == (r.requestId, operator.address,
                                                                PRICE * NODE_SHARE_BPS // 10_000)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    with reverts_exactly(settlement.InferenceSettlementNothingHeld, requestId=r.requestId):
        settlement.releaseBatchPayment(r.as_args(), sender=operator)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert token.balanceOf(alice) == before - PRICE


def test_claim__priced_leaf_during_window__held_then_split_after_window(settlement, token, batches, make_batch, post,
                                                                       honest, operator, alice, bob, sign_auth, chain):
    batch = make_batch([honest("held-leaf", price=PRICE), honest("held-free")])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    auth = authorization(r)
    before = token.balanceOf(alice)
    batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert token.balanceOf(alice) == before - PRICE  # collected now, so the payer cannot walk away
    custody = settlement.custodyOf(alice, r.requestId)
    assert (custody.node, custody.held) == (ZERO_ADDRESS, PRICE)
    assert settlement.proceedsOf(operator) == 0
    with reverts_exactly(settlement.InferenceSettlementBatchNotFinal, batchId=batch_id):
        settlement.releaseBatchPayment(r.as_args(), sender=bob)

    advance(chain, CHALLENGE_WINDOW + 1)
    altered = r.with_changes(price=PRICE + 1)
    with reverts_exactly(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        settlement.releaseBatchPayment(altered.as_args(), sender=bob)
    tx = settlement.releaseBatchPayment(r.as_args(), sender=bob)  # anyone may release
    assert tx.events.filter(settlement.PaymentSplit)[0].toNode == PRICE * NODE_SHARE_BPS // 10_000
    assert settlement.proceedsOf(operator) == PRICE * NODE_SHARE_BPS // 10_000
    assert settlement.custodyOf(alice, r.requestId).held == 0
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert token.balanceOf(alice) == before - PRICE
    with reverts_exactly(settlement.InferenceSettlementNothingHeld, requestId=r.requestId):
        settlement.releaseBatchPayment(r.as_args(), sender=bob)


def test_release__batch_rejected__held_payment_refunded_to_escrow(settlement, token, batches, make_batch, post, honest,
                                                                  forged, operator, alice, reporter, sign_auth):
    batch = make_batch([honest("refund-leaf", price=PRICE), forged("refund-forged")])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    auth = authorization(r)
    batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    before = funds_of(settlement, token, alice)
    batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert settlement.recordOf(alice, r.requestId).status == Status.REJECTED

    escrow = settlement.escrowOf(alice)
    tx = settlement.releaseBatchPayment(r.as_args(), sender=reporter)
    refund = tx.events.filter(settlement.PaymentRefunded)[0]
    assert (refund.requestId, refund.payer, refund.amount) == (r.requestId, alice.address, PRICE)
    assert settlement.escrowOf(alice) == escrow + PRICE
    assert funds_of(settlement, token, alice) == before + PRICE
    assert settlement.proceedsOf(operator) == 0
    assert settlement.custodyOf(alice, r.requestId).held == 0
    with reverts_exactly(settlement.InferenceSettlementNothingHeld, requestId=r.requestId):
        settlement.releaseBatchPayment(r.as_args(), sender=reporter)


def test_claim__after_batch_rejected__claimable_again_held_payment_refunded_first(
        settlement, token, batches, make_batch, post, honest, forged, operator, alice, reporter, sign_auth,
        copycat_relayer, chain):
    """The same signed leaf in two batches: the first is rejected (for another leaf) while the payment for it is
    still held; claiming it from the second gives the held payment back before charging it again."""
    paid = honest("again-leaf", price=PRICE)
    first = make_batch([paid, forged("again-forged")])
    second = make_batch([paid, honest("again-other")])
    first_id = post(first)
    second_id = post(second, relayer=copycat_relayer)
    r = paid[0]
    auth = authorization(r)
    auth_signature = sign_auth(auth, alice)
    start = funds_of(settlement, token, alice)
    batches.claimBatchReceipt(first_id, first.leaf(0), auth.as_args(), auth_signature, sender=operator)
    batches.challenge(first_id, first.leaf(1), sender=reporter)
    assert settlement.custodyOf(alice, r.requestId).held == PRICE  # not released yet

    with reverts_exactly(batches.BatchSettlementBatchRejected, batchId=first_id):
        batches.claimBatchReceipt(first_id, first.leaf(0), auth.as_args(), auth_signature, sender=operator)
    tx = batches.claimBatchReceipt(second_id, second.leaf(0), auth.as_args(), auth_signature, sender=operator)
    refund = tx.events.filter(settlement.PaymentRefunded)[0]
    assert (refund.requestId, refund.payer, refund.amount) == (r.requestId, alice.address, PRICE)
    charge = tx.events.filter(settlement.PaymentCharged)[0]
    assert (charge.amount, charge.fromEscrow) == (PRICE, True)
    assert funds_of(settlement, token, alice) == start - PRICE  # charged once in all
    assert settlement.custodyOf(alice, r.requestId).held == PRICE
    assert settlement.recordOf(alice, r.requestId).status == Status.PENDING
    with reverts_exactly(settlement.InferenceSettlementBatchNotFinal, batchId=second_id):
        settlement.releaseBatchPayment(r.as_args(), sender=reporter)  # held now for the second batch

    advance(chain, CHALLENGE_WINDOW + 1)
    settlement.releaseBatchPayment(r.as_args(), sender=reporter)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert settlement.proceedsOf(operator) == PRICE * NODE_SHARE_BPS // 10_000
    assert funds_of(settlement, token, alice) == start - PRICE


def test_challenge__rejected_batch_receipts__settle_again_individually(settlement, batches, make_batch, post, honest,
                                                                       forged, alice, reporter):
    batch = make_batch([honest("retry"), forged("retry-bad")])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    claim(batches, batch_id, batch, 0, alice)
    batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert settlement.recordOf(alice, r.requestId).status == Status.REJECTED
    settlement.settle(r.as_args(), batch.signed[0].signature, sender=alice)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.receiptHash) == (Status.FINAL, recorded_hash(settlement, r))


def test_claim__leaf_not_in_batch__not_included(batches, make_batch, post, honest, alice):
    batch = make_batch([honest("in")])
    stranger = make_batch([honest("out")])
    batch_id = post(batch)
    with reverts_exactly(batches.BatchSettlementNotIncluded, batchId=batch_id,
                         requestId=stranger.signed[0].receipt.requestId):
        claim(batches, batch_id, stranger, 0, alice)


def test_claim__unknown_batch__named_error(batches, make_batch, honest, alice):
    batch = make_batch([honest("nobatch-claim")])
    unknown = batches.batchCount() + 1
    with reverts_exactly(batches.BatchSettlementUnknownBatch, batchId=unknown):
        claim(batches, unknown, batch, 0, alice)


@pytest.mark.parametrize("when", ["before_posting", "after_posting"])
def test_claim__request_already_recorded__already_settled_and_nobody_slashed(when, settlement, staking, batches,
                                                                             make_batch, post, honest, alice, operator2,
                                                                             reporter, chain):
    """Recording a request elsewhere first (anyone's doing, with the payer's consent) is not a fault of the batch:
    its leaf just cannot be claimed."""
    batch = make_batch([honest(f"dup-{when}"), honest(f"dup-{when}-2")])
    r, signature = batch.signed[0].receipt, batch.signed[0].signature
    if when == "before_posting":
        settlement.settle(r.as_args(), signature, sender=alice)
        advance(chain, 1)
    batch_id = post(batch)
    if when == "after_posting":
        settlement.settle(r.as_args(), signature, sender=alice)
    stake_before = staking.selfBond(operator2)

    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        claim(batches, batch_id, batch, 0, alice)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=r.requestId):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert staking.selfBond(operator2) == stake_before
    assert batches.batchStatus(batch_id) == Status.PENDING
    claim(batches, batch_id, batch, 1, alice)  # the rest of the batch is unaffected


def test_claim__copied_root_by_another_relayer__not_challengeable_and_claimed_once(
        settlement, staking, batches, make_batch, post, honest, alice, operator2, copycat_relayer, reporter, chain):
    batch = make_batch([honest(f"copy{i}") for i in range(3)])
    honest_id = post(batch)
    copy_id = post(batch, relayer=copycat_relayer)
    stakes = {relayer: staking.selfBond(relayer) for relayer in (operator2, copycat_relayer)}
    for batch_id in (honest_id, copy_id):
        for index in range(len(batch)):
            assert batches.faultOf(batch_id, batch.leaf(index)) == Fault.NONE
            with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id,
                                 requestId=batch.signed[index].receipt.requestId):
                batches.challenge(batch_id, batch.leaf(index), sender=reporter)

    r = batch.signed[0].receipt
    claim(batches, copy_id, batch, 0, alice)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        claim(batches, honest_id, batch, 0, alice)
    claim(batches, honest_id, batch, 1, alice)
    advance(chain, CHALLENGE_WINDOW + 1)
    assert {relayer: staking.selfBond(relayer) for relayer in stakes} == stakes
    assert batches.batchStatus(honest_id) == batches.batchStatus(copy_id) == Status.FINAL
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL


def test_claim__zkml_leaf__mode_not_batchable_fault_and_never_claimable(settlement, batches, make_batch, post, honest,
                                                                       zk_model, operator, alice, sign_auth, now,
                                                                       chain):
    zk = zk_receipt("zk-leaf", zk_model, operator.address, now(), [1, 2, 3], payer=alice.address)
    batch = make_batch([honest("zk-neighbour"), (zk, operator)])
    batch_id = post(batch)
    assert batches.faultOf(batch_id, batch.leaf(1)) == Fault.MODE_NOT_BATCHABLE
    with reverts_exactly(settlement.InferenceSettlementModeNotBatchable, mode=Mode.ZKML):
        claim(batches, batch_id, batch, 1, alice)
    advance(chain, CHALLENGE_WINDOW + 1)  # nobody challenged: still never recorded
    assert batches.batchStatus(batch_id) == Status.FINAL
    auth = authorization(zk)
    with reverts_exactly(settlement.InferenceSettlementModeNotBatchable, mode=Mode.ZKML):
        batches.claimBatchReceipt(batch_id, batch.leaf(1), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert settlement.recordOf(alice, zk.requestId).status == Status.NONE


# ---------------------------------------------------------------- challenges


def assert_rejected(batches, staking, token, batch_id, tx, fault, relayer, challenger, challenger_before):
    assert batches.batchStatus(batch_id) == Status.REJECTED
    assert batches.batch(batch_id).rejected
    event = tx.events.filter(batches.BatchChallenged)[0]
    assert (event.batchId, event.challenger, event.fault) == (batch_id, challenger.address, fault)
    slashed = tx.events.filter(staking.Slashed)[0]
    assert slashed.operator == relayer.address and slashed.reporter == challenger.address
    assert slashed.fractionBps == batches.relayerSlashBps()
    assert slashed.reporterReward > 0
    # The slash is recorded by the challenge and paid out when applied (by anyone; here a bystander).
    assert token.balanceOf(challenger) == challenger_before
    staking.applySlash(relayer, sender=relayer)
    assert token.balanceOf(challenger) == challenger_before + slashed.reporterReward


def test_challenge__forged_leaf__rejected_relayer_slashed_challenger_rewarded(settlement, batches, staking, token,
                                                                             make_batch, post, honest, forged, alice,
                                                                             operator2, reporter):
    batch = make_batch([honest("ok1"), forged("forged"), honest("ok2")])
    batch_id = post(batch)
    claim(batches, batch_id, batch, 0, alice)
    assert batches.faultOf(batch_id, batch.leaf(1)) == Fault.BAD_SIGNATURE
    before = token.balanceOf(reporter)
    stake_before = staking.selfBond(operator2)
    tx = batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert_rejected(batches, staking, token, batch_id, tx, Fault.BAD_SIGNATURE, operator2, reporter, before)
    assert staking.selfBond(operator2) == stake_before * 9 // 10
    honest_receipt = batch.signed[0].receipt
    assert settlement.recordOf(alice, honest_receipt.requestId).status == Status.REJECTED
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=honest_receipt.requestId,
                         status=Status.REJECTED):
        settlement.requireVerifiedReceipt(honest_receipt.as_args(), Mode.VANILLA, False)
    assert not staking.isActiveOperator(operator2, 2)


def test_challenge__honest_leaf__no_fault(batches, make_batch, post, honest, reporter):
    batch = make_batch([honest("fine")])
    batch_id = post(batch)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=batch.signed[0].receipt.requestId):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)


def test_challenge__leaf_not_in_batch__not_included(batches, make_batch, post, honest, forged, reporter):
    batch = make_batch([honest("posted")])
    stranger = make_batch([forged("never-posted")])
    batch_id = post(batch)
    with reverts_exactly(batches.BatchSettlementNotIncluded, batchId=batch_id,
                         requestId=stranger.signed[0].receipt.requestId):
        batches.challenge(batch_id, stranger.leaf(0), sender=reporter)
    assert batches.batchStatus(batch_id) == Status.PENDING


def test_challenge__after_window__closed(batches, make_batch, post, forged, reporter, chain):
    batch = make_batch([forged("late")])
    batch_id = post(batch)
    advance(chain, CHALLENGE_WINDOW + 1)
    with reverts_exactly(batches.BatchSettlementChallengeWindowClosed, batchId=batch_id):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert batches.batchStatus(batch_id) == Status.FINAL


def test_challenge__rejected_batch__cannot_be_challenged_again(batches, make_batch, post, open_model, operator, alice,
                                                               reporter, now):
    batch = make_batch([(receipt(f"bad{i}", open_model, operator.address, now(), payer=alice.address), None,
                         bytes([i + 1]) * 65) for i in range(2)])
    batch_id = post(batch)
    batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    with reverts_exactly(batches.BatchSettlementBatchRejected, batchId=batch_id):
        batches.challenge(batch_id, batch.leaf(1), sender=reporter)


def test_challenge__unknown_batch__named_error(batches, make_batch, honest, reporter):
    batch = make_batch([honest("nobatch")])
    with reverts_exactly(batches.BatchSettlementUnknownBatch, batchId=99):
        batches.challenge(99, batch.leaf(0), sender=reporter)


@pytest.mark.parametrize("case", ["unknown_model", "mode_not_accepted", "zkml", "future", "too_old", "outsider",
                                  "unknown_tee", "tee_inactive"])
def test_challenge__faulty_leaf__rejected_with_named_fault(case, batches, staking, token, make_batch, post, honest,
                                                           open_model, tee_model, zk_model, operator, operator2, alice,
                                                           reporter, tee_key, now):
    stamp = now()
    outsider = Account.create()
    payer = alice.address
    leaf, fault = {
        "unknown_model": ((receipt("f-model", keccak(text="nope"), operator.address, stamp, payer=payer), operator),
                          Fault.UNKNOWN_MODEL),
        "mode_not_accepted": ((receipt("f-mode", tee_model, operator.address, stamp, payer=payer), operator),
                              Fault.MODE_NOT_ACCEPTED),
        "zkml": ((zk_receipt("f-zk", zk_model, operator.address, stamp, [1, 2, 3], payer=payer), operator),
                 Fault.MODE_NOT_BATCHABLE),
        "future": ((receipt("f-future", open_model, operator.address, stamp + 600, payer=payer), operator),
                   Fault.TIMESTAMP_OUT_OF_BOUNDS),
        "too_old": ((receipt("f-old", open_model, operator.address, stamp - MAX_RECEIPT_AGE - 10, payer=payer),
                     operator), Fault.TIMESTAMP_OUT_OF_BOUNDS),
        "outsider": ((receipt("f-outsider", open_model, outsider.address, stamp, payer=payer), outsider),
                     Fault.SIGNER_INACTIVE),
        "unknown_tee": ((receipt("f-unknown-tee", open_model, outsider.address, stamp, mode=Mode.TEE, payer=payer),
                         outsider), Fault.SIGNER_INACTIVE),
        # Two hours before its registration: the key was not active at this timestamp.
        "tee_inactive": ((receipt("f-tee", open_model, tee_key.address, stamp - 2 * HOUR, mode=Mode.TEE,
                                  payer=payer), tee_key), Fault.SIGNER_INACTIVE),
    }[case]
    batch = make_batch([honest("neighbour"), leaf])
    batch_id = post(batch)
    assert batches.faultOf(batch_id, batch.leaf(1)) == fault
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
    before = token.balanceOf(reporter)
    tx = batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert_rejected(batches, staking, token, batch_id, tx, fault, operator2, reporter, before)


@pytest.mark.parametrize(("offset", "fault"), [(0, Fault.TIMESTAMP_OUT_OF_BOUNDS), (1, Fault.NONE),
                                               (MAX_RECEIPT_AGE, Fault.NONE),
                                               (MAX_RECEIPT_AGE + 1, Fault.TIMESTAMP_OUT_OF_BOUNDS)])
def test_fault_of__timestamp_bounds_relative_to_posting(offset, fault, batches, operator2, open_model, operator, alice,
                                                        sign, now, chain):
    """A leaf must be strictly older than its batch, and at most the max receipt age older."""
    advance(chain, MAX_RECEIPT_AGE + 10)  # the signer was active all along
    posted_at = now() + 10
    r = receipt(f"bounds{offset}", open_model, operator.address, posted_at - offset, payer=alice.address)
    batch = signed_batch(sign, [(r, operator)])
    chain.pending_timestamp = posted_at
    batch_id = post_batch(batches, batch, operator2)
    assert batches.batch(batch_id).postedAt == posted_at
    assert batches.faultOf(batch_id, batch.leaf(0)) == fault


def test_challenge__model_deprecated_before_signing__fault(batches, staking, token, models, make_batch, post, honest,
                                                           open_model, carol, operator2, reporter, chain):
    models.deprecate(open_model, sender=carol)
    advance(chain, 1)  # judged by timestamps: within the same second the relayer gets the benefit of the doubt
    batch = make_batch([honest("dep-before")])
    batch_id = post(batch)
    before = token.balanceOf(reporter)
    tx = batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert_rejected(batches, staking, token, batch_id, tx, Fault.MODEL_DEPRECATED, operator2, reporter, before)


def test_challenge__model_deprecated_after_signing_before_posting__no_fault(batches, models, make_batch, post, honest,
                                                                            open_model, carol, reporter, chain):
    """The relayer could not know: the receipt was signed while the model was live (see also test_attacks_audit M-3)."""
    batch = make_batch([honest("dep-between")])
    advance(chain, 1)
    models.deprecate(open_model, sender=carol)
    batch_id = post(batch)
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=batch.signed[0].receipt.requestId):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)


def test_challenge__model_deprecated_after_posting__no_fault(batches, models, make_batch, post, honest, open_model,
                                                             carol, reporter):
    batch = make_batch([honest("dep-after")])
    batch_id = post(batch)
    models.deprecate(open_model, sender=carol)
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=batch.signed[0].receipt.requestId):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)


@pytest.mark.parametrize("change", ["unbond", "drop_role", "jailed"])
def test_challenge__signer_leaves_after_signing__no_fault(change, batches, staking, make_batch, post, honest, operator,
                                                          alice, gov, reporter, chain):
    """The signer is judged at the receipt's timestamp: leaving (or being jailed) later, even before the posting,
    cannot make the leaf faulty."""
    batch = make_batch([honest(f"leaves-{change}")])
    advance(chain, 1)
    if change == "unbond":
        staking.unbond(operator, staking.sharesOf(operator, operator), sender=operator)
    elif change == "drop_role":
        staking.setRoles(TEE_BIT, sender=operator)
    else:
        staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
        staking.slash(operator, 100, keccak(text=f"unrelated offence {change}"), gov, sender=gov)
    assert not staking.isActiveOperator(operator, 0)
    advance(chain, 1)
    batch_id = post(batch)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=batch.signed[0].receipt.requestId):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    claim(batches, batch_id, batch, 0, alice)


def test_challenge__signer_not_yet_active_at_receipt_timestamp__fault(batches, staking, token, make_batch, post,
                                                                      open_model, operator2, alice, bob, reporter,
                                                                      now, chain):
    """The converse: a receipt dated before its signer became a node stays faulty after it joins."""
    r = receipt("before-joining", open_model, bob.address, now(), payer=alice.address)
    advance(chain, 1)
    staking.registerOperator(INFERENCE_BIT, NODE_BOND, 0, sender=bob)
    advance(chain, 1)
    batch = make_batch([(r, bob)])
    batch_id = post(batch)
    before = token.balanceOf(reporter)
    tx = batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert_rejected(batches, staking, token, batch_id, tx, Fault.SIGNER_INACTIVE, operator2, reporter, before)


# ---------------------------------------------------------------- the receipt age limit in force at posting


def test_max_receipt_age__lowered_after_posting__leaf_stays_valid(batches, make_batch, post, open_model, operator,
                                                                 alice, gov, reporter, now, chain):
    advance(chain, 3 * HOUR)  # the signer was active all along
    r = receipt("age-lowered", open_model, operator.address, now() - 2 * HOUR, payer=alice.address)
    batch = make_batch([(r, operator)])
    batch_id = post(batch)
    posted_at = batches.batch(batch_id).postedAt
    advance(chain, 1)
    batches.setMaxReceiptAge(HOUR, sender=gov)
    assert batches.maxReceiptAgeAt(posted_at) == MAX_RECEIPT_AGE
    assert batches.maxReceiptAgeAt(now() + 1) == HOUR  # in force from the next second
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=r.requestId):
        batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    claim(batches, batch_id, batch, 0, alice)
    # The same leaf posted under the new limit is too old.
    later_id = post(batch)
    assert batches.faultOf(later_id, batch.leaf(0)) == Fault.TIMESTAMP_OUT_OF_BOUNDS


def test_batch_finality__unknown_batch__none_not_a_revert(batches):
    assert batches.batchFinality(999) == (Status.NONE, 0)
    assert batches.batchStatus(999) == Status.NONE


def test_max_receipt_age_at__before_any_limit_was_set__the_most_lenient(batches, now):
    """A time before the deployment's limit was recorded (a batch posted in the deployment's own second looks
    there) gets the widest limit the contract allows, in the relayer's favour."""
    widest = batches.MAX_RECEIPT_AGE()
    assert widest > MAX_RECEIPT_AGE
    assert batches.maxReceiptAgeAt(0) == widest
    assert batches.maxReceiptAgeAt(1) == widest
    assert batches.maxReceiptAgeAt(now() + 1) == MAX_RECEIPT_AGE


def test_max_receipt_age_at__the_second_of_a_change__still_the_old_limit(batches, gov, chain):
    advance(chain, 10)  # well after the deployment's second
    changed_at = batches.setMaxReceiptAge(HOUR, sender=gov).timestamp
    assert batches.maxReceiptAgeAt(changed_at - 1) == MAX_RECEIPT_AGE
    assert batches.maxReceiptAgeAt(changed_at) == MAX_RECEIPT_AGE
    assert batches.maxReceiptAgeAt(changed_at + 1) == HOUR


def test_max_receipt_age__raised_after_posting__leaf_stays_faulty(batches, staking, token, make_batch, post,
                                                                 open_model, operator, operator2, alice, gov, reporter,
                                                                 now, chain):
    r = receipt("age-raised", open_model, operator.address, now() - MAX_RECEIPT_AGE - 60, payer=alice.address)
    batch = make_batch([(r, operator)])
    batch_id = post(batch)
    advance(chain, 1)
    batches.setMaxReceiptAge(30 * DAY, sender=gov)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.TIMESTAMP_OUT_OF_BOUNDS
    before = token.balanceOf(reporter)
    tx = batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert_rejected(batches, staking, token, batch_id, tx, Fault.TIMESTAMP_OUT_OF_BOUNDS, operator2, reporter, before)


@pytest.mark.parametrize("max_age", [59, 30 * DAY + 1])
def test_set_max_receipt_age__out_of_bounds__refused(max_age, batches, gov):
    with reverts_exactly(batches.BatchSettlementReceiptAgeOutOfBounds, maxAge=max_age):
        batches.setMaxReceiptAge(max_age, sender=gov)


# ---------------------------------------------------------------- slashing cannot be escaped, and its bounds


def test_challenge__relayer_unbonds_during_window__still_slashed(batches, staking, make_batch, post, forged,
                                                                 operator2, reporter, chain):
    """A relayer that unbonds right after posting a bad batch still loses stake to the challenge."""
    batch = make_batch([forged("escape")])
    batch_id = post(batch)
    shares = staking.sharesOf(operator2, operator2)
    tx = staking.unbond(operator2, shares, sender=operator2)
    unbonding_id = tx.events.filter(staking.UnbondingStarted)[0].id
    value_before = staking.unbondingValue(unbonding_id)
    assert staking.selfBond(operator2) == 0
    advance(chain, CHALLENGE_WINDOW - 60)
    tx = batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert tx.events.filter(staking.Slashed)[0].fromUnbonding == value_before // 10
    assert staking.unbondingValue(unbonding_id) == value_before * 9 // 10
    with reverts_exactly(staking.NodeStakingNotMatured, id=unbonding_id):
        staking.withdraw(unbonding_id, sender=operator2)


def test_set_relayer_slash__fraction_applies_and_is_bounded(batches, staking, make_batch, post, forged, operator2,
                                                            gov, reporter):
    for fraction in (0, batches.MAX_SLASH_BPS() + 1):
        with reverts_exactly(batches.BatchSettlementSlashFractionOutOfBounds, fractionBps=fraction):
            batches.setRelayerSlash(fraction, sender=gov)
    batches.setRelayerSlash(2_500, sender=gov)
    batch = make_batch([forged("quarter")])
    batch_id = post(batch)
    stake_before = staking.selfBond(operator2)
    batches.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert staking.selfBond(operator2) == stake_before * 3 // 4


def test_challenge_window__bounded_by_minimum_and_unbonding_delay(batches, staking, make_batch, post, honest, gov,
                                                                 operator2):
    delay = staking.unbondingDelay()
    minimum = batches.MIN_CHALLENGE_WINDOW()
    with reverts_exactly(batches.BatchSettlementChallengeWindowOutOfBounds, window=delay, minimum=minimum,
                         unbondingDelay=delay):
        batches.setChallengeWindow(delay, sender=gov)
    with reverts_exactly(batches.BatchSettlementChallengeWindowOutOfBounds, window=minimum - 1, minimum=minimum,
                         unbondingDelay=delay):
        batches.setChallengeWindow(minimum - 1, sender=gov)

    batch = make_batch([honest("window-kept")])
    earlier_id = post(batch)
    batches.setChallengeWindow(DAY, sender=gov)
    assert batches.challengeWindow() == DAY
    earlier = batches.batch(earlier_id)
    assert earlier.challengeDeadline == earlier.postedAt + CHALLENGE_WINDOW  # posted batches keep their deadline
    later_id = post(batch)
    later = batches.batch(later_id)
    assert later.challengeDeadline == later.postedAt + DAY

    staking.setUnbondingDelay(DAY, sender=gov)  # the delay shrinks under the window
    with reverts_exactly(batches.BatchSettlementChallengeWindowOutOfBounds, window=DAY, minimum=minimum,
                         unbondingDelay=DAY):
        batches.postBatch(b"\x01" * 32, 1, "", sender=operator2)
