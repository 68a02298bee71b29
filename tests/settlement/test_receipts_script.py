"""`ape run receipts verify`, run as an auditor runs it against the test's own anvil, and the checks behind it."""

import base64
import json
import subprocess

import pytest
from ape.utils import ZERO_ADDRESS

from opgkit import PROJECT_ROOT
from opgkit.manifest import manifest_from_response
from opgkit.receipt_verifier import ReceiptDocument, document_json, recorded_hash, verify_document, verify_request
from opgkit.receipts import NO_AUTHORIZATION, ReceiptBatch, SignedReceipt, Status
from opgkit.testing import advance
from settlement_helpers import reverts_exactly
from settlement_helpers import CHALLENGE_WINDOW, PROOF_WINDOW, Mode, authorization, receipt

# The receipts script runs against a node over JSON-RPC.
pytestmark = pytest.mark.anvil_only

PIXELS = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
RESPONSE = {"text": "The cat sits on the mat.", "images": [PIXELS], "usage": {"inputTokens": 9, "outputTokens": 7}}


def run_verify(networks, *args):
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the verifier runs as its own process against the test's anvil")
    return subprocess.run(
        ["ape", "run", "receipts", "verify", *args, "--network", networks.provider.uri],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )


def verify(networks, settlement, *args):
    return run_verify(networks, *args, "--settlement", settlement.address)


@pytest.fixture
def settled_tee(settlement, open_model, tee_key, bob, sign, heartbeat, tmp_path):
    """A TEE receipt over a text + image answer, settled individually by its payer, and its document on disk."""
    output_hash = manifest_from_response(RESPONSE).output_hash()
    r = receipt("script tee", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, output_hash=output_hash,
                payer=bob.address)
    signature = sign(r, tee_key)
    settlement.settle(r.as_args(), signature, sender=bob)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(document_json(r, signature, response=RESPONSE)))
    return r, signature, path


@pytest.fixture
def audit(settlement, tees, staking, models):
    """Run the auditor's checks in process."""
    return lambda document, **kwargs: verify_document(settlement, tees, staking, models, document, **kwargs)


def checks_of(report):
    return {check.name: check for check in report.checks}


