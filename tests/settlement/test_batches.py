"""Batch settlement: commit, inclusion, claims and payments, and every fault a challenge can prove."""

import ape
import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit.receipts import Fault, ReceiptBatch, SignedReceipt, Status
from opgkit.testing import advance
from settlement_helpers import CHALLENGE_WINDOW, DAY, MAX_RECEIPT_AGE, PRICE, Mode, authorization, receipt, zk_receipt

NO_AUTH = (b"\x00" * 32, 0, 0, 0)


@pytest.fixture
def make_batch(settlement, sign):
    """Factory: sign receipts (each with its signer's key unless a signature is given) into a ReceiptBatch."""

    def make(items):
        signed = []
        for item in items:
            r, signer = item[0], item[1]
            signature = item[2] if len(item) > 2 else sign(r, signer)
            signed.append(SignedReceipt(r, signature))
        return ReceiptBatch(signed)

    return make


@pytest.fixture
def post(settlement, operator2):
    def post(batch, relayer=None):
        tx = settlement.postBatch(batch.root, len(batch), "ipfs://batch", sender=relayer or operator2)
        return tx.events.filter(settlement.BatchPosted)[0].batchId

    return post


def honest(label, open_model, operator, now, **kwargs):
    return receipt(label, open_model, operator.address, now(), **kwargs), operator


def test_post_batch__active_relayer__pending_until_window_ends(settlement, make_batch, post, open_model, operator,
                                                              operator2, now, chain):
    batch = make_batch([honest(f"b{i}", open_model, operator, now) for i in range(4)])
    batch_id = post(batch)
    stored = settlement.batch(batch_id)
    assert (stored.relayer, stored.root, stored.rejected) == (operator2.address, batch.root, False)
    assert stored.challengeDeadline == stored.postedAt + CHALLENGE_WINDOW
    assert settlement.batchStatus(batch_id) == Status.PENDING
    advance(chain, CHALLENGE_WINDOW + 1)
    assert settlement.batchStatus(batch_id) == Status.FINAL


def test_post_batch__not_a_relayer__refused(settlement, make_batch, open_model, operator, now):
    batch = make_batch([honest("nr", open_model, operator, now)])
    with ape.reverts(settlement.InferenceSettlementNotRelayer, account=operator.address):
        settlement.postBatch(batch.root, 1, "", sender=operator)


def test_post_batch__zero_count__refused(settlement, operator2):
    with ape.reverts(settlement.InferenceSettlementEmptyBatch):
        settlement.postBatch(b"\x01" * 32, 0, "", sender=operator2)


def test_is_included__every_leaf_true_altered_false(settlement, make_batch, post, open_model, operator, now):
    """opgkit's trees verify with OpenZeppelin's MerkleProof on chain, leaf by leaf."""
    batch = make_batch([honest(f"inc{i}", open_model, operator, now) for i in range(7)])
    batch_id = post(batch)
    for index in range(len(batch)):
        assert settlement.isIncluded(batch_id, batch.leaf(index))
    r, signature, proof = batch.leaf(3)
    assert not settlement.isIncluded(batch_id, (batch.leaf(4)[0], signature, proof))
    assert not settlement.isIncluded(batch_id + 1, batch.leaf(3))


def test_claim__while_pending__recorded_pending_then_final(settlement, make_batch, post, open_model, operator, now,
                                                          chain):
    batch = make_batch([honest(f"cl{i}", open_model, operator, now) for i in range(3)])
    batch_id = post(batch)
    r = batch.signed[1].receipt
    settlement.claimBatchReceipt(batch_id, batch.leaf(1), NO_AUTH, b"", sender=operator)
    assert settlement.verifiedOutput(r.requestId).status == Status.PENDING
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        settlement.requireVerified(r.requestId, Mode.VANILLA, True)
    assert settlement.requireVerified(r.requestId, Mode.VANILLA, False) == r.outputHash
    advance(chain, CHALLENGE_WINDOW + 1)
    out = settlement.verifiedOutput(r.requestId)
    assert (out.status, out.settledAt) == (Status.FINAL, settlement.batch(batch_id).challengeDeadline + 1)
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.claimBatchReceipt(batch_id, batch.leaf(1), NO_AUTH, b"", sender=operator)


def test_claim__priced_leaf_after_window__charged_once(settlement, token, make_batch, post, open_model, operator, alice,
                                                       sign_auth, now, chain):
    batch = make_batch([honest("paid-leaf", open_model, operator, now, payer=alice.address, price=PRICE),
                        honest("free-leaf", open_model, operator, now)])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    auth = authorization(r)
    settlement.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert settlement.proceedsOf(operator) == 0  # recorded while pending, not charged
    advance(chain, CHALLENGE_WINDOW + 1)
    before = token.balanceOf(alice)
    settlement.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert token.balanceOf(alice) == before - PRICE
    assert settlement.proceedsOf(operator) > 0
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)


