"""Requests with callbacks: a consumer opens a request with its fee escrowed, and the answer is pushed to it once
a receipt on its terms is final, individually, from a batch after its window, or after an asynchronous proof.
The callback never blocks settlement or payment; only the requests contract consents to records in its
namespace, and only for the open request's terms."""

import pytest
from eth_utils import keccak

from opgkit.manifest import OutputManifest
from opgkit.receipts import Status, contract_consent
from opgkit.testing import advance
from settlement_helpers import (
    CHALLENGE_WINDOW, HOUR, INFERENCE_BIT, OPG, PRICE, PROOF_WINDOW, Mode, authorization, funds_of, post_batch, receipt, reverts_exactly,
    signed_batch,
)

FEE = 3 * PRICE
TTL = 6 * HOUR
CALLBACK_GAS = 300_000
IMMEDIATE, DELAYED = 0, 1
OPEN, DELIVERED, CALLBACK_FAILED, REFUNDED = 1, 2, 3, 4
ACCEPT, REVERT, BURN_GAS, RETURN_BOMB, REENTER = range(5)


@pytest.fixture(scope="module")
def hostile(project, deployer, requests, token, treasury):
    """A consumer whose callback misbehaves on demand (funded to pay its own fees)."""
    consumer = deployer.deploy(project.ExploitCallbackConsumer, requests, token)
    token.transfer(consumer, 1_000 * PRICE, sender=treasury)
    return consumer


def question(label):
    return keccak(text=f"question {label}")


def answer(label) -> bytes:
    return OutputManifest(text=f"answer {label}").canonical_json()


def ask(feed, label, alice, fee=FEE, ttl=TTL):
    tx = feed.ask(question(label), fee, ttl, sender=alice)
    return tx.events.filter(feed.Asked)[0].requestId


def open_hostile(hostile, model, label, sender, behaviour=ACCEPT, finality=DELAYED, gas=CALLBACK_GAS, fee=FEE,
                 min_mode=Mode.VANILLA, ttl=TTL):
    """Open a request from the hostile consumer (which pays its fee) after setting how its callback behaves."""
    hostile.setBehaviour(behaviour, sender=sender)
    tx = hostile.openRequest(model, question(label), min_mode, finality, fee, gas, ttl, sender=sender)
    return [log for log in tx.events if log.event_name == "RequestOpened"][0].requestId


def answering(requests, request_id, label, model, signer, timestamp, mode=Mode.VANILLA, price=PRICE, output=None):
    """The receipt a node signs to answer `request_id` (payer: the requests contract) with `output`."""
    output = answer(label) if output is None else output
    return receipt(label, model, signer, timestamp, mode=mode, price=price, payer=requests.address,
                   output_hash=keccak(output), input_hash=question(label)).with_changes(requestId=request_id), output


def assert_fees_accounted(requests, settlement, token):
    """What the requests contract holds (wallet and settlement escrow) is exactly the fees of its open requests,
    less what settlement holds for their pending answers: no path left a fee behind or paid one twice."""
    owed = 0
    for number in range(1, requests.requestCount() + 1):
        request_id = number.to_bytes(32, "big")
        stored = requests.requestOf(request_id)
        if stored.state == OPEN:
            owed += stored.maxFee - settlement.custodyOf(requests, request_id).held
    assert funds_of(settlement, token, requests) == owed


def claimed_in_a_batch(batches, sign, chain, answer, node, relayer, forged=None):
    """Post `answer`, signed by `node`, in a batch by `relayer` (with `forged` after it under a bad signature, if
    given) and claim it under the requests contract's consent; returns the batch and its id."""
    batch = signed_batch(sign, [(answer, node)] + ([(forged, None, b"\x11" * 65)] if forged else []))
    advance(chain, 1)
    batch_id = post_batch(batches, batch, relayer)
    auth = authorization(answer, node=node.address)
    batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), contract_consent(auth), sender=relayer)
    return batch, batch_id


