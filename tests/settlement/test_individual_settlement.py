"""Individual settlement: each mode verified at once, each (payer, requestId) once, every failure named.

`settle` is the payer's own call (its consent); `settleWithAuthorization` lets anyone settle under the payer's
signed authorization (see test_payments.py for the authorization checks themselves).
"""

import pytest
from eip712.messages import EIP712Domain
from eth_account import Account
from eth_utils import keccak

from opgkit.manifest import Image, OutputManifest
from opgkit.receipt_typed_data import Receipt as TypedReceipt
from opgkit.receipts import Status, receipt_digest, sign_receipt, zkml_evidence
from opgkit.testing import advance
from opgkit.typed_data import domain_of, sign as sign_typed
from settlement_helpers import (
    INFERENCE_BIT, MAX_RECEIPT_AGE, TEE_BIT, ZERO_ADDRESS, Mode, answer_hash, authorization, receipt, recorded_hash,
    reverts_exactly, zk_outputs, zk_receipt,
)

NODE_BOND = 50_000 * 10**18  # as in conftest.py


# ---------------------------------------------------------------- the payer settles


def test_settle__vanilla_by_payer__final_and_recorded(settlement, open_model, operator, alice, sign, now):
    r = receipt("v1", open_model, operator.address, now(), payer=alice.address)
    tx = settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    event = tx.events.filter(settlement.ReceiptSettled)[0]
    assert (event.requestId, event.payer, event.modelId, event.mode, event.outputHash) == (
        r.requestId, alice.address, open_model, Mode.VANILLA, r.outputHash)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.mode, record.settledAt) == (Status.FINAL, Mode.VANILLA, tx.timestamp)
    assert record.receiptHash == recorded_hash(settlement, r)
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, True) == tx.timestamp


def test_settle__caller_not_payer__not_payer(settlement, open_model, operator, alice, bob, sign, now):
    r = receipt("relayed", open_model, operator.address, now(), payer=alice.address)
    signature = sign(r, operator)
    for caller in (bob, operator):
        with reverts_exactly(settlement.InferenceSettlementNotPayer, caller=caller.address, payer=alice.address):
            settlement.settle(r.as_args(), signature, sender=caller)
    assert settlement.recordOf(alice, r.requestId).status == Status.NONE


def test_settle__zero_payer__not_payer(settlement, open_model, operator, sign, now):
    """Nobody sends from the zero address, so nobody can settle a receipt without a payer."""
    r = receipt("no-payer", open_model, operator.address, now())
    with reverts_exactly(settlement.InferenceSettlementNotPayer, caller=operator.address, payer=ZERO_ADDRESS):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_settle_with_authorization__zero_payer__zero_payer(settlement, open_model, operator, bob, sign, sign_auth, now):
    r = receipt("no-payer-auth", open_model, operator.address, now())
    auth = authorization(r)
    with reverts_exactly(settlement.InferenceSettlementZeroPayer, requestId=r.requestId):
        settlement.settleWithAuthorization(r.as_args(), sign(r, operator), auth.as_args(), sign_auth(auth, bob),
                                           sender=bob)


def test_settle_with_authorization__third_party_with_payer_consent__final(settlement, open_model, operator, alice, bob,
                                                                         sign, sign_auth, now):
    r = receipt("relayed-auth", open_model, operator.address, now(), payer=alice.address)
    auth = authorization(r)
    tx = settlement.settleWithAuthorization(r.as_args(), sign(r, operator), auth.as_args(), sign_auth(auth, alice),
                                            sender=bob)
    assert tx.events.filter(settlement.ReceiptSettled)[0].payer == alice.address
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.settledAt) == (Status.FINAL, tx.timestamp)
    assert settlement.recordOf(bob, r.requestId).status == Status.NONE


# ---------------------------------------------------------------- once per (payer, requestId)


def test_settle__same_request_twice__already_settled(settlement, open_model, operator, alice, bob, sign, sign_auth,
                                                     now):
    r = receipt("twice", open_model, operator.address, now(), payer=alice.address)
    signature = sign(r, operator)
    settlement.settle(r.as_args(), signature, sender=alice)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        settlement.settle(r.as_args(), signature, sender=alice)
    other_answer = r.with_changes(outputHash=answer_hash("a different answer"))
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        settlement.settle(other_answer.as_args(), sign(other_answer, operator), sender=alice)
    auth = authorization(other_answer)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
        settlement.settleWithAuthorization(other_answer.as_args(), sign(other_answer, operator), auth.as_args(),
                                           sign_auth(auth, alice), sender=bob)
    assert settlement.recordOf(alice, r.requestId).receiptHash == recorded_hash(settlement, r)


