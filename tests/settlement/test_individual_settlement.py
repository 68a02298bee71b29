"""Individual settlement: each mode verified at once, each requestId once, every failure named."""

import ape
from eip712.messages import EIP712Domain
from eth_account import Account
from eth_utils import keccak

from opgkit.manifest import Image, OutputManifest
from opgkit.receipt_typed_data import Receipt as TypedReceipt
from opgkit.receipts import Status, receipt_digest, sign_receipt, zkml_evidence
from opgkit.testing import advance
from opgkit.typed_data import domain_of, sign as sign_typed
from settlement_helpers import MAX_RECEIPT_AGE, Mode, answer_hash, receipt, zk_outputs, zk_receipt


def test_settle__vanilla_by_active_node__final(settlement, open_model, operator, sign, now):
    r = receipt("v1", open_model, operator.address, now())
    tx = settlement.settle(r.as_args(), sign(r, operator), sender=operator)
    event = tx.events.filter(settlement.ReceiptSettled)[0]
    assert (event.requestId, event.modelId, event.mode, event.outputHash) == (r.requestId, open_model, 0, r.outputHash)
    out = settlement.verifiedOutput(r.requestId)
    assert (out.outputHash, out.mode, out.status, out.settledAt) == (r.outputHash, 0, Status.FINAL, tx.timestamp)


def test_settle__anyone_submits__final(settlement, open_model, operator, bob, sign, now):
    r = receipt("relayed", open_model, operator.address, now())
    settlement.settle(r.as_args(), sign(r, operator), sender=bob)
    assert settlement.verifiedOutput(r.requestId).status == Status.FINAL


def test_settle__same_request_twice__already_settled(settlement, open_model, operator, sign, now):
    r = receipt("twice", open_model, operator.address, now())
    signature = sign(r, operator)
    settlement.settle(r.as_args(), signature, sender=operator)
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.settle(r.as_args(), signature, sender=operator)
    other_answer = r.with_changes(outputHash=answer_hash("a different answer"))
    with ape.reverts(settlement.InferenceSettlementAlreadySettled, requestId=r.requestId):
        settlement.settle(other_answer.as_args(), sign(other_answer, operator), sender=operator)


def test_settle__receipt_signed_for_other_contract__bad_signature(deploy_settlement, settlement, open_model, operator,
                                                                 now):
    """Replay across contracts: the domain binds the verifying contract."""
    other = deploy_settlement()
    r = receipt("other-contract", open_model, operator.address, now())
    signature = sign_receipt(other, r, operator.private_key)
    other.settle(r.as_args(), signature, sender=operator)
    assert other.verifiedOutput(r.requestId).status == Status.FINAL
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), signature, sender=operator)


def test_settle__receipt_signed_for_other_chain__bad_signature(settlement, open_model, operator, now):
    """Replay across chains: the domain binds the chain id."""
    r = receipt("other-chain", open_model, operator.address, now())
    here = domain_of(settlement)
    elsewhere = EIP712Domain(name=here.name, version=here.version, chainId=here.chainId + 1,
                             verifyingContract=here.verifyingContract)
    message = TypedReceipt(**dict(zip(TypedReceipt.model_fields, r.as_args())), eip712_domain=elsewhere)
    signature = sign_typed(message, operator.private_key).packed
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), signature, sender=operator)


def test_settle__signature_of_other_key__bad_signature(settlement, open_model, operator, sign, now):
    r = receipt("wrong-key", open_model, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), sign(r, Account.create()), sender=operator)


def test_settle__malformed_signature__bad_signature(settlement, open_model, operator, now):
    r = receipt("malformed", open_model, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), b"\x01" * 64, sender=operator)