@pytest.fixture
def answer_for(requests, open_model, operator, now, sign):
    """A VANILLA answer by `operator` to `request_id`, signed: (receipt, signature, output)."""

    def make(request_id, label, price=PRICE, text=None, **changes):
        output = answer(text) if text else None
        r, output = answering(requests, request_id, label, open_model, operator.address, now(), price=price,
                              output=output)
        r = r.with_changes(**changes) if changes else r
        return r, sign(r, operator), output

    return make


# ---------------------------------------------------------------- opening


def test_open__fee_at_quote__escrowed_with_an_issued_id(requests, feed, settlement, token, open_model, alice,
                                                       models):
    assert requests.quoteFee(open_model) == models.model(open_model).price == PRICE
    before = token.balanceOf(alice)
    held = settlement.escrowOf(requests)
    tx = feed.ask(question("open"), FEE, TTL, sender=alice)
    request_id = tx.events.filter(feed.Asked)[0].requestId
    opened = tx.events.filter(requests.RequestOpened)[0]
    assert int.from_bytes(request_id, "big") == requests.requestCount()
    assert (opened.consumer, opened.modelId, opened.inputHash, opened.maxFee, opened.callbackGasLimit) == (
        feed.address, open_model, question("open"), FEE, CALLBACK_GAS)
    assert opened.expiresAt == tx.timestamp + TTL
    stored = requests.requestOf(request_id)
    assert (stored.consumer, stored.state, stored.finality, stored.maxFee) == (feed.address, OPEN, DELAYED, FEE)
    assert token.balanceOf(alice) == before - FEE
    assert settlement.escrowOf(requests) == held + FEE  # the fee waits in the requests contract's escrow


def test_open__misuse__named_errors(requests, hostile, open_model, deployer):
    def open_(model=open_model, fee=FEE, gas=CALLBACK_GAS, ttl=TTL):
        hostile.openRequest(model, question("misuse"), Mode.VANILLA, DELAYED, fee, gas, ttl, sender=deployer)

    with reverts_exactly(requests.InferenceRequestsUnknownModel, modelId=b"\x01" * 32):
        open_(model=b"\x01" * 32)
    with reverts_exactly(requests.InferenceRequestsFeeBelowQuote, maxFee=PRICE - 1, quote=PRICE):
        open_(fee=PRICE - 1)
    with reverts_exactly(requests.InferenceRequestsCallbackGasOutOfBounds, callbackGasLimit=2_000_001):
        open_(gas=2_000_001)
    with reverts_exactly(requests.InferenceRequestsTtlOutOfBounds, ttl=59):
        open_(ttl=59)
    with reverts_exactly(requests.InferenceRequestsTtlOutOfBounds, ttl=30 * 24 * HOUR + 1):
        open_(ttl=30 * 24 * HOUR + 1)


# ---------------------------------------------------------------- individual: settle and call back at once


def test_fulfill__valid_answer__settled_paid_called_back_and_rest_refunded(requests, feed, settlement, token, alice,
                                                                           operator, answer_for):
    request_id = ask(feed, "fulfil", alice)
    r, signature, output = answer_for(request_id, "fulfil")
    feed_before = token.balanceOf(feed)
    tx = requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)

    assert settlement.recordOf(requests, request_id).status == Status.FINAL
    settled = tx.events.filter(settlement.ReceiptSettled)[0]
    assert (settled.payer, settled.signer) == (requests.address, operator.address)
    answered = tx.events.filter(requests.RequestAnswered)[0]
    assert (answered.signer, answered.price, answered.refund) == (operator.address, PRICE, FEE - PRICE)
    assert tx.events.filter(feed.Answered)[0].output == output
    assert feed.answers(request_id).outputHash == keccak(output)
    assert feed.latestRequestId() == request_id
    assert token.balanceOf(feed) == feed_before + FEE - PRICE
    assert requests.requestOf(request_id).state == DELIVERED
    assert settlement.proceedsOf(operator) > 0