def test_settle__same_request_id_under_two_payers__both_final(settlement, open_model, operator, alice, bob, carol,
                                                             sign, now):
    """Namespaces are independent: one payer's request id never blocks (or is blocked by) another's."""
    for_alice = receipt("shared id", open_model, operator.address, now(), payer=alice.address, text="for alice")
    for_bob = for_alice.with_changes(payer=bob.address, outputHash=answer_hash("for bob"))
    assert for_alice.requestId == for_bob.requestId
    settlement.settle(for_alice.as_args(), sign(for_alice, operator), sender=alice)
    settlement.settle(for_bob.as_args(), sign(for_bob, operator), sender=bob)
    assert settlement.recordOf(alice, for_alice.requestId).receiptHash == recorded_hash(settlement, for_alice)
    assert settlement.recordOf(bob, for_bob.requestId).receiptHash == recorded_hash(settlement, for_bob)
    assert settlement.recordOf(alice, for_alice.requestId).status == Status.FINAL
    assert settlement.recordOf(bob, for_bob.requestId).status == Status.FINAL
    assert settlement.recordOf(carol, for_alice.requestId).status == Status.NONE
    # Each namespace answers only for its own receipt.
    with reverts_exactly(settlement.InferenceSettlementReceiptMismatch, requestId=for_alice.requestId):
        settlement.requireVerifiedReceipt(for_alice.with_changes(payer=bob.address).as_args(), Mode.VANILLA, True)


# ---------------------------------------------------------------- signatures and replay


def test_settle__receipt_signed_for_other_contract__bad_signature(deploy_settlement, settlement, open_model, operator,
                                                                 alice, now):
    """Replay across contracts: the domain binds the verifying contract."""
    other, _ = deploy_settlement()
    r = receipt("other-contract", open_model, operator.address, now(), payer=alice.address)
    signature = sign_receipt(other, r, operator.private_key)
    other.settle(r.as_args(), signature, sender=alice)
    assert other.recordOf(alice, r.requestId).status == Status.FINAL
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), signature, sender=alice)


def test_settle__receipt_signed_for_other_chain__bad_signature(settlement, open_model, operator, alice, now):
    """Replay across chains: the domain binds the chain id."""
    r = receipt("other-chain", open_model, operator.address, now(), payer=alice.address)
    here = domain_of(settlement)
    elsewhere = EIP712Domain(name=here.name, version=here.version, chainId=here.chainId + 1,
                             verifyingContract=here.verifyingContract)
    message = TypedReceipt(**dict(zip(TypedReceipt.model_fields, r.as_args())), eip712_domain=elsewhere)
    signature = sign_typed(message, operator.private_key).packed
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), signature, sender=alice)


def test_settle__receipt_signed_for_other_payer__bad_signature(settlement, open_model, operator, alice, bob, sign,
                                                               now):
    """The payer is part of what the node signs: moving a receipt to another namespace breaks the signature."""
    r = receipt("moved", open_model, operator.address, now(), payer=alice.address)
    moved = r.with_changes(payer=bob.address)
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(moved.as_args(), sign(r, operator), sender=bob)


def test_settle__signature_of_other_key__bad_signature(settlement, open_model, operator, alice, sign, now):
    r = receipt("wrong-key", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), sign(r, Account.create()), sender=alice)


def test_settle__malformed_signature__bad_signature(settlement, open_model, operator, alice, now):
    r = receipt("malformed", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), b"\x01" * 64, sender=alice)


def test_settle__image_bytes_changed_after_signing__bad_signature(settlement, open_model, operator, alice, sign, now):
    image = Image(media_type="image/png", data=bytes(range(256)) * 4)
    signed_manifest = OutputManifest(text="a cat", images=(image,))
    r = receipt("image", open_model, operator.address, now(), payer=alice.address,
                output_hash=signed_manifest.output_hash())
    signature = sign(r, operator)
    tampered = bytearray(image.data)
    tampered[100] ^= 1
    delivered = OutputManifest(text="a cat", images=(Image(media_type="image/png", data=bytes(tampered)),))
    assert delivered.output_hash() != r.outputHash
    forged = r.with_changes(outputHash=delivered.output_hash())
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(forged.as_args(), signature, sender=alice)


# ---------------------------------------------------------------- VANILLA signers, judged at the receipt's timestamp


def test_settle__vanilla_signer_not_staked__signer_inactive(settlement, open_model, alice, sign, now):
    outsider = Account.create()
    r = receipt("outsider", open_model, outsider.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=outsider.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, outsider), sender=alice)


