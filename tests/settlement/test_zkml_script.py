"""`ape run zkml`, run as a model publisher and an auditor run it, against the test's own anvil."""

import json
import subprocess

import pytest

from opgkit import PROJECT_ROOT
from opgkit.zkml.models import SAFE_POSITION

pytestmark = pytest.mark.zkml


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