def test_claim__leaf_not_in_batch__not_included(settlement, make_batch, post, open_model, operator, now):
    batch = make_batch([honest("in", open_model, operator, now)])
    stranger = make_batch([honest("out", open_model, operator, now)])
    batch_id = post(batch)
    with ape.reverts(settlement.InferenceSettlementNotIncluded, batchId=batch_id, requestId=stranger.signed[0].receipt.requestId):
        settlement.claimBatchReceipt(batch_id, stranger.leaf(0), NO_AUTH, b"", sender=operator)


def test_claim__request_already_settled_individually__already_settled(settlement, make_batch, post, open_model,
                                                                      operator, sign, now):
    batch = make_batch([honest("dup-ind", open_model, operator, now)])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    settlement.settle(r.as_args(), sign(r, operator), sender=operator)
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTH, b"", sender=operator)


# ---------------------------------------------------------------- challenges


def assert_rejected(settlement, staking, token, batch_id, tx, fault, relayer, challenger, challenger_before):
    assert settlement.batchStatus(batch_id) == Status.REJECTED
    event = tx.events.filter(settlement.BatchChallenged)[0]
    assert (event.batchId, event.challenger, event.fault) == (batch_id, challenger.address, fault)
    slashed = tx.events.filter(staking.Slashed)[0]
    assert slashed.operator == relayer.address and slashed.reporter == challenger.address
    assert slashed.reporterReward > 0
    assert token.balanceOf(challenger) == challenger_before + slashed.reporterReward


def test_challenge__forged_leaf__rejected_relayer_slashed_challenger_rewarded(settlement, staking, token, make_batch,
                                                                             post, open_model, operator, operator2,
                                                                             reporter, now):
    forged = receipt("forged", open_model, operator.address, now())
    batch = make_batch([honest("ok1", open_model, operator, now), (forged, None, b"\x11" * 65),
                        honest("ok2", open_model, operator, now)])
    batch_id = post(batch)
    settlement.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTH, b"", sender=operator)
    before = token.balanceOf(reporter)
    stake_before = staking.selfBond(operator2)
    tx = settlement.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert_rejected(settlement, staking, token, batch_id, tx, Fault.BAD_SIGNATURE, operator2, reporter, before)
    assert staking.selfBond(operator2) == stake_before * 9 // 10
    honest_request = batch.signed[0].receipt.requestId
    assert settlement.verifiedOutput(honest_request).status == Status.REJECTED
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=honest_request, status=Status.REJECTED):
        settlement.requireVerified(honest_request, Mode.VANILLA, False)
    assert not staking.isActiveOperator(operator2, 2)


def test_challenge__rejected_batch_receipts__settle_again_elsewhere(settlement, make_batch, post, open_model, operator,
                                                                    reporter, sign, now):
    batch = make_batch([honest("retry", open_model, operator, now), (receipt("bad", open_model, operator.address, now()),
                                                                      None, b"\x11" * 65)])
    batch_id = post(batch)
    settlement.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTH, b"", sender=operator)
    settlement.challenge(batch_id, batch.leaf(1), sender=reporter)
    r = batch.signed[0].receipt
    settlement.settle(r.as_args(), sign(r, operator), sender=operator)
    assert settlement.verifiedOutput(r.requestId).status == Status.FINAL


def test_challenge__honest_leaf__no_fault(settlement, make_batch, post, open_model, operator, reporter, now):
    batch = make_batch([honest("fine", open_model, operator, now)])
    batch_id = post(batch)
    with ape.reverts(settlement.InferenceSettlementNoFault, batchId=batch_id, requestId=batch.signed[0].receipt.requestId):
        settlement.challenge(batch_id, batch.leaf(0), sender=reporter)


def test_challenge__after_window__closed(settlement, make_batch, post, open_model, operator, reporter, now, chain):
    batch = make_batch([(receipt("late", open_model, operator.address, now()), None, b"\x11" * 65)])
    batch_id = post(batch)
    advance(chain, CHALLENGE_WINDOW + 1)
    with ape.reverts(settlement.InferenceSettlementChallengeWindowClosed, batchId=batch_id):
        settlement.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert settlement.batchStatus(batch_id) == Status.FINAL


def test_challenge__rejected_batch__cannot_be_challenged_again(settlement, make_batch, post, open_model, operator,
                                                               reporter, now):
    batch = make_batch([(receipt(f"bad{i}", open_model, operator.address, now()), None, bytes([i + 1]) * 65)
                        for i in range(2)])
    batch_id = post(batch)
    settlement.challenge(batch_id, batch.leaf(0), sender=reporter)
    with ape.reverts(settlement.InferenceSettlementBatchRejected, batchId=batch_id):
        settlement.challenge(batch_id, batch.leaf(1), sender=reporter)


