"""ZKML settlement with real EZKL proofs of the shipped ONNX models, checked by their generated verifiers."""

from ape import chain
import pytest

from opgkit.receipt_verifier import recorded_hash
from opgkit.receipts import (
    NO_AUTHORIZATION, ReceiptBatch, SignedReceipt, Status, zkml_evidence, zkml_proof_evidence,
)
from opgkit.testing import advance, reverts
from opgkit.zkml.onchain import check_registration, deploy_model, model_spec
from opgkit.zkml.pipeline import SNARK_SCALAR_FIELD, ZkmlError
from settlement_helpers import PRICE, PROOF_WINDOW, Mode, authorization, zk_receipt

pytestmark = pytest.mark.zkml


def proven_receipt(label, model, signer, timestamp, proof, payer, **kwargs):
    """A ZKML receipt committing to the instances of ``proof``, asked for by ``payer``."""
    return zk_receipt(label, model.model_id, signer, timestamp, list(proof.inputs), list(proof.outputs),
                      payer=payer.address, **kwargs)


def settle_proven(settlement, r, signature, proof, sender):
    evidence = zkml_evidence(signature, proof.proof, proof.inputs, proof.outputs)
    return settlement.settle(r.as_args(), evidence, sender=sender)


def status_of(settlement, r):
    return Status(settlement.recordOf(r.payer, r.requestId).status)


def tampered(proof_bytes: bytes) -> bytes:
    middle = len(proof_bytes) // 2
    return proof_bytes[:middle] + bytes([proof_bytes[middle] ^ 1]) + proof_bytes[middle + 1:]


def test_generated_verifier__real_proof__accepts(liquidation_model, risky_proof):
    instances = [*risky_proof.inputs, *risky_proof.outputs]
    assert liquidation_model.halo2_verifier.verifyProof.call(risky_proof.proof, instances)  # not marked view
    assert liquidation_model.adapter.verifyInference(risky_proof.proof, risky_proof.inputs, risky_proof.outputs)


def test_registry__ezkl_model__records_adapter_and_key_digest(models, liquidation_model, liquidation_artifacts, carol):
    model = models.model(liquidation_model.model_id)
    assert model.zkVerifier == liquidation_model.adapter.address
    assert model.verifyingKeyDigest == liquidation_artifacts.vk_digest
    assert model.contentHash == liquidation_artifacts.content_hash
    assert model.owner == carol.address
    assert liquidation_model.adapter.verifyingKeyDigest() == liquidation_artifacts.vk_digest
    assert liquidation_model.adapter.halo2Verifier() == liquidation_model.halo2_verifier.address
    assert models.acceptsMode(liquidation_model.model_id, Mode.ZKML)
    assert not models.acceptsMode(liquidation_model.model_id, Mode.TEE)


def test_settle__real_ezkl_proof_by_its_payer__final_zkml_record(settlement, liquidation_model, risky_proof, operator,
                                                                bob, sign, now):
    r = proven_receipt("ezkl-settle", liquidation_model, operator.address, now(), risky_proof, bob)
    tx = settle_proven(settlement, r, sign(r, operator), risky_proof, sender=bob)
    record = settlement.recordOf(bob, r.requestId)
    assert (record.status, record.mode, record.receiptHash) == (Status.FINAL, Mode.ZKML, recorded_hash(settlement, r))
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.ZKML, True) == record.settledAt == tx.timestamp
    event = tx.events.filter(settlement.ReceiptSettled)[0]
    assert (event.payer, event.mode, event.outputHash) == (bob.address, Mode.ZKML, risky_proof.output_hash)


def test_settle__not_the_payer__not_payer(settlement, liquidation_model, risky_proof, operator, bob, sign, now):
    r = proven_receipt("ezkl-not-payer", liquidation_model, operator.address, now(), risky_proof, bob)
    with reverts(settlement.InferenceSettlementNotPayer, caller=operator.address, payer=bob.address):
        settle_proven(settlement, r, sign(r, operator), risky_proof, sender=operator)