def test_fulfill__answer_off_terms__refused_by_name(requests, feed, alice, operator, answer_for, open_model):
    request_id = ask(feed, "terms", alice)
    r, signature, output = answer_for(request_id, "terms")
    cases = [
        (dict(inputHash=keccak(text="another question")), requests.InferenceRequestsWrongTerms, {}),
        (dict(payer=alice.address), requests.InferenceRequestsWrongRequest, {}),
        (dict(requestId=b"\x00" * 31 + b"\x63"), requests.InferenceRequestsWrongRequest, {}),
        (dict(price=FEE + 1), requests.InferenceRequestsPriceAboveFee, dict(price=FEE + 1, maxFee=FEE)),
        (dict(outputHash=keccak(b"something else")), requests.InferenceRequestsWrongOutput, {}),
    ]
    for changes, error, fields in cases:
        with reverts_exactly(error, **fields):
            requests.fulfill(request_id, r.with_changes(**changes).as_args(), signature, output, sender=operator)
    requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)
    with reverts_exactly(requests.InferenceRequestsNotOpen, requestId=request_id, state=DELIVERED):
        requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)


def test_fulfill__mode_below_minimum__refused(requests, hostile, deployer, tee_model, operator, now, sign):
    request_id = open_hostile(hostile, tee_model, "tee only", deployer, min_mode=Mode.TEE)
    r, output = answering(requests, request_id, "tee only", tee_model, operator.address, now())
    with reverts_exactly(requests.InferenceRequestsModeTooWeak, mode=Mode.VANILLA, minMode=Mode.TEE):
        requests.fulfill(request_id, r.as_args(), sign(r, operator), output, sender=operator)


def test_fulfill__after_expiry__refused(requests, feed, alice, operator, answer_for, chain):
    request_id = ask(feed, "late", alice, ttl=HOUR)
    r, signature, output = answer_for(request_id, "late")
    advance(chain, HOUR + 1)
    with reverts_exactly(requests.InferenceRequestsExpired, requestId=request_id):
        requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)


# ---------------------------------------------------------------- callbacks cannot block settlement or payment


@pytest.mark.parametrize("behaviour", [REVERT, BURN_GAS], ids=["reverting", "gas-hungry"])
def test_callback__reverts_or_runs_out_of_gas__settlement_and_payment_stand_then_retried(
        requests, hostile, settlement, token, deployer, open_model, operator, answer_for, behaviour):
    request_id = open_hostile(hostile, open_model, f"hostile {behaviour}", deployer, behaviour=behaviour)
    r, signature, output = answer_for(request_id, f"hostile {behaviour}")
    before = token.balanceOf(hostile)
    tx = requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)

    assert tx.events.filter(requests.CallbackFailed)[0].consumer == hostile.address
    assert settlement.recordOf(requests, request_id).status == Status.FINAL
    assert token.balanceOf(hostile) == before + FEE - PRICE
    assert requests.requestOf(request_id).state == CALLBACK_FAILED
    assert hostile.calls() == 0

    with reverts_exactly(requests.InferenceRequestsWrongOutput, requestId=request_id):
        requests.retryCallback(request_id, b"forged answer", sender=deployer)
    hostile.setBehaviour(ACCEPT, sender=deployer)
    retry = requests.retryCallback(request_id, output, sender=deployer)
    assert retry.events.filter(requests.CallbackDelivered)[0].deliveredBy == deployer.address
    assert hostile.calls() == 1 and hostile.lastOutput() == output
    assert requests.requestOf(request_id).state == DELIVERED
    with reverts_exactly(requests.InferenceRequestsCallbackNotFailed, requestId=request_id, state=DELIVERED):
        requests.retryCallback(request_id, output, sender=deployer)