def test_settle__vanilla_signer_jailed_before_timestamp__signer_inactive(settlement, open_model, operator, alice, sign,
                                                                        jail, now):
    jail(operator)
    r = receipt("jailed", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=operator.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_settle__receipt_stamped_before_node_registered__signer_inactive(settlement, staking, open_model, alice, bob,
                                                                         sign, now, chain):
    before = now()
    advance(chain, 10)
    staking.registerOperator(INFERENCE_BIT, NODE_BOND, 0, sender=bob)
    early = receipt("before-registration", open_model, bob.address, before, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=bob.address, timestamp=before):
        settlement.settle(early.as_args(), sign(early, bob), sender=alice)
    # The same node is judged active for a receipt stamped after it registered.
    later = receipt("after-registration", open_model, bob.address, now(), payer=alice.address)
    settlement.settle(later.as_args(), sign(later, bob), sender=alice)
    assert settlement.recordOf(alice, later.requestId).status == Status.FINAL


AFTERWARDS = {
    "unbonds": lambda staking, operator, jail: staking.unbond(operator, staking.sharesOf(operator, operator),
                                                             sender=operator),
    "drops_inference_role": lambda staking, operator, jail: staking.setRoles(TEE_BIT, sender=operator),
    "is_jailed": lambda staking, operator, jail: jail(operator),
}


@pytest.mark.parametrize("change", AFTERWARDS, ids=list(AFTERWARDS))
def test_settle__vanilla_node_active_at_timestamp_then_inactive__still_final(change, settlement, staking, open_model,
                                                                           operator, alice, sign, jail, now, chain):
    """Nothing a node does after signing (or suffers) rewrites what it signed while active."""
    r = receipt(f"then-{change}", open_model, operator.address, now(), payer=alice.address)
    signature = sign(r, operator)
    advance(chain, 5)
    AFTERWARDS[change](staking, operator, jail)
    assert not staking.isActiveOperator(operator, 0)

    settlement.settle(r.as_args(), signature, sender=alice)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    # A receipt stamped after the change is judged by the node's state then.
    late = receipt(f"after-{change}", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=operator.address,
                         timestamp=late.timestamp):
        settlement.settle(late.as_args(), sign(late, operator), sender=alice)


# ---------------------------------------------------------------- TEE signers


def test_settle__tee_key_active_at_timestamp__final(settlement, open_model, tee_key, alice, sign, heartbeat):
    timestamp = heartbeat()
    r = receipt("tee", open_model, tee_key.address, timestamp, mode=Mode.TEE, payer=alice.address)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.mode, record.status) == (Mode.TEE, Status.FINAL)


def test_settle__tee_operator_jailed_after_timestamp__still_final(settlement, open_model, tee_key, operator, alice,
                                                                  sign, heartbeat, jail, chain):
    r = receipt("tee-then-jailed", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address)
    advance(chain, 5)
    jail(operator)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL


def test_settle__tee_heartbeat_stale_at_timestamp__signer_inactive(settlement, open_model, tee_key, alice, sign,
                                                                 heartbeat, chain):
    beat = heartbeat()
    advance(chain, 2 * 3_600)
    r = receipt("stale-tee", open_model, tee_key.address, beat + 3_601, mode=Mode.TEE, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=tee_key.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)


def test_settle__tee_disabled_before_timestamp__signer_inactive(settlement, tees, open_model, tee_key, operator, alice,
                                                              sign, heartbeat, now):
    heartbeat()
    tees.setEnabled(tee_key.address, False, sender=operator)
    r = receipt("disabled-tee", open_model, tee_key.address, now(), mode=Mode.TEE, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=tee_key.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)