def test_settle_with_authorization__priced_zkml_receipt__final_and_charged(settlement, token, liquidation_model,
                                                                         risky_proof, operator, alice, sign,
                                                                         sign_auth, now):
    r = proven_receipt("ezkl-authorized", liquidation_model, operator.address, now(), risky_proof, alice, price=PRICE)
    auth = authorization(r)
    evidence = zkml_evidence(sign(r, operator), risky_proof.proof, risky_proof.inputs, risky_proof.outputs)
    before = token.balanceOf(alice)
    settlement.settleWithAuthorization(r.as_args(), evidence, auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert status_of(settlement, r) == Status.FINAL
    assert token.balanceOf(alice) == before - PRICE
    settlement.requireVerifiedReceipt(r.as_args(), Mode.ZKML, True)


def test_settle__tampered_proof__proof_rejected(settlement, liquidation_model, risky_proof, operator, bob, sign, now):
    r = proven_receipt("ezkl-tampered", liquidation_model, operator.address, now(), risky_proof, bob)
    evidence = zkml_evidence(sign(r, operator), tampered(risky_proof.proof), risky_proof.inputs, risky_proof.outputs)
    with reverts(settlement.InferenceSettlementProofRejected, verifier=liquidation_model.adapter.address):
        settlement.settle(r.as_args(), evidence, sender=bob)


def test_settle__proof_of_a_different_input__input_not_bound(settlement, liquidation_model, risky_proof, safe_proof,
                                                             operator, bob, sign, now):
    r = proven_receipt("ezkl-other-input", liquidation_model, operator.address, now(), risky_proof, bob)
    with reverts(settlement.InferenceSettlementInputNotBound, inputHash=r.inputHash):
        settle_proven(settlement, r, sign(r, operator), safe_proof, sender=bob)


def test_settle__other_inputs_claimed_for_a_proof__proof_rejected(settlement, liquidation_model, risky_proof,
                                                                  safe_proof, operator, bob, sign, now):
    """The receipt and instances agree, but the proof was made for other inputs."""
    r = proven_receipt("ezkl-relabelled", liquidation_model, operator.address, now(), risky_proof, bob)
    evidence = zkml_evidence(sign(r, operator), safe_proof.proof, risky_proof.inputs, risky_proof.outputs)
    with reverts(settlement.InferenceSettlementProofRejected, verifier=liquidation_model.adapter.address):
        settlement.settle(r.as_args(), evidence, sender=bob)


def test_settle__proof_against_another_models_verifier__proof_rejected(settlement, credit_model, risky_proof,
                                                                       operator, bob, sign, now):
    r = proven_receipt("ezkl-other-model", credit_model, operator.address, now(), risky_proof, bob)
    with reverts(settlement.InferenceSettlementProofRejected, verifier=credit_model.adapter.address):
        settle_proven(settlement, r, sign(r, operator), risky_proof, sender=bob)


def test_settle__own_models_proof__final(settlement, credit_model, credit_proof, operator, bob, sign, now):
    r = proven_receipt("ezkl-credit", credit_model, operator.address, now(), credit_proof, bob)
    settle_proven(settlement, r, sign(r, operator), credit_proof, sender=bob)
    assert status_of(settlement, r) == Status.FINAL


def test_claim_batch_receipt__zkml_leaf__never_batchable(settlement, batches, liquidation_model, risky_proof,
                                                          operator, operator2, bob, sign, now, chain):
    """A batch cannot check a proof, so a ZKML receipt is never recorded from one."""
    r = proven_receipt("ezkl-batched", liquidation_model, operator.address, now(), risky_proof, bob)
    advance(chain, 1)
    batch = ReceiptBatch([SignedReceipt(r, sign(r, operator))])
    batch_id = batches.postBatch(batch.root, 1, "", sender=operator2).events[0].batchId
    with reverts(settlement.InferenceSettlementModeNotBatchable, mode=Mode.ZKML):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=bob)


def test_adapter__instances_split_differently__false(liquidation_model, risky_proof):
    instances = [*risky_proof.inputs, *risky_proof.outputs]
    adapter = liquidation_model.adapter
    assert not adapter.verifyInference(risky_proof.proof, instances[:5], instances[5:])
    assert not adapter.verifyInference(risky_proof.proof, instances[:3], instances[3:])
    assert not adapter.verifyInference(risky_proof.proof, instances[:4], instances[4:5])


