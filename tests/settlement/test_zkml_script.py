"""`ape run zkml` and the ZKML receipt audit, run as a model publisher and an auditor run them, on real proofs."""

import json
import subprocess
from dataclasses import replace

import pytest
from ape.utils import ZERO_ADDRESS

from opgkit.testing import advance
from opgkit import PROJECT_ROOT
from opgkit.receipt_verifier import ReceiptDocumentError, ZkmlEvidence, document_json, parse_document, verify_document
from opgkit.receipts import Status, zkml_evidence
from opgkit.zkml.models import SAFE_POSITION
from settlement_helpers import Mode, authorization, zk_receipt

# The zkml script runs against a node over JSON-RPC.
pytestmark = [pytest.mark.zkml, pytest.mark.anvil_only]


def zkml(*args):
    return subprocess.run(["ape", "run", "zkml", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture
def chain_uri(networks):
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the script runs as its own process against the test's anvil")
    return networks.provider.uri


@pytest.fixture
def proof_document(risky_proof, tmp_path):
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(risky_proof.to_json()))
    return path


def test_setup__cached_model__reports_artifacts_and_the_development_srs_warning(liquidation_artifacts):
    result = zkml("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(reused)" in result.stdout
    assert "WARNING: development SRS" in result.stdout and "NOT FOR PRODUCTION" in result.stdout
    assert f"keccak256 0x{liquidation_artifacts.vk_digest.hex()}" in result.stdout


def test_prove__features__prints_instances_and_hashes_and_writes_the_document(liquidation_artifacts, tmp_path):
    out = tmp_path / "safe.json"
    result = zkml("prove", *map(str, SAFE_POSITION), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    assert f"outputHash       {document['outputHash']}" in result.stdout
    assert "checked off chain" in result.stdout
    assert [int(value) for value in document["inputs"]] == list(liquidation_artifacts.quantize(SAFE_POSITION))


def test_prove__wrong_feature_count__exit_2_without_traceback():
    result = zkml("prove", "0.5")
    assert result.returncode == 2
    assert "takes 4 features" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("features, complaint", [
    (("1.5", "0.5", "0.5", "0.5"), "loan_to_value must be in [0, 1], got 1.5"),
    (("0.5", "-1", "0.5", "0.5"), "price_volatility must be in [0, 1], got -1"),
    (("0.5", "0.5", "1e30", "0.5"), "utilization must be in [0, 1], got 1e30"),
    (("0.5", "0.5", "0.5", "nan"), "collateral_liquidity must be a finite number in [0, 1], got nan"),
    (("inf", "0.5", "0.5", "0.5"), "loan_to_value must be a finite number in [0, 1], got inf"),
    (("0.5", "-inf", "0.5", "0.5"), "price_volatility must be a finite number in [0, 1], got -inf"),
    (("0.5", "0.5", "high", "0.5"), "utilization must be a number in [0, 1], got 'high'"),
    (("0.5",) * 5, "liquidation_risk takes 4 features (loan_to_value, price_volatility, utilization, "
                   "collateral_liquidity), each in [0, 1]; got 5"),
])
def test_prove__features_not_finite_numbers_in_range__one_line_error_exit_2(features, complaint):
    """NaN and infinities used to crash witness generation with a traceback, as did values far out of range;
    values just out of range were proved although the model is only calibrated over [0, 1]."""
    result = zkml("prove", *features)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"error: {complaint}"]
    assert result.stdout == ""


def test_deploy__run_twice__registers_once_and_reuses_the_contracts(chain_uri, models, tmp_path):
    command = ["deploy", "--network", chain_uri, "--account", "TEST::0", "--registry", models.address,
               "--model", "credit_limit", "--record", str(tmp_path / "zkml.json")]
    first, second = zkml(*command), zkml(*command)
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(registered)" in first.stdout and "(already registered)" in second.stdout
    adapter = next(line for line in first.stdout.splitlines() if line.startswith("adapter"))
    assert adapter in second.stdout
    model_id = next(line for line in first.stdout.splitlines() if line.startswith("model id")).split()[2]
    assert models.model(model_id).zkVerifier == adapter.split()[1]


def test_verify__real_proof__holds_exit_0(chain_uri, models, liquidation_model, proof_document):
    result = zkml("verify", str(proof_document), "--model-id", "0x" + liquidation_model.model_id.hex(),
                  "--registry", models.address, "--network", chain_uri)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "proof holds" in result.stdout


def test_verify__tampered_proof__rejected_exit_1(chain_uri, models, liquidation_model, risky_proof, tmp_path):
    document = risky_proof.to_json()
    document["outputs"] = [str(int(document["outputs"][0]) + 1), document["outputs"][1]]
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(document))
    result = zkml("verify", str(path), "--model-id", "0x" + liquidation_model.model_id.hex(),
                  "--registry", models.address, "--network", chain_uri)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "proof REJECTED" in result.stdout


@pytest.mark.parametrize("model_id, message", [
    ("0x" + "ab" * 32, "is not registered"),
    ("0x1234", "must be 0x followed by 64 hex digits"),
])
def test_verify__bad_model_id__exit_2(chain_uri, models, proof_document, model_id, message):
    result = zkml("verify", str(proof_document), "--model-id", model_id, "--registry", models.address,
                  "--network", chain_uri)
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- auditing a ZKML receipt (`ape run receipts verify`)


@pytest.fixture
def settled_zkml(settlement, liquidation_model, risky_proof, operator, bob, sign, now):
    r = zk_receipt("audit zkml", liquidation_model.model_id, operator.address, now(), list(risky_proof.inputs),
                   list(risky_proof.outputs), payer=bob.address)
    signature = sign(r, operator)
    settlement.settle(r.as_args(), zkml_evidence(signature, risky_proof.proof, risky_proof.inputs,
                                                 risky_proof.outputs), sender=bob)
    evidence = ZkmlEvidence(risky_proof.proof, risky_proof.inputs, risky_proof.outputs)
    return r, signature, evidence


def audit(settlement, models, tees, staking, document):
    return verify_document(settlement, tees, staking, models, parse_document(document))


def test_audit__zkml_receipt_with_its_proof__proof_checked_by_the_registered_verifier(settlement, models, tees,
                                                                                      staking, settled_zkml):
    r, signature, evidence = settled_zkml
    report = audit(settlement, models, tees, staking, document_json(r, signature, zkml=evidence))
    checks = {check.name: check for check in report.checks}
    assert report.passed and checks["proof"].ok, checks
    assert "accepts the proof" in checks["proof"].detail
    assert report.verified and report.mode == Mode.ZKML
    assert report.covers()[0].startswith("a proof, checked by the model's registered verifier")


def test_audit__pending_zkml_result__mode_claimed_not_verified(settlement, models, tees, staking, liquidation_model,
                                                              risky_proof, operator, bob, sign, sign_auth, now, chain):
    r = zk_receipt("audit zkml pending", liquidation_model.model_id, operator.address, now(),
                   list(risky_proof.inputs), list(risky_proof.outputs), payer=bob.address)
    auth = authorization(r)
    advance(chain, 1)  # a pending result needs a receipt from an earlier second
    settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, bob), sender=operator)
    evidence = ZkmlEvidence(risky_proof.proof, risky_proof.inputs, risky_proof.outputs)
    report = audit(settlement, models, tees, staking, document_json(r, sign(r, operator), zkml=evidence))
    settled = next(check for check in report.checks if check.name == "settlement")
    assert report.status == Status.PENDING and settled.ok is None and "owes the ZKML evidence" in settled.detail
    assert report.passed and not report.verified and (report.mode, report.claimed_mode) == (None, Mode.ZKML)