def test_attack_starved_callback__too_little_gas_forwarded__whole_call_reverts(requests, hostile, settlement,
                                                                             deployer, open_model, operator,
                                                                             answer_for):
    """A deliverer who forwards just enough gas for settlement but not the callback's limit cannot make the
    callback fail on purpose: the whole call reverts and the request stays open."""
    request_id = open_hostile(hostile, open_model, "starve", deployer, gas=1_000_000)
    r, signature, output = answer_for(request_id, "starve")
    with reverts_exactly(requests.InferenceRequestsInsufficientGas):
        requests.fulfill(request_id, r.as_args(), signature, output, sender=operator, gas_limit=700_000)
    assert settlement.recordOf(requests, request_id).status == Status.NONE
    assert requests.requestOf(request_id).state == OPEN
    requests.fulfill(request_id, r.as_args(), signature, output, sender=operator, gas_limit=1_500_000)
    assert hostile.calls() == 1


def test_attack_return_bomb__huge_return_data__not_copied(requests, hostile, deployer, open_model, operator,
                                                          answer_for):
    request_id = open_hostile(hostile, open_model, "bomb", deployer, behaviour=RETURN_BOMB, gas=400_000)
    r, signature, output = answer_for(request_id, "bomb")
    tx = requests.fulfill(request_id, r.as_args(), signature, output, sender=operator, gas_limit=1_000_000)
    assert tx.events.filter(requests.CallbackDelivered)
    assert requests.requestOf(request_id).state == DELIVERED


def test_attack_reentrant_consumer__cannot_re_enter_delivery(requests, hostile, deployer, open_model, operator,
                                                            answer_for):
    request_id = open_hostile(hostile, open_model, "reenter", deployer, behaviour=REENTER)
    r, signature, output = answer_for(request_id, "reenter")
    requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)
    assert hostile.reentryFailed()
    assert hostile.calls() == 1


def test_attack_forged_callback__consumer_accepts_only_the_requests_contract(feed, alice):
    with reverts_exactly(feed.InferenceConsumerNotRequests, caller=alice.address):
        feed.onInferenceResult(b"\x00" * 31 + b"\x01", Mode.ZKML, b"forged answer", sender=alice)


# ---------------------------------------------------------------- expiry


def test_refund__expired_unanswered__fee_back_to_consumer_once(requests, feed, token, alice, chain, deployer):
    request_id = ask(feed, "expire", alice, ttl=HOUR)
    with reverts_exactly(requests.InferenceRequestsNotExpired, requestId=request_id):
        requests.refund(request_id, sender=deployer)
    advance(chain, HOUR + 1)
    before = token.balanceOf(feed)
    tx = requests.refund(request_id, sender=deployer)
    assert tx.events.filter(requests.RequestRefunded)[0].amount == FEE
    assert token.balanceOf(feed) == before + FEE
    assert requests.requestOf(request_id).state == REFUNDED
    with reverts_exactly(requests.InferenceRequestsNotOpen, requestId=request_id, state=REFUNDED):
        requests.refund(request_id, sender=deployer)


# ---------------------------------------------------------------- squatting


def test_attack_squat__requests_namespace__no_record_without_the_contracts_consent(
        requests, feed, settlement, hostile, alice, bob, operator, answer_for, deployer, open_model, sign_auth, sign):
    """No one can record anything in the requests contract's namespace: not by settling as its payer, not with
    a consent for other terms, an immediate request, or after expiry; a record in the attacker's own namespace
    under the same id touches nothing of the request."""
    request_id = ask(feed, "squat", alice)
    r, signature, output = answer_for(request_id, "squat")
    with reverts_exactly(settlement.InferenceSettlementNotPayer, caller=bob.address, payer=requests.address):
        settlement.settle(r.as_args(), signature, sender=bob)

    other_terms = r.with_changes(inputHash=keccak(text="attacker's question"))
    for forged in (other_terms, r.with_changes(price=FEE + 1)):
        auth = authorization(forged, node=operator.address)
        with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=requests.address):
            settlement.settleWithAuthorization(forged.as_args(), sign(forged, operator), auth.as_args(),
                                               contract_consent(auth), sender=bob)
    # a key-signed authorization is no consent from a contract
    auth = authorization(r, node=operator.address)
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=requests.address):
        settlement.settleWithAuthorization(r.as_args(), signature, auth.as_args(), sign_auth(auth, bob), sender=bob)

    immediate = open_hostile(hostile, open_model, "squat immediate", deployer, finality=IMMEDIATE)
    ri, signature_i, _ = answer_for(immediate, "squat immediate")
    auth_i = authorization(ri, node=operator.address)
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=requests.address):
        settlement.settleWithAuthorization(ri.as_args(), signature_i, auth_i.as_args(), contract_consent(auth_i),
                                           sender=bob)

    own = r.with_changes(payer=bob.address)
    settlement.settle(own.as_args(), sign(own, operator), sender=bob)
    assert settlement.recordOf(requests, request_id).status == Status.NONE
    requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)
    assert feed.answers(request_id).outputHash == keccak(output)