def test_challenge__unknown_batch__named_error(settlement, make_batch, open_model, operator, reporter, now):
    batch = make_batch([honest("nobatch", open_model, operator, now)])
    with ape.reverts(settlement.InferenceSettlementUnknownBatch, batchId=99):
        settlement.challenge(99, batch.leaf(0), sender=reporter)


@pytest.mark.parametrize("case", ["unknown_model", "mode_not_accepted", "zkml", "future", "too_old", "outsider",
                                  "tee_inactive"])
def test_challenge__faulty_leaf__rejected_with_named_fault(case, settlement, staking, token, make_batch, post,
                                                           open_model, tee_model, zk_model, operator, operator2,
                                                           reporter, tee_key, now, chain):
    stamp = now()
    outsider = Account.create()
    leaf, fault = {
        "unknown_model": ((receipt("f-model", keccak(text="nope"), operator.address, stamp), operator),
                          Fault.UNKNOWN_MODEL),
        "mode_not_accepted": ((receipt("f-mode", tee_model, operator.address, stamp), operator),
                              Fault.MODE_NOT_ACCEPTED),
        "zkml": ((zk_receipt("f-zk", zk_model, operator.address, stamp, [1, 2, 3]), operator),
                 Fault.MODE_NOT_BATCHABLE),
        "future": ((receipt("f-future", open_model, operator.address, stamp + 600), operator),
                   Fault.TIMESTAMP_OUT_OF_BOUNDS),
        "too_old": ((receipt("f-old", open_model, operator.address, stamp - MAX_RECEIPT_AGE - 10), operator),
                    Fault.TIMESTAMP_OUT_OF_BOUNDS),
        "outsider": ((receipt("f-outsider", open_model, outsider.address, stamp), outsider), Fault.SIGNER_INACTIVE),
        # Registered an hour before its heartbeat age allows: the key was not active at this timestamp.
        "tee_inactive": ((receipt("f-tee", open_model, tee_key.address, stamp - 2 * 3_600, mode=Mode.TEE), tee_key),
                         Fault.SIGNER_INACTIVE),
    }[case]
    batch = make_batch([honest("neighbour", open_model, operator, now), leaf])
    batch_id = post(batch)
    before = token.balanceOf(reporter)
    tx = settlement.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert_rejected(settlement, staking, token, batch_id, tx, fault, operator2, reporter, before)


def test_challenge__model_deprecated_before_posting__fault(settlement, staking, token, models, make_batch, post,
                                                           open_model, carol, operator, operator2, reporter, now, chain):
    batch = make_batch([honest("dep-before", open_model, operator, now)])
    models.deprecate(open_model, sender=carol)
    advance(chain, 1)  # judged by timestamps: within the same second the relayer gets the benefit of the doubt
    batch_id = post(batch)
    before = token.balanceOf(reporter)
    tx = settlement.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert_rejected(settlement, staking, token, batch_id, tx, Fault.MODEL_DEPRECATED, operator2, reporter, before)


def test_challenge__model_deprecated_after_posting__no_fault(settlement, models, make_batch, post, open_model, carol,
                                                             operator, reporter, now):
    batch = make_batch([honest("dep-after", open_model, operator, now)])
    batch_id = post(batch)
    models.deprecate(open_model, sender=carol)
    with ape.reverts(settlement.InferenceSettlementNoFault, batchId=batch_id, requestId=batch.signed[0].receipt.requestId):
        settlement.challenge(batch_id, batch.leaf(0), sender=reporter)


def test_challenge__request_settled_before_posting__already_settled(settlement, staking, token, make_batch, post,
                                                                    open_model, operator, operator2, reporter, sign,
                                                                    now, chain):
    batch = make_batch([honest("early", open_model, operator, now)])
    r = batch.signed[0].receipt
    settlement.settle(r.as_args(), sign(r, operator), sender=operator)
    advance(chain, 1)
    batch_id = post(batch)
    before = token.balanceOf(reporter)
    tx = settlement.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert_rejected(settlement, staking, token, batch_id, tx, Fault.ALREADY_SETTLED, operator2, reporter, before)


def test_challenge__request_settled_after_posting__no_fault(settlement, make_batch, post, open_model, operator,
                                                           reporter, sign, now):
    """Anyone can settle a published receipt individually; that must not let them get the relayer slashed."""
    batch = make_batch([honest("late-settle", open_model, operator, now)])
    batch_id = post(batch)
    r = batch.signed[0].receipt
    settlement.settle(r.as_args(), sign(r, operator), sender=reporter)
    with ape.reverts(settlement.InferenceSettlementNoFault, batchId=batch_id, requestId=r.requestId):
        settlement.challenge(batch_id, batch.leaf(0), sender=reporter)