@pytest.mark.parametrize("change, expected", [
    (lambda e: replace(e, outputs=(e.outputs[0] + 1, *e.outputs[1:])), "do not hash to the receipt's outputHash"),
    (lambda e: replace(e, proof=e.proof[:100] + bytes([e.proof[100] ^ 1]) + e.proof[101:]), "rejects the proof"),
])
def test_audit__zkml_proof_altered__proof_check_fails(settlement, models, tees, staking, settled_zkml, change,
                                                      expected):
    r, signature, evidence = settled_zkml
    report = audit(settlement, models, tees, staking, document_json(r, signature, zkml=change(evidence)))
    proof_check = next(check for check in report.checks if check.name == "proof")
    assert proof_check.ok is False and expected in proof_check.detail
    assert not report.passed


def test_audit__zkml_receipt_without_proof__not_checked_and_said_so(settlement, models, tees, staking, settled_zkml):
    r, signature, _ = settled_zkml
    report = audit(settlement, models, tees, staking, document_json(r, signature))
    proof_check = next(check for check in report.checks if check.name == "proof")
    assert proof_check.ok is None and "no zkml proof" in proof_check.detail


def test_receipts_verify__zkml_document__exit_0_with_the_proof_check(chain_uri, settlement, settled_zkml, tmp_path):
    r, signature, evidence = settled_zkml
    path = tmp_path / "zkml-receipt.json"
    path.write_text(json.dumps(document_json(r, signature, zkml=evidence)))
    result = subprocess.run(["ape", "run", "receipts", "verify", str(path), "--network", chain_uri, "--settlement",
                             settlement.address], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   proof" in result.stdout and "result        verified" in result.stdout
    assert "mode          ZKML (verified on chain)" in result.stdout


def test_parse_document__malformed_zkml_section__document_error():
    base = {"receipt": {"requestId": "0x" + "11" * 32, "modelId": "0x" + "22" * 32, "inputHash": "0x" + "33" * 32,
                        "outputHash": "0x" + "44" * 32, "mode": "ZKML", "signer": ZERO_ADDRESS, "timestamp": 1}}
    with pytest.raises(ReceiptDocumentError, match="instance lists"):
        parse_document(base | {"zkml": {"proof": "0x00"}})
    with pytest.raises(ReceiptDocumentError, match="zkml.inputs\\[\\] must be an integer from 0 to 2\\^256-1"):
        parse_document(base | {"zkml": {"proof": "0x00", "inputs": ["x"], "outputs": []}})


def test_check__deployed_model__every_check_ok_exit_0(chain_uri, models, liquidation_model):
    result = zkml("check", "--model-id", "0x" + liquidation_model.model_id.hex(), "--registry", models.address,
                  "--network", chain_uri)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("content", "key digest", "adapter", "verifier code"):
        assert f"ok   {name}" in result.stdout
    assert "this model, this key, this verifier" in result.stdout


def test_check__against_another_models_artifacts__fails_exit_1(chain_uri, models, liquidation_model, credit_artifacts):
    result = zkml("check", "--model-id", "0x" + liquidation_model.model_id.hex(), "--model", "credit_limit",
                  "--registry", models.address, "--network", chain_uri)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL verifier code" in result.stdout and "NOT the local model and key" in result.stdout