# ---------------------------------------------------------------- delayed: batches and asynchronous proofs


def test_batch__answer_claimed_under_consent__called_back_after_the_window(
        requests, feed, settlement, batches, token, alice, operator, operator2, answer_for, sign, chain):
    request_id = ask(feed, "batched", alice)
    r, _, output = answer_for(request_id, "batched")
    claimed_in_a_batch(batches, sign, chain, r, operator, operator2)
    assert settlement.recordOf(requests, request_id).status == Status.PENDING
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=request_id, status=Status.PENDING):
        requests.deliver(request_id, r.as_args(), output, sender=operator)

    advance(chain, CHALLENGE_WINDOW + 1)
    proceeds = settlement.proceedsOf(operator)
    tx = requests.deliver(request_id, r.as_args(), output, sender=operator)
    assert tx.events.filter(feed.Answered)[0].output == output
    assert settlement.custodyOf(requests, request_id).held == 0
    assert settlement.proceedsOf(operator) > proceeds  # the held payment was released with the callback
    assert_fees_accounted(requests, settlement, token)


def test_batch__consent_after_expiry__refused(requests, feed, settlement, batches, alice, operator, operator2,
                                              answer_for, sign, chain):
    request_id = ask(feed, "batched late", alice, ttl=HOUR)
    r, _, _ = answer_for(request_id, "batched late")
    batch = signed_batch(sign, [(r, operator)])
    advance(chain, 1)
    batch_id = post_batch(batches, batch, operator2)
    advance(chain, HOUR + 1)
    auth = authorization(r, node=operator.address)
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=requests.address):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), contract_consent(auth), sender=operator2)


def test_batch__rejected__request_answered_again_and_called_back_with_the_new_answer(
        requests, feed, settlement, batches, token, alice, operator, operator2, reporter, answer_for, sign, chain,
        open_model, now):
    request_id = ask(feed, "rejected", alice)
    r, _, _ = answer_for(request_id, "rejected")
    forged = receipt("forged leaf", open_model, operator.address, now(), payer=alice.address)
    batch, batch_id = claimed_in_a_batch(batches, sign, chain, r, operator, operator2, forged)
    assert settlement.custodyOf(requests, request_id).held == PRICE
    batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    assert settlement.recordOf(requests, request_id).status == Status.REJECTED
    assert_fees_accounted(requests, settlement, token)
    with reverts_exactly(requests.InferenceRequestsNotExpired, requestId=request_id):
        requests.refund(request_id, sender=alice)

    again, signature, output = answer_for(request_id, "rejected", text="a second, honest answer")
    feed_before = token.balanceOf(feed)
    tx = requests.fulfill(request_id, again.as_args(), signature, output, sender=operator)
    assert tx.events.filter(feed.Answered)[0].output == output
    assert feed.answers(request_id).outputHash == keccak(output)
    assert token.balanceOf(feed) == feed_before + FEE - PRICE  # charged once: the held payment came back first
    assert settlement.custodyOf(requests, request_id).held == 0
    assert_fees_accounted(requests, settlement, token)


