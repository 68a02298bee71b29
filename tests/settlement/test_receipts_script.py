"""`ape run receipts verify`, run as an auditor runs it, against the test's own anvil."""

import base64
import json
import subprocess

import pytest
from ape.utils import ZERO_ADDRESS

from opgkit import PROJECT_ROOT
from opgkit.manifest import manifest_from_response
from opgkit.receipt_verifier import document_json
from opgkit.receipts import ReceiptBatch, SignedReceipt
from opgkit.testing import advance
from settlement_helpers import CHALLENGE_WINDOW, Mode, receipt

PIXELS = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
RESPONSE = {"text": "The cat sits on the mat.", "images": [PIXELS], "usage": {"inputTokens": 9, "outputTokens": 7}}


def verify(networks, settlement, *args):
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the verifier runs as its own process against the test's anvil")
    return subprocess.run(
        ["ape", "run", "receipts", "verify", *args, "--network", networks.provider.uri, "--settlement",
         settlement.address],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def settled_tee(settlement, open_model, tee_key, bob, sign, heartbeat, tmp_path):
    """A TEE receipt over a text + image answer, settled individually, and its document on disk."""
    output_hash = manifest_from_response(RESPONSE).output_hash()
    r = receipt("script tee", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, output_hash=output_hash)
    signature = sign(r, tee_key)
    settlement.settle(r.as_args(), signature, sender=bob)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(document_json(r, signature, response=RESPONSE)))
    return r, signature, path


def test_verify__settled_tee_receipt__every_check_ok_and_coverage_printed(networks, settlement, settled_tee):
    r, _, path = settled_tee
    result = verify(networks, settlement, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("signature", "output", "signer", "model policy", "settlement"):
        assert f"ok   {name}" in result.stdout
    assert "covers        signed inside an attested enclave" in result.stdout
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


def test_verify__batched_receipt_with_proof__included_and_final(networks, settlement, open_model, operator, operator2,
                                                                sign, now, chain, tmp_path):
    signed = [SignedReceipt(r, sign(r, operator)) for r in
              (receipt(f"script batch {i}", open_model, operator.address, now()) for i in range(3))]
    batch = ReceiptBatch(signed)
    batch_id = settlement.postBatch(batch.root, 3, "", sender=operator2).events[0].batchId
    settlement.claimBatchReceipt(batch_id, batch.leaf(1), (b"\x00" * 32, 0, 0, 0), b"", sender=operator)
    advance(chain, CHALLENGE_WINDOW + 1)
    document = tmp_path / "leaf.json"
    document.write_text(json.dumps(document_json(signed[1].receipt, signed[1].signature)))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps({"batchId": batch_id, "proof": ["0x" + p.hex() for p in batch.tree.proof(1)]}))
    result = verify(networks, settlement, str(document), "--proof", str(proof))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok   batch         included in batch {batch_id}, which is FINAL" in result.stdout
    assert "not covered   no evidence that the node ran this model" in result.stdout


def test_verify__request_id__reports_the_record(networks, settlement, settled_tee):
    r, _, _ = settled_tee
    result = verify(networks, settlement, "0x" + r.requestId.hex())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FINAL, mode TEE" in result.stdout
    unknown = verify(networks, settlement, "0x" + "ab" * 32)
    assert unknown.returncode == 1 and "never settled on this contract" in unknown.stdout


@pytest.mark.parametrize("content, message", [
    ("not json", "is not JSON"),
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


def test_verify__zero_settlement_address__exit_2_with_reason(networks, tmp_path):
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the verifier runs as its own process against the test's anvil")
    result = subprocess.run(
        ["ape", "run", "receipts", "verify", "0x" + "ab" * 32, "--network", networks.provider.uri, "--settlement",
         ZERO_ADDRESS],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "the zero address holds no contract" in result.stderr