def test_challenge_duplicate__same_request_twice_in_batch__rejected(settlement, staking, token, make_batch, post,
                                                                    open_model, operator, operator2, reporter, now):
    first = receipt("twin", open_model, operator.address, now())
    second = first.with_changes(outputHash=b"\x02" * 32)
    batch = make_batch([(first, operator), (second, operator), honest("other", open_model, operator, now)])
    batch_id = post(batch)
    before = token.balanceOf(reporter)
    tx = settlement.challengeDuplicate(batch_id, batch.leaf(1), batch_id, batch.leaf(0), sender=reporter)
    assert_rejected(settlement, staking, token, batch_id, tx, Fault.DUPLICATED, operator2, reporter, before)


def test_challenge_duplicate__request_in_earlier_batch__rejected(settlement, make_batch, post, open_model, operator,
                                                                 reporter, now):
    r = receipt("again", open_model, operator.address, now())
    earlier = make_batch([(r, operator), honest("e2", open_model, operator, now)])
    later = make_batch([(r, operator), honest("l2", open_model, operator, now)])
    earlier_id, later_id = post(earlier), post(later)
    with ape.reverts(settlement.InferenceSettlementNotDuplicate, batchId=earlier_id, otherBatchId=later_id):
        settlement.challengeDuplicate(earlier_id, earlier.leaf(0), later_id, later.leaf(0), sender=reporter)
    settlement.challengeDuplicate(later_id, later.leaf(0), earlier_id, earlier.leaf(0), sender=reporter)
    assert settlement.batchStatus(later_id) == Status.REJECTED
    assert settlement.batchStatus(earlier_id) == Status.PENDING


def test_challenge_duplicate__same_leaf_shown_twice__not_duplicate(settlement, make_batch, post, open_model, operator,
                                                                   reporter, now):
    batch = make_batch([honest("single", open_model, operator, now), honest("s2", open_model, operator, now)])
    batch_id = post(batch)
    with ape.reverts(settlement.InferenceSettlementNotDuplicate, batchId=batch_id, otherBatchId=batch_id):
        settlement.challengeDuplicate(batch_id, batch.leaf(0), batch_id, batch.leaf(0), sender=reporter)


def test_challenge_duplicate__different_requests__not_duplicate(settlement, make_batch, post, open_model, operator,
                                                                reporter, now):
    batch = make_batch([honest("d1", open_model, operator, now), honest("d2", open_model, operator, now)])
    batch_id = post(batch)
    with ape.reverts(settlement.InferenceSettlementNotDuplicate, batchId=batch_id, otherBatchId=batch_id):
        settlement.challengeDuplicate(batch_id, batch.leaf(0), batch_id, batch.leaf(1), sender=reporter)


# ---------------------------------------------------------------- slashing cannot be escaped


def test_challenge__relayer_unbonds_during_window__still_slashed(settlement, staking, token, make_batch, post,
                                                                 open_model, operator, operator2, reporter, now, chain):
    """Regression: a relayer that unbonds right after posting a bad batch still loses stake to the challenge."""
    batch = make_batch([(receipt("escape", open_model, operator.address, now()), None, b"\x11" * 65)])
    batch_id = post(batch)
    shares = staking.sharesOf(operator2, operator2)
    unbonding_id = staking.unbond(operator2, shares, sender=operator2).return_value
    value_before = staking.unbondingValue(unbonding_id)
    advance(chain, CHALLENGE_WINDOW - 60)
    settlement.challenge(batch_id, batch.leaf(0), sender=reporter)
    assert staking.unbondingValue(unbonding_id) == value_before * 9 // 10
    with ape.reverts():
        staking.withdraw(unbonding_id, sender=operator2)


def test_challenge_window__not_below_unbonding_delay__refused(settlement, staking, gov, operator2):
    delay = staking.unbondingDelay()
    with ape.reverts(settlement.InferenceSettlementChallengeWindowOutOfBounds, window=delay, minimum=300, unbondingDelay=delay):
        settlement.setChallengeWindow(delay, sender=gov)
    settlement.setChallengeWindow(DAY, sender=gov)
    staking.setUnbondingDelay(DAY, sender=gov)
    with ape.reverts(settlement.InferenceSettlementChallengeWindowOutOfBounds, window=DAY, minimum=300, unbondingDelay=DAY):
        settlement.postBatch(b"\x01" * 32, 1, "", sender=operator2)