def test_settle__image_bytes_changed_after_signing__bad_signature(settlement, open_model, operator, sign, now):
    image = Image(media_type="image/png", data=bytes(range(256)) * 4)
    signed_manifest = OutputManifest(text="a cat", images=(image,))
    r = receipt("image", open_model, operator.address, now(), output_hash=signed_manifest.output_hash())
    signature = sign(r, operator)
    tampered = bytearray(image.data)
    tampered[100] ^= 1
    delivered = OutputManifest(text="a cat", images=(Image(media_type="image/png", data=bytes(tampered)),))
    assert delivered.output_hash() != r.outputHash
    forged = r.with_changes(outputHash=delivered.output_hash())
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(forged.as_args(), signature, sender=operator)


def test_settle__vanilla_signer_not_staked__signer_inactive(settlement, open_model, bob, sign, now):
    outsider = Account.create()
    r = receipt("outsider", open_model, outsider.address, now())
    with ape.reverts(settlement.InferenceSettlementSignerInactive, signer=outsider.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, outsider), sender=bob)


def test_settle__vanilla_signer_jailed__signer_inactive(settlement, staking, open_model, operator, gov, bob, sign, now):
    staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
    staking.slash(operator, 100, keccak(text="jail the node"), gov, sender=gov)
    r = receipt("jailed", open_model, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementSignerInactive, signer=operator.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, operator), sender=bob)


def test_settle__tee_key_active_at_timestamp__final(settlement, open_model, tee_key, bob, sign, heartbeat):
    timestamp = heartbeat()
    r = receipt("tee", open_model, tee_key.address, timestamp, mode=Mode.TEE)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    out = settlement.verifiedOutput(r.requestId)
    assert (out.mode, out.status) == (Mode.TEE, Status.FINAL)


def test_settle__tee_heartbeat_stale_at_timestamp__signer_inactive(settlement, open_model, tee_key, bob, sign, heartbeat,
                                                                 chain):
    beat = heartbeat()
    advance(chain, 2 * 3_600)
    r = receipt("stale-tee", open_model, tee_key.address, beat + 3_601, mode=Mode.TEE)
    with ape.reverts(settlement.InferenceSettlementSignerInactive, signer=tee_key.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)


def test_settle__tee_disabled_before_timestamp__signer_inactive(settlement, tees, open_model, tee_key, operator, bob,
                                                              sign, heartbeat, now):
    heartbeat()
    tees.setEnabled(tee_key.address, False, sender=operator)
    r = receipt("disabled-tee", open_model, tee_key.address, now(), mode=Mode.TEE)
    with ape.reverts(settlement.InferenceSettlementSignerInactive, signer=tee_key.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)


def test_settle__tee_mode_signed_by_plain_node__signer_inactive(settlement, open_model, operator, bob, sign, now):
    """A staked node's own key is not a TEE key: claiming TEE mode with it fails."""
    r = receipt("fake-tee", open_model, operator.address, now(), mode=Mode.TEE)
    with ape.reverts(settlement.InferenceSettlementSignerInactive, signer=operator.address, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, operator), sender=bob)


def test_settle__unknown_model__named_error(settlement, operator, sign, now):
    missing = keccak(text="no such model")
    r = receipt("unknown-model", missing, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementUnknownModel, modelId=missing):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_settle__deprecated_model__named_error(settlement, models, open_model, carol, operator, sign, now):
    models.deprecate(open_model, sender=carol)
    r = receipt("deprecated", open_model, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementModelDeprecated, modelId=open_model):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_settle__mode_below_policy__named_error(settlement, tee_model, operator, sign, now):
    r = receipt("below-policy", tee_model, operator.address, now())
    with ape.reverts(settlement.InferenceSettlementModeNotAccepted, modelId=tee_model, mode=Mode.VANILLA):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_settle__timestamp_in_future__named_error(settlement, open_model, operator, sign, chain):
    r = receipt("future", open_model, operator.address, chain.pending_timestamp + 60)
    with ape.reverts(settlement.InferenceSettlementReceiptFromFuture, timestamp=r.timestamp):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_settle__receipt_older_than_max_age__named_error(settlement, open_model, operator, sign, now, chain):
    r = receipt("old", open_model, operator.address, now())
    advance(chain, MAX_RECEIPT_AGE + 1)
    with ape.reverts(settlement.InferenceSettlementReceiptTooOld, timestamp=r.timestamp, maxAge=MAX_RECEIPT_AGE):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_settle__priced_receipt_without_payment__payment_required(settlement, open_model, operator, alice, sign, now):
    r = receipt("priced", open_model, operator.address, now(), payer=alice.address, price=10)
    with ape.reverts(settlement.InferenceSettlementPaymentRequired, price=10):
        settlement.settle(r.as_args(), sign(r, operator), sender=operator)