def test_settle__tee_mode_signed_by_plain_node__signer_inactive(settlement, open_model, operator, alice, sign, now):
    """A staked node's own key is not a TEE key: claiming TEE mode with it fails."""
    r = receipt("fake-tee", open_model, operator.address, now(), mode=Mode.TEE, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=operator.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_settle_with_authorization__tee_key_unknown_to_registry__unknown_signer(settlement, open_model, alice, bob,
                                                                               sign, sign_auth, now):
    """Consent names the TEE's operator; a key the registry does not know has none."""
    unknown = Account.create()
    r = receipt("unknown-tee", open_model, unknown.address, now(), mode=Mode.TEE, payer=alice.address)
    auth = authorization(r)
    with reverts_exactly(settlement.InferenceSettlementUnknownSigner, signer=unknown.address):
        settlement.settleWithAuthorization(r.as_args(), sign(r, unknown), auth.as_args(), sign_auth(auth, alice),
                                           sender=bob)


# ---------------------------------------------------------------- models and timestamps


def test_settle__unknown_model__named_error(settlement, operator, alice, sign, now):
    missing = keccak(text="no such model")
    r = receipt("unknown-model", missing, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementUnknownModel, modelId=missing):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_settle__deprecated_model__named_error(settlement, models, open_model, carol, operator, alice, sign, now):
    models.deprecate(open_model, sender=carol)
    r = receipt("deprecated", open_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementModelDeprecated, modelId=open_model):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_settle__mode_below_policy__named_error(settlement, tee_model, operator, alice, sign, now):
    r = receipt("below-policy", tee_model, operator.address, now(), payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementModeNotAccepted, modelId=tee_model, mode=Mode.VANILLA):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_settle__timestamp_in_future__named_error(settlement, open_model, operator, alice, sign, chain):
    r = receipt("future", open_model, operator.address, chain.pending_timestamp + 60, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementReceiptFromFuture, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_settle__receipt_older_than_max_age__named_error(settlement, open_model, operator, alice, sign, now, chain):
    r = receipt("old", open_model, operator.address, now(), payer=alice.address)
    advance(chain, MAX_RECEIPT_AGE + 1)
    with reverts_exactly(settlement.InferenceSettlementReceiptTooOld, timestamp=r.timestamp, maxAge=MAX_RECEIPT_AGE):
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)


def test_receipt_digest__python_equals_contract(settlement, open_model, operator, alice, now):
    r = receipt("digest", open_model, operator.address, now(), payer=alice.address, price=7)
    assert settlement.receiptDigest(r.as_args()) == receipt_digest(settlement, r)


# ---------------------------------------------------------------- ZKML


def test_settle__zkml_proof_bound_and_valid__final(settlement, zk_model, operator, alice, sign, now):
    inputs = [3, 4, 5]
    r = zk_receipt("zk", zk_model, operator.address, now(), inputs, payer=alice.address)
    settlement.settle(r.as_args(), zkml_evidence(sign(r, operator), b"", inputs, zk_outputs(inputs)), sender=alice)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.mode, record.status) == (Mode.ZKML, Status.FINAL)
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.ZKML, True) == record.settledAt


def test_settle__zkml_proof_of_different_input__input_not_bound(settlement, zk_model, operator, alice, sign, now):
    """A valid proof of another computation cannot settle this receipt."""
    claimed, proven = [3, 4, 5], [1, 1, 1]
    r = zk_receipt("zk-other-input", zk_model, operator.address, now(), claimed, payer=alice.address)
    evidence = zkml_evidence(sign(r, operator), b"", proven, zk_outputs(proven))
    with reverts_exactly(settlement.InferenceSettlementInputNotBound, inputHash=r.inputHash):
        settlement.settle(r.as_args(), evidence, sender=alice)


def test_settle__zkml_output_other_than_proven__output_not_bound(settlement, zk_model, operator, alice, sign, now):
    inputs = [3, 4, 5]
    r = zk_receipt("zk-other-output", zk_model, operator.address, now(), inputs, outputs=[1, 2], payer=alice.address)
    evidence = zkml_evidence(sign(r, operator), b"", inputs, zk_outputs(inputs))
    with reverts_exactly(settlement.InferenceSettlementOutputNotBound, outputHash=r.outputHash):
        settlement.settle(r.as_args(), evidence, sender=alice)


def test_settle__zkml_wrong_computation__proof_rejected(settlement, zk_verifier, zk_model, operator, alice, sign, now):
    inputs, wrong = [3, 4, 5], [1, 2]
    r = zk_receipt("zk-wrong", zk_model, operator.address, now(), inputs, outputs=wrong, payer=alice.address)
    evidence = zkml_evidence(sign(r, operator), b"", inputs, wrong)
    with reverts_exactly(settlement.InferenceSettlementProofRejected, verifier=zk_verifier.address):
        settlement.settle(r.as_args(), evidence, sender=alice)


def test_settle__zkml_signed_by_outsider__bad_signature(settlement, zk_model, operator, alice, sign, now):
    """A public proof does not let anyone else claim the node's receipt (and its payment)."""
    inputs = [3, 4, 5]
    r = zk_receipt("zk-outsider", zk_model, operator.address, now(), inputs, payer=alice.address)
    evidence = zkml_evidence(sign(r, Account.create()), b"", inputs, zk_outputs(inputs))
    with reverts_exactly(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), evidence, sender=alice)


def test_settle__zkml_mode_on_vanilla_model__mode_not_accepted(settlement, open_model, operator, alice, sign, now):
    inputs = [3, 4, 5]
    r = zk_receipt("zk-on-open", open_model, operator.address, now(), inputs, payer=alice.address)
    with reverts_exactly(settlement.InferenceSettlementModeNotAccepted, modelId=open_model, mode=Mode.ZKML):
        settlement.settle(r.as_args(), zkml_evidence(sign(r, operator), b"", inputs, zk_outputs(inputs)),
                          sender=alice)