@pytest.fixture
def tee_answer(requests, open_model, tee_key, heartbeat, chain):
    def make(request_id, label):
        r, output = answering(requests, request_id, label, open_model, tee_key.address, heartbeat(), mode=Mode.TEE)
        advance(chain, 1)
        return r, output

    return make


def test_async__proof_delivered__called_back_in_tee_mode(requests, feed, settlement, alice, operator, tee_key,
                                                        tee_answer, sign):
    request_id = ask(feed, "async", alice)
    r, output = tee_answer(request_id, "async")
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), contract_consent(auth), sender=operator)
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=request_id, status=Status.PENDING):
        requests.deliver(request_id, r.as_args(), output, sender=operator)
    settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=operator)
    tx = requests.deliver(request_id, r.as_args(), output, sender=operator)
    called = tx.events.filter(feed.Answered)[0]
    assert (called.mode, called.output) == (Mode.TEE, output)


def test_attack_post_and_never_prove__request_reopened_and_answered_by_an_honest_node(
        requests, feed, settlement, staking, token, alice, bob, operator, reporter, tee_answer, answer_for, chain,
        open_model, now, sign):
    """A node that posts a result for a request and never proves it is slashed, and cannot kill the request: once
    the missed proof is reported, the request moves to its next attempt and an honest answer is called back."""
    request_id = ask(feed, "missed", alice)
    r, _ = tee_answer(request_id, "missed")
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), contract_consent(auth), sender=operator)
    with reverts_exactly(requests.InferenceRequestsStillAnswering, requestId=request_id, status=Status.PENDING):
        requests.refund(request_id, sender=alice)
    with reverts_exactly(requests.InferenceRequestsAttemptNotFailed, requestId=request_id, status=Status.PENDING):
        requests.reopen(request_id, sender=alice)
    advance(chain, PROOF_WINDOW + 1)
    with reverts_exactly(requests.InferenceRequestsMissedProofUnreported, requestId=request_id):
        requests.reopen(request_id, sender=alice)
    settlement.reportMissedProof(requests, request_id, sender=reporter)
    assert_fees_accounted(requests, settlement, token)

    tx = requests.reopen(request_id, sender=reporter)
    settlement_id = requests.settlementIdOf(request_id)
    assert tx.events.filter(requests.RequestReopened)[0].settlementId == settlement_id
    assert settlement_id == ((1 << 128) | int.from_bytes(request_id, "big")).to_bytes(32, "big")
    stale, signature, output = answer_for(request_id, "missed", text="honest")
    with reverts_exactly(requests.InferenceRequestsWrongRequest, requestId=request_id):
        requests.fulfill(request_id, stale.as_args(), signature, output, sender=operator)
    # the jailed node is out; another node answers
    staking.registerOperator(INFERENCE_BIT, 50_000 * OPG, 0, sender=bob)
    advance(chain, 1)
    honest, output = answering(requests, request_id, "missed", open_model, bob.address, now(),
                               output=answer("honest"))
    honest = honest.with_changes(requestId=settlement_id)
    done = requests.fulfill(request_id, honest.as_args(), sign(honest, bob), output, sender=bob)
    assert done.events.filter(feed.Answered)[0].output == output
    assert settlement.recordOf(requests, request_id).status == Status.FAILED  # the first attempt stays failed
    assert_fees_accounted(requests, settlement, token)


def test_refund__expired_after_a_failed_attempt__fee_back(requests, feed, settlement, token, alice, operator,
                                                          reporter, tee_answer, chain):
    request_id = ask(feed, "missed then expired", alice, ttl=2 * HOUR)
    r, _ = tee_answer(request_id, "missed then expired")
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), contract_consent(auth), sender=operator)
    advance(chain, 2 * HOUR + 1)
    settlement.reportMissedProof(requests, request_id, sender=reporter)
    before = token.balanceOf(feed)
    requests.refund(request_id, sender=alice)
    assert token.balanceOf(feed) == before + FEE
    assert requests.requestOf(request_id).state == REFUNDED
    assert_fees_accounted(requests, settlement, token)


