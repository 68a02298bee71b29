"""`ape run demo`, the README's main command: its own anvil, the whole story, a readable report."""

import os
import shutil
import signal
import subprocess

import pytest

from opgkit import PROJECT_ROOT

# What the compiler and EZKL print on their own: the verifier's compiler listing, EZKL's fidelity table.
COMPILER_LISTING = ("Compiling using Solidity compiler", "contracts/Halo2Verifier.sol")
EZKL_DIAGNOSTICS = ("Numerical Fidelity Report", "mean_abs_error")


@pytest.fixture
def fresh_zkml_cache(tmp_path):
    """An empty EZKL cache, so the demo builds its keys and compiles its verifier (and says so in its log)."""
    cache = tmp_path / "zkml"
    yield cache
    shutil.rmtree(cache, ignore_errors=True)  # the proving key alone is over 100 MB


def test_demo__local_chain__runs_every_chapter_and_reports(tmp_path, fresh_zkml_cache):
    log = tmp_path / "demo.log"
    result = subprocess.run(["ape", "run", "demo", "--network", "ethereum:local:foundry", "--log", str(log)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                            env=os.environ | {"OPG_ZKML_CACHE": str(fresh_zkml_cache)})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for line in (
        "wiring verified: the timelock is the only admin; settlement and batches may slash",
        "BatchSettlement",
        "proposal passed with 100,000 OPG for",
        "active now: True",
        "the payer's authorization names the TEE's operator",
        "status FINAL, mode TEE, settled in one transaction",
        "2 OPG paid from escrow: node 1.3 OPG, model owner 0.4 OPG",
        "relayer (ape run relayer): bad_signature: the signature does not recover to the receipt's signer",
        "relayer (ape run relayer): batch 1 is #1 on chain: 3 receipts",
        "watchtower (ape run watchtower): batch 1: all 3 leaves valid",
        "watchtower (ape run watchtower): batch 2: leaf 2",
        "challenge proved BAD_SIGNATURE: batch 2 is REJECTED",
        "keeper (ape run keeper): operator 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC: pending slash applied",
        "is REJECTED",
        "relayer slashed 10,000 OPG and jailed",
        "challenger rewarded 1,000 OPG",
        "is refused: BatchSettlementBatchRejected",
        "a document of a patched image is refused by the attestor's checks: MEASUREMENT",
        "(ape run attestor sign): COSE ES384 signature, chain to the root, PCRs, binding and the approved",
        "node (ape run tee register): quorum of 1 gathered, registerTee sent",
        "release refused: InferenceSettlementNotVerified",
        "released 500 OPG",
        "under the owner's authorization: refused: InferenceSettlementAuthorizationMismatch",
        "without the authorization: refused: InferenceSettlementNotPayer",
        "the owner's request is still NONE",
        "application 2 released 200 OPG",
        "liquidation refused: LiquidationGuardRiskBelowThreshold",
        "as PENDING first, under the liquidator's authorization; liquidation refused: InferenceSettlementNotVerified",
        "verified on chain",
        "position liquidated, 300 OPG to the liquidator",
        "ok   output        the response (text, 1 image(s)",
        "not covered: trust in the enclave vendor",
        "FeeChangeScheduled       protocolFeePercent=8%",
        "ALERT: protocol fee 8% is above 7%",
        "done: every step above ran on chain",
    ):
        assert line in out, line
    assert "FAIL" not in out and "Traceback" not in out + result.stderr
    assert "EZKL keys built in" in out  # so the compiler and EZKL did have something to say
    assert f"details: {log}" in out.splitlines()[:3]
    details = log.read_text()
    for noise in COMPILER_LISTING + EZKL_DIAGNOSTICS:
        assert noise not in out + result.stderr, noise
        assert noise in details, noise


def _anvil_count() -> int:
    result = subprocess.run(["pgrep", "-c", "-x", "anvil"], capture_output=True, text=True)
    return int(result.stdout.strip() or 0)


def test_demo__interrupted__exits_130_and_stops_its_anvil():
    before = _anvil_count()
    process = subprocess.Popen(["ape", "run", "demo", "--network", "ethereum:local:foundry"], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        if line.startswith("2. "):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert _anvil_count() == before
