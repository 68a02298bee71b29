"""Consumer API and the example risk-gated vault: act on an answer only at the required mode and finality."""

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak

from opgkit.manifest import OutputManifest
from opgkit.receipts import Status
from opgkit.testing import advance
from settlement_helpers import OPG, PROOF_WINDOW, Mode, receipt

MAX_RISK = 40
PAYOUT = 1_000 * OPG
USAGE = {"inputTokens": 812, "outputTokens": 2}
USAGE_JSON = '{"inputTokens":812,"outputTokens":2}'


@pytest.fixture(scope="module")
def vault(project, deployer, settlement, token, tee_model, gov, treasury):
    vault = deployer.deploy(project.RiskGatedVault, settlement, token, tee_model, Mode.TEE, MAX_RISK, gov)
    token.transfer(vault, 10 * PAYOUT, sender=treasury)
    return vault


@pytest.fixture
def application(vault, gov, bob):
    tx = vault.open(bob, PAYOUT, sender=gov)
    return tx.events.filter(vault.ApplicationOpened)[0].applicationId


def assessment(vault, application_id, model_id, signer, timestamp, score, mode=Mode.TEE):
    manifest = OutputManifest(text=str(score), usage=USAGE)
    return receipt(f"vault {application_id} {score} {mode}", model_id, signer, timestamp, mode=mode,
                   output_hash=manifest.output_hash()).with_changes(
        requestId=vault.requestIdOf(application_id), inputHash=vault.inputHashOf(application_id))


def test_score_output_hash__matches_python_manifest(vault):
    for score in (0, 7, 40, 12345678901234567890):
        expected = OutputManifest(text=str(score), usage=USAGE).output_hash()
        assert vault.scoreOutputHash(score, USAGE_JSON) == expected


def test_request_id__bound_to_chain_vault_and_application(vault, application, chain):
    expected = keccak(encode(["uint256", "address", "uint256"], [chain.chain_id, vault.address, application]))
    assert vault.requestIdOf(application) == expected


def test_release__final_tee_low_score__paid(vault, settlement, token, application, tee_model, tee_key, bob, sign,
                                            heartbeat):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    before = token.balanceOf(bob)
    vault.release(application, r.as_args(), 12, USAGE_JSON, sender=bob)
    assert token.balanceOf(bob) == before + PAYOUT
    with ape.reverts(vault.RiskGatedVaultAlreadyReleased, applicationId=application):
        vault.release(application, r.as_args(), 12, USAGE_JSON, sender=bob)


def test_release__score_above_limit__refused(vault, settlement, application, tee_model, tee_key, bob, sign, heartbeat):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 41)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    with ape.reverts(vault.RiskGatedVaultRiskTooHigh, riskScore=41, maximum=MAX_RISK):
        vault.release(application, r.as_args(), 41, USAGE_JSON, sender=bob)


def test_release__claiming_lower_score_than_settled__wrong_output(vault, settlement, application, tee_model, tee_key,
                                                                  bob, sign, heartbeat):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 90)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    with ape.reverts(vault.RiskGatedVaultWrongOutput, outputHash=r.outputHash):
        vault.release(application, r.as_args(), 9, USAGE_JSON, sender=bob)


def test_release__vanilla_answer__mode_too_weak(vault, settlement, application, open_model, operator, bob, sign, now):
    """A VANILLA answer fails a TEE-or-better requirement; the vault also pins its model, so it never gets that far."""
    r = assessment(vault, application, open_model, operator.address, now(), 3, mode=Mode.VANILLA)
    settlement.settle(r.as_args(), sign(r, operator), sender=bob)
    with ape.reverts(settlement.InferenceSettlementModeTooWeak, requestId=r.requestId, mode=Mode.VANILLA, minMode=Mode.TEE):
        settlement.requireVerified(r.requestId, Mode.TEE, True)
    with ape.reverts(vault.RiskGatedVaultWrongModel, modelId=open_model, expected=vault.modelId()):
        vault.release(application, r.as_args(), 3, USAGE_JSON, sender=bob)


def test_release__answer_still_pending__not_verified(vault, settlement, application, tee_model, tee_key, operator, bob,
                                                     heartbeat):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.postPending(r.as_args(), sender=operator)
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__proof_missed__not_verified(vault, settlement, application, tee_model, tee_key, operator, bob,
                                             heartbeat, chain):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.postPending(r.as_args(), sender=operator)
    advance(chain, PROOF_WINDOW + 1)
    settlement.reportMissedProof(r.requestId, sender=bob)
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__answer_about_other_input__wrong_input(vault, settlement, application, tee_model, tee_key, bob, sign,
                                                        heartbeat):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5).with_changes(inputHash=b"\x09" * 32)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    with ape.reverts(vault.RiskGatedVaultWrongInput, inputHash=r.inputHash, expected=vault.inputHashOf(application)):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__receipt_for_other_request__wrong_request(vault, settlement, application, tee_model, tee_key, bob,
                                                           sign, heartbeat):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5).with_changes(requestId=b"\x08" * 32)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    with ape.reverts(vault.RiskGatedVaultWrongRequest, requestId=r.requestId, expected=vault.requestIdOf(application)):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__receipt_differs_from_settled__receipt_mismatch(vault, settlement, application, tee_model, tee_key,
                                                                 bob, sign, heartbeat):
    """The settled record binds the whole receipt: the same request with another signer or price is refused."""
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    altered = r.with_changes(timestamp=r.timestamp - 1)
    with ape.reverts(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        vault.release(application, altered.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__unknown_application__named_error(vault, settlement, tee_model, tee_key, bob, heartbeat):
    r = assessment(vault, 77, tee_model, tee_key.address, heartbeat(), 5)
    with ape.reverts(vault.RiskGatedVaultUnknownApplication, applicationId=77):
        vault.release(77, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_require_verified__never_settled__status_none(settlement):
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=b"\x01" * 32, status=Status.NONE):
        settlement.requireVerified(b"\x01" * 32, Mode.VANILLA, False)
    out = settlement.verifiedOutput(b"\x01" * 32)
    assert (out.outputHash, out.status, out.settledAt) == (b"\x00" * 32, Status.NONE, 0)