def test_feed__returned_fees_pay_the_next_question_and_a_late_answer_keeps_the_latest(
        requests, feed, token, alice, operator, answer_for, chain, deployer):
    first = ask(feed, "first", alice, ttl=HOUR)
    advance(chain, HOUR + 1)
    requests.refund(first, sender=deployer)
    assert token.balanceOf(feed) == FEE
    before = token.balanceOf(alice)
    second = ask(feed, "second", alice)
    third = ask(feed, "third", alice)
    assert token.balanceOf(alice) == before - FEE  # the second question was paid by the returned fee
    for request_id, label in ((third, "third"), (second, "second")):
        r, signature, output = answer_for(request_id, label)
        requests.fulfill(request_id, r.as_args(), signature, output, sender=operator)
    assert feed.latestRequestId() == third


def test_attack_split_pool__refund_of_a_failed_answer_then_a_large_answer__still_settles(
        requests, hostile, settlement, staking, token, deployer, open_model, operator, bob, reporter, tee_key,
        heartbeat, chain, now, sign):
    """Settlement charges a price from escrow or from the wallet, never both. Fees kept in the wallet while
    refunds land in escrow would leave a pool that covers every open request unable to pay one answer."""
    small = open_hostile(hostile, open_model, "split small", deployer, fee=10 * OPG, ttl=2 * HOUR)
    large = open_hostile(hostile, open_model, "split large", deployer, fee=15 * OPG)
    r, _ = answering(requests, small, "split small", open_model, tee_key.address, heartbeat(), mode=Mode.TEE,
                     price=10 * OPG)
    advance(chain, 1)
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), contract_consent(auth), sender=operator)
    advance(chain, 2 * HOUR + 1)
    settlement.reportMissedProof(requests, small, sender=reporter)
    requests.refund(small, sender=deployer)

    staking.registerOperator(INFERENCE_BIT, 50_000 * OPG, 0, sender=bob)
    advance(chain, 1)
    answer_, output = answering(requests, large, "split large", open_model, bob.address, now(), price=15 * OPG)
    requests.fulfill(large, answer_.as_args(), sign(answer_, bob), output, sender=bob)
    assert settlement.recordOf(requests, large).status == Status.FINAL
    assert_fees_accounted(requests, settlement, token)


def test_attack_withheld_output__answer_final_but_never_delivered__closed_after_expiry_with_the_rest_back(
        requests, hostile, settlement, token, deployer, open_model, operator, answer_for, chain):
    """A node settles an answer under the contract's consent and never reveals its output: it is paid, but the
    request does not stay open for ever: a day after it expired, anyone closes it with the recorded receipt and
    the unspent fee goes back to the consumer (not sooner, so no one can close it just ahead of a delivery)."""
    request_id = open_hostile(hostile, open_model, "withheld", deployer, ttl=HOUR)
    r, signature, _ = answer_for(request_id, "withheld")
    auth = authorization(r, node=operator.address)
    settlement.settleWithAuthorization(r.as_args(), signature, auth.as_args(), contract_consent(auth),
                                       sender=operator)
    with reverts_exactly(requests.InferenceRequestsNotExpired, requestId=request_id):
        requests.closeWithheld(request_id, r.as_args(), sender=deployer)
    with reverts_exactly(requests.InferenceRequestsStillAnswering, requestId=request_id, status=Status.FINAL):
        requests.refund(request_id, sender=deployer)
    advance(chain, HOUR + 1)
    with reverts_exactly(requests.InferenceRequestsDeliveryStillOpen, requestId=request_id):
        requests.closeWithheld(request_id, r.as_args(), sender=deployer)  # a day to deliver after expiry
    advance(chain, 24 * HOUR)
    with reverts_exactly(settlement.InferenceSettlementReceiptMismatch):
        requests.closeWithheld(request_id, r.with_changes(price=0).as_args(), sender=deployer)
    before = token.balanceOf(hostile)
    tx = requests.closeWithheld(request_id, r.as_args(), sender=deployer)
    assert tx.events.filter(requests.RequestClosedWithheld)[0].refund == FEE - PRICE
    assert token.balanceOf(hostile) == before + FEE - PRICE
    assert requests.requestOf(request_id).state == REFUNDED
    assert_fees_accounted(requests, settlement, token)