def test_adapter__non_canonical_instance__false(liquidation_model, risky_proof):
    """x + p is the same field element as x; accepting it would let one proof match two input hashes."""
    inputs = list(risky_proof.inputs)
    inputs[0] += SNARK_SCALAR_FIELD
    assert not liquidation_model.adapter.verifyInference(risky_proof.proof, inputs, risky_proof.outputs)


def test_adapter__empty_or_truncated_proof__false(liquidation_model, risky_proof):
    for proof in (b"", risky_proof.proof[:-32]):
        assert not liquidation_model.adapter.verifyInference(proof, risky_proof.inputs, risky_proof.outputs)


def test_adapter_constructor__bad_arguments__named_errors(project, liquidation_model, accounts, gov):
    deployer = accounts.generate_test_account()  # never used: ape decodes the revert by the would-be address
    gov.transfer(deployer, 10**18)
    halo2 = liquidation_model.halo2_verifier
    with reverts(project.EzklVerifierAdapter.EzklVerifierAdapterNotAContract, verifier=deployer.address):
        deployer.deploy(project.EzklVerifierAdapter, deployer.address, 4, 2, b"\x01" * 32)
    with reverts(project.EzklVerifierAdapter.EzklVerifierAdapterEmptyLayout, inputCount=0, outputCount=2):
        deployer.deploy(project.EzklVerifierAdapter, halo2, 0, 2, b"\x01" * 32)
    with reverts(project.EzklVerifierAdapter.EzklVerifierAdapterZeroKeyDigest):
        deployer.deploy(project.EzklVerifierAdapter, halo2, 4, 2, b"\x00" * 32)


# ---------------------------------------------------------------- asynchronous path


def post_pending(settlement, r, payer, sign_auth, node):
    """The node posts ``r`` before its proof exists, with ``payer``'s authorization, in a later second than the
    receipt's (a pending result needs a receipt from an earlier second)."""
    advance(chain, 1)
    auth = authorization(r)
    return settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, payer), sender=node)


def test_deliver_proof__real_ezkl_proof__final(settlement, liquidation_model, risky_proof, operator, alice, bob,
                                               sign_auth, now):
    r = proven_receipt("ezkl-async", liquidation_model, operator.address, now(), risky_proof, alice)
    post_pending(settlement, r, alice, sign_auth, operator)
    assert status_of(settlement, r) == Status.PENDING
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.ZKML, True)
    evidence = zkml_proof_evidence(risky_proof.proof, risky_proof.inputs, risky_proof.outputs)
    tx = settlement.deliverProof(r.as_args(), evidence, sender=bob)
    assert status_of(settlement, r) == Status.FINAL
    assert settlement.requireVerifiedReceipt(r.as_args(), Mode.ZKML, True) == tx.timestamp
    assert tx.events.filter(settlement.ProofDelivered)[0].deliveredBy == bob.address


def test_post_pending__by_someone_other_than_the_signer__not_node(settlement, liquidation_model, risky_proof, operator,
                                                                  alice, bob, sign_auth, now):
    r = proven_receipt("ezkl-async-not-node", liquidation_model, operator.address, now(), risky_proof, alice)
    with reverts(settlement.InferenceSettlementNotNode, account=bob.address, node=operator.address):
        post_pending(settlement, r, alice, sign_auth, bob)


def test_deliver_proof__tampered_proof__proof_rejected_still_pending(settlement, liquidation_model, risky_proof,
                                                                      operator, alice, bob, sign_auth, now):
    r = proven_receipt("ezkl-async-tampered", liquidation_model, operator.address, now(), risky_proof, alice)
    post_pending(settlement, r, alice, sign_auth, operator)
    evidence = zkml_proof_evidence(tampered(risky_proof.proof), risky_proof.inputs, risky_proof.outputs)
    with reverts(settlement.InferenceSettlementProofRejected, verifier=liquidation_model.adapter.address):
        settlement.deliverProof(r.as_args(), evidence, sender=bob)
    assert status_of(settlement, r) == Status.PENDING