def test_verify__settled_tee_receipt__every_check_ok_and_coverage_printed(networks, settlement, settled_tee):
    r, _, path = settled_tee
    result = verify(networks, settlement, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("signature", "output", "signer", "model policy", "settlement"):
        assert f"ok   {name}" in result.stdout
    assert f"payer         {r.payer}" in result.stdout
    assert "mode          TEE (verified on chain)" in result.stdout
    assert "FINAL since" in result.stdout and "mode TEE verified" in result.stdout
    assert "covers        signed inside an enclave whose AWS Nitro attestation document the attestors verified" in result.stdout
    assert "not covered   trust in the enclave vendor" in result.stdout
    assert "result        verified" in result.stdout


def test_verify__image_changed_after_signing__output_fails_exit_1(networks, settlement, settled_tee, tmp_path):
    r, signature, _ = settled_tee
    tampered = dict(RESPONSE, images=["data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(1, 65))).decode()])
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(document_json(r, signature, response=tampered)))
    result = verify(networks, settlement, str(path))
    assert result.returncode == 1
    assert "FAIL output" in result.stdout and "something was changed after signing" in result.stdout
    assert "result        NOT verified" in result.stdout


def test_verify__batched_receipt_with_proof__included_and_final(networks, settlement, batches, open_model, operator,
                                                                operator2, alice, sign, now, chain, tmp_path):
    signed = [SignedReceipt(r, sign(r, operator)) for r in
              (receipt(f"script batch {i}", open_model, operator.address, now(), payer=alice.address)
               for i in range(3))]
    advance(chain, 1)  # a leaf must be older than its batch
    batch = ReceiptBatch(signed)
    batch_id = batches.postBatch(batch.root, 3, "", sender=operator2).events[0].batchId
    batches.claimBatchReceipt(batch_id, batch.leaf(1), NO_AUTHORIZATION, b"", sender=alice)
    advance(chain, CHALLENGE_WINDOW + 1)
    document = tmp_path / "leaf.json"
    document.write_text(json.dumps(document_json(signed[1].receipt, signed[1].signature)))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps({"batchId": batch_id, "proof": ["0x" + p.hex() for p in batch.tree.proof(1)]}))
    result = verify(networks, settlement, str(document), "--proof", str(proof))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok   batch         included in batch {batch_id}, which is FINAL" in result.stdout
    assert "mode          VANILLA (verified on chain)" in result.stdout
    assert "not covered   no evidence that the node ran this model" in result.stdout


def test_verify__request_id_and_payer__reports_the_record(networks, settlement, settled_tee, alice):
    r, _, _ = settled_tee
    result = verify(networks, settlement, "0x" + r.requestId.hex(), "--payer", r.payer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FINAL since" in result.stdout and "mode TEE verified" in result.stdout
    assert f"0x{recorded_hash(settlement, r).hex()}" in result.stdout
    other_namespace = verify(networks, settlement, "0x" + r.requestId.hex(), "--payer", alice.address)
    assert other_namespace.returncode == 1 and "never settled on this contract" in other_namespace.stdout


@pytest.mark.parametrize("args, message", [
    (["0x" + "ab" * 32], "give --payer"),
    (["0x" + "ab" * 32, "--payer", ZERO_ADDRESS], "the zero address pays for no request"),
    (["0x1234"], "neither a 32-byte requestId nor a file"),
])
def test_verify__request_id_without_a_usable_payer__exit_2_without_traceback(networks, settlement, args, message):
    result = verify(networks, settlement, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("content, message", [
    ("not json", "is not valid JSON"),
    ('{"receipt": {"requestId": "0x12"}}', "receipt is missing modelId"),
    ('{"receipt": {"requestId": "0x12", "modelId": "0x00", "inputHash": "0x00", "outputHash": "0x00", "mode": "FAST",'
     ' "signer": "0x0000000000000000000000000000000000000001", "timestamp": 1}}', "receipt.requestId must be 32 bytes"),
])
def test_verify__unreadable_document__exit_2_without_traceback(networks, settlement, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = verify(networks, settlement, str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_verify__zero_settlement_address__exit_2_with_reason(networks):
    result = run_verify(networks, "0x" + "ab" * 32, "--payer", "0x" + "11" * 20, "--settlement", ZERO_ADDRESS)
    assert result.returncode == 2
    assert "the zero address holds no contract" in result.stderr


# ---------------------------------------------------------------- the checks, in process


def test_audit__document_without_payer__no_record_possible(audit, settlement, open_model, operator, sign, now):
    r = receipt("audit no payer", open_model, operator.address, now())
    report = audit(ReceiptDocument(r, sign(r, operator)))
    settled = checks_of(report)["settlement"]
    assert settled.ok is False and "names no payer" in settled.detail
    assert report.mode is None and not report.passed


def test_audit__other_receipt_recorded_under_the_request__mismatch(audit, settled_tee, sign, tee_key):
    r, _, _ = settled_tee
    altered = r.with_changes(outputHash=b"\x07" * 32)
    report = audit(ReceiptDocument(altered, sign(altered, tee_key)))
    settled = checks_of(report)["settlement"]
    assert settled.ok is False and "is of a different receipt" in settled.detail
    assert report.status == Status.FINAL and report.mode is None


def test_audit__unsettled_receipt__not_failed_but_not_verified(audit, open_model, operator, alice, sign, now):
    r = receipt("audit unsettled", open_model, operator.address, now(), payer=alice.address)
    report = audit(ReceiptDocument(r, sign(r, operator)))
    assert checks_of(report)["settlement"].ok is None
    assert report.passed and not report.verified and report.claimed_mode == Mode.VANILLA


def test_audit__async_tee_result__pending_then_overdue_reads_failed_then_reported(
        audit, settlement, open_model, tee_key, operator, alice, bob, sign, sign_auth, heartbeat, chain):
    r = receipt("audit async", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=bob.address)
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, bob), sender=operator)
    document = ReceiptDocument(r, sign(r, tee_key))

    pending = audit(document)
    assert pending.status == Status.PENDING and pending.mode is None and pending.passed and not pending.verified
    assert f"{operator.address} owes the TEE evidence" in checks_of(pending)["settlement"].detail

    advance(chain, PROOF_WINDOW + 1)
    overdue = audit(document)
    settled = checks_of(overdue)["settlement"]
    assert overdue.status == Status.FAILED and settled.ok is False
    assert "reads FAILED at once" in settled.detail and "not reported yet" in settled.detail
    assert verify_request(settlement, bob.address, r.requestId).status == Status.FAILED

    settlement.reportMissedProof(bob.address, r.requestId, sender=alice)
    reported = checks_of(verify_request(settlement, bob.address, r.requestId))["settlement"]
    assert reported.ok is False and "the node was slashed and the payer refunded" in reported.detail


def test_audit__faulty_leaf_in_an_open_batch__batch_check_fails(audit, settlement, batches, open_model, operator,
                                                                 operator2, alice, now, chain):
    r = receipt("audit forged leaf", open_model, operator.address, now(), payer=alice.address)
    forged = SignedReceipt(r, b"\x11" * 65)
    advance(chain, 1)
    batch = ReceiptBatch([forged, SignedReceipt(r.with_changes(requestId=b"\x05" * 32), b"\x12" * 65)])
    batch_id = batches.postBatch(batch.root, 2, "", sender=operator2).events[0].batchId
    with reverts_exactly(batches.BatchSettlementBadSignature, signer=operator.address):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=alice)
    report = audit(ReceiptDocument(r, forged.signature, batch_id, tuple(batch.tree.proof(0))))
    assert report.status == Status.NONE
    checked = checks_of(report)
    assert checked["batch"].ok is False and "faulty (BAD_SIGNATURE): anyone may challenge it" in checked["batch"].detail
    assert checked["signature"].ok is False


def test_audit__leaf_under_another_proof__not_included(audit, settlement, batches, open_model, operator, operator2,
                                                       alice, sign, now, chain):
    signed = [SignedReceipt(r, sign(r, operator)) for r in
              (receipt(f"audit inclusion {i}", open_model, operator.address, now(), payer=alice.address)
               for i in range(2))]
    advance(chain, 1)
    batch = ReceiptBatch(signed)
    batch_id = batches.postBatch(batch.root, 2, "", sender=operator2).events[0].batchId
    report = audit(ReceiptDocument(signed[0].receipt, signed[0].signature, batch_id, tuple(batch.tree.proof(1))))
    assert checks_of(report)["batch"].ok is False and "not included" in checks_of(report)["batch"].detail
    unknown = audit(ReceiptDocument(signed[0].receipt, signed[0].signature, batch_id + 1, ()))
    assert "was never posted" in checks_of(unknown)["batch"].detail