def test_consent__asked_by_anyone_but_settlement_or_malformed__refused(requests, feed, alice, operator, answer_for):
    """ERC-1271 answers only settlement, and only for an authorization encoded whole."""
    request_id = ask(feed, "direct consent", alice)
    r, _, _ = answer_for(request_id, "direct consent")
    auth = authorization(r, node=operator.address)
    refused = bytes.fromhex("ffffffff")
    digest = b"\x00" * 32  # any: the caller and the encoding are checked first
    assert requests.isValidSignature(digest, contract_consent(auth), sender=alice) == refused
    assert requests.isValidSignature(digest, contract_consent(auth)[:-1], sender=alice) == refused


def test_refund__rejected_batch_payment_still_held__named_until_released(
        requests, feed, settlement, batches, token, alice, operator, operator2, reporter, answer_for, sign, chain,
        open_model, now):
    request_id = ask(feed, "held then expired", alice, ttl=HOUR)
    r, _, _ = answer_for(request_id, "held then expired")
    forged = receipt("forged leaf 2", open_model, operator.address, now(), payer=alice.address)
    batch, batch_id = claimed_in_a_batch(batches, sign, chain, r, operator, operator2, forged)
    batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    advance(chain, HOUR + 1)
    with reverts_exactly(requests.InferenceRequestsPaymentHeld, requestId=request_id):
        requests.refund(request_id, sender=alice)
    settlement.releaseBatchPayment(r.as_args(), sender=reporter)  # the held price back to the pool
    requests.refund(request_id, sender=alice)
    assert_fees_accounted(requests, settlement, token)


def test_close_withheld__another_request_or_answered_after_expiry(requests, hostile, settlement, batches,
                                                                  deployer, open_model, operator, operator2,
                                                                  answer_for, sign, chain):
    request_id = open_hostile(hostile, open_model, "late answer", deployer, ttl=HOUR)
    r, signature, _ = answer_for(request_id, "late answer")
    # answered under consent in a batch just before expiry; final only after its window, past the expiry
    claimed_in_a_batch(batches, sign, chain, r, operator, operator2)
    advance(chain, CHALLENGE_WINDOW + 24 * HOUR)  # a day after expiry, not yet a day after the window closed
    final_at = settlement.recordOf(requests, request_id).settledAt
    assert final_at > requests.requestOf(request_id).expiresAt
    with reverts_exactly(requests.InferenceRequestsDeliveryStillOpen, requestId=request_id):
        requests.closeWithheld(request_id, r.as_args(), sender=deployer)
    advance(chain, HOUR + 60)
    with reverts_exactly(requests.InferenceRequestsWrongRequest, requestId=request_id):
        requests.closeWithheld(request_id, r.with_changes(payer=deployer.address).as_args(), sender=deployer)
    requests.closeWithheld(request_id, r.as_args(), sender=deployer)


def test_open__free_model__nothing_escrowed_and_answered_for_free(requests, settlement, register_model, deployer,
                                                                  project, token, operator, now, sign):
    free = register_model("free for requests", [Mode.VANILLA], price=0)
    consumer = deployer.deploy(project.ExploitCallbackConsumer, requests, token)
    tx = consumer.openRequest(free, question("free"), Mode.VANILLA, IMMEDIATE, 0, CALLBACK_GAS, HOUR,
                              sender=deployer)
    request_id = [log for log in tx.events if log.event_name == "RequestOpened"][0].requestId
    r, output = answering(requests, request_id, "free", free, operator.address, now(), price=0)
    requests.fulfill(request_id, r.as_args(), sign(r, operator), output, sender=operator)
    assert consumer.calls() == 1 and settlement.escrowOf(requests) == 0