def test_report_missed_proof__ezkl_model__failed_slashed_refunded(settlement, staking, liquidation_model, risky_proof,
                                                                  operator, alice, reporter, sign_auth, now, chain):
    r = proven_receipt("ezkl-missed", liquidation_model, operator.address, now(), risky_proof, alice, price=PRICE)
    post_pending(settlement, r, alice, sign_auth, operator)
    custody = settlement.custodyOf(alice, r.requestId)
    assert (custody.node, custody.held) == (operator.address, PRICE)
    bond = staking.selfBond(operator)
    escrow = settlement.escrowOf(alice)
    advance(chain, PROOF_WINDOW + 1)
    assert status_of(settlement, r) == Status.FAILED  # overdue reads failed before anyone reports it
    late = zkml_proof_evidence(risky_proof.proof, risky_proof.inputs, risky_proof.outputs)
    with reverts(settlement.InferenceSettlementProofDeadlinePassed, requestId=r.requestId):
        settlement.deliverProof(r.as_args(), late, sender=operator)
    settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    assert status_of(settlement, r) == Status.FAILED
    assert settlement.escrowOf(alice) == escrow + PRICE
    assert staking.selfBond(operator) == bond - bond * settlement.nodeSlashBps() // 10_000
    with reverts(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.deliverProof(r.as_args(), late, sender=operator)


# ---------------------------------------------------------------- putting a model on chain


def test_deploy_model__development_srs_on_a_public_network__refused(liquidation_artifacts, project, models, carol):
    with pytest.raises(ZkmlError, match="development SRS"):
        deploy_model(liquidation_artifacts, project, models, carol, allow_development_srs=False)


def test_deploy_model__run_again_with_its_record__reuses_contracts_and_registration(credit_artifacts, project, models,
                                                                                  carol, tmp_path):
    record = tmp_path / "zkml.json"
    first = deploy_model(credit_artifacts, project, models, carol, record_path=record, price=5)
    again = deploy_model(credit_artifacts, project, models, carol, record_path=record, price=5)
    assert first.newly_registered and not again.newly_registered
    assert (again.halo2_verifier.address, again.adapter.address) == (first.halo2_verifier.address,
                                                                     first.adapter.address)
    assert again.model_id == first.model_id and models.model(first.model_id).price == 5


# ---------------------------------------------------------------- is the registered verifier the one for this key?


def checks_of(artifacts, project, models, model_id):
    return {check.name: check.ok for check in check_registration(artifacts, project, models, model_id)}


def register_with(models, artifacts, verifier, owner):
    tx = models.register(model_spec(artifacts, verifier, uri="opg://forged"), sender=owner)
    return tx.events.filter(models.ModelRegistered)[0].modelId


def test_check_registration__deployed_model__every_check_holds(liquidation_artifacts, project, models,
                                                               liquidation_model):
    checks = checks_of(liquidation_artifacts, project, models, liquidation_model.model_id)
    assert checks == {"content": True, "key digest": True, "adapter": True, "verifier code": True}


def test_check_registration__other_models_artifacts__nothing_matches(credit_artifacts, project, models,
                                                                     liquidation_model):
    checks = checks_of(credit_artifacts, project, models, liquidation_model.model_id)
    assert checks == {"content": False, "key digest": False, "adapter": False, "verifier code": False}


def test_check_registration__adapter_over_another_models_verifier__verifier_code_fails(
        liquidation_artifacts, project, models, credit_model, deployer, bob):
    adapter = deployer.deploy(project.EzklVerifierAdapter, credit_model.halo2_verifier, 4, 2,
                              liquidation_artifacts.vk_digest)
    forged = register_with(models, liquidation_artifacts, adapter.address, bob)
    checks = checks_of(liquidation_artifacts, project, models, forged)
    assert checks == {"content": True, "key digest": True, "adapter": True, "verifier code": False}


def test_check_registration__not_an_ezkl_adapter__adapter_fails(liquidation_artifacts, project, models, zk_verifier,
                                                                bob):
    forged = register_with(models, liquidation_artifacts, zk_verifier.address, bob)
    checks = checks_of(liquidation_artifacts, project, models, forged)
    assert checks == {"content": True, "key digest": True, "adapter": False}