def test_receipt_digest__python_equals_contract(settlement, open_model, operator, now):
    r = receipt("digest", open_model, operator.address, now())
    assert settlement.receiptDigest(r.as_args()) == receipt_digest(settlement, r)


# ---------------------------------------------------------------- ZKML


def test_settle__zkml_proof_bound_and_valid__final(settlement, zk_model, operator, bob, sign, now):
    inputs = [3, 4, 5]
    r = zk_receipt("zk", zk_model, operator.address, now(), inputs)
    settlement.settle(r.as_args(), zkml_evidence(sign(r, operator), b"", inputs, zk_outputs(inputs)), sender=bob)
    out = settlement.verifiedOutput(r.requestId)
    assert (out.mode, out.status) == (Mode.ZKML, Status.FINAL)


def test_settle__zkml_proof_of_different_input__input_not_bound(settlement, zk_model, operator, bob, sign, now):
    """A valid proof of another computation cannot settle this receipt."""
    claimed, proven = [3, 4, 5], [1, 1, 1]
    r = zk_receipt("zk-other-input", zk_model, operator.address, now(), claimed)
    evidence = zkml_evidence(sign(r, operator), b"", proven, zk_outputs(proven))
    with ape.reverts(settlement.InferenceSettlementInputNotBound, inputHash=r.inputHash):
        settlement.settle(r.as_args(), evidence, sender=bob)


def test_settle__zkml_output_other_than_proven__output_not_bound(settlement, zk_model, operator, bob, sign, now):
    inputs = [3, 4, 5]
    r = zk_receipt("zk-other-output", zk_model, operator.address, now(), inputs, outputs=[1, 2])
    evidence = zkml_evidence(sign(r, operator), b"", inputs, zk_outputs(inputs))
    with ape.reverts(settlement.InferenceSettlementOutputNotBound, outputHash=r.outputHash):
        settlement.settle(r.as_args(), evidence, sender=bob)


def test_settle__zkml_wrong_computation__proof_rejected(settlement, zk_verifier, zk_model, operator, bob, sign, now):
    inputs, wrong = [3, 4, 5], [1, 2]
    r = zk_receipt("zk-wrong", zk_model, operator.address, now(), inputs, outputs=wrong)
    evidence = zkml_evidence(sign(r, operator), b"", inputs, wrong)
    with ape.reverts(settlement.InferenceSettlementProofRejected, verifier=zk_verifier.address):
        settlement.settle(r.as_args(), evidence, sender=bob)


def test_settle__zkml_signed_by_outsider__bad_signature(settlement, zk_model, operator, bob, sign, now):
    """A public proof does not let anyone else claim the node's receipt (and its payment)."""
    inputs = [3, 4, 5]
    r = zk_receipt("zk-outsider", zk_model, operator.address, now(), inputs)
    evidence = zkml_evidence(sign(r, Account.create()), b"", inputs, zk_outputs(inputs))
    with ape.reverts(settlement.InferenceSettlementBadSignature, signer=operator.address):
        settlement.settle(r.as_args(), evidence, sender=bob)


def test_settle__zkml_mode_on_vanilla_model__mode_not_accepted(settlement, open_model, operator, sign, now):
    inputs = [3, 4, 5]
    r = zk_receipt("zk-on-open", open_model, operator.address, now(), inputs)
    with ape.reverts(settlement.InferenceSettlementModeNotAccepted, modelId=open_model, mode=Mode.ZKML):
        settlement.settle(r.as_args(), zkml_evidence(sign(r, operator), b"", inputs, zk_outputs(inputs)),
                          sender=operator)
