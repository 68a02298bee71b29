"""Consumer API and the example risk-gated vault: act on an answer only at the required mode and finality, in
the vault owner's namespace. The vault's owner (`gov`) opens applications, so it is the payer of their
assessments and the only one who can consent to their records."""

import pytest
from eth_abi import encode
from eth_utils import keccak

from opgkit.manifest import OutputManifest
from opgkit.receipts import Status
from opgkit.testing import advance, reverts
from settlement_helpers import OPG, PROOF_WINDOW, Mode, authorization, receipt

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


def assessment(vault, application_id, model_id, signer, timestamp, score, mode=Mode.TEE, payer=None):
    manifest = OutputManifest(text=str(score), usage=USAGE)
    return receipt(f"vault {application_id} {score} {mode}", model_id, signer, timestamp, mode=mode,
                   output_hash=manifest.output_hash(), payer=payer or vault.owner()).with_changes(
        requestId=vault.requestIdOf(application_id), inputHash=vault.inputHashOf(application_id))


@pytest.fixture
def auth_for(sign_auth):
    """The (authorization, signature) arguments by which `payer` lets `node` answer `r`."""

    def make(r, node, payer):
        auth = authorization(r, node=node.address)
        return auth.as_args(), sign_auth(auth, payer)

    return make


def test_score_output_hash__matches_python_manifest(vault):
    for score in (0, 7, 40, 12345678901234567890):
        expected = OutputManifest(text=str(score), usage=USAGE).output_hash()
        assert vault.scoreOutputHash(score, USAGE_JSON) == expected


def test_request_id__bound_to_chain_vault_and_application(vault, application, chain):
    expected = keccak(encode(["uint256", "address", "uint256"], [chain.chain_id, vault.address, application]))
    assert vault.requestIdOf(application) == expected


def test_release__final_tee_low_score__paid(vault, settlement, token, application, tee_model, tee_key, bob, sign,
                                            heartbeat, gov):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=gov)
    before = token.balanceOf(bob)
    vault.release(application, r.as_args(), 12, USAGE_JSON, sender=bob)
    assert token.balanceOf(bob) == before + PAYOUT
    with reverts(vault.RiskGatedVaultClosed, applicationId=application):
        vault.release(application, r.as_args(), 12, USAGE_JSON, sender=bob)


def test_release__score_above_limit__refused(vault, settlement, application, tee_model, tee_key, bob, sign, heartbeat,
                                             gov):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 41)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=gov)
    with reverts(vault.RiskGatedVaultRiskTooHigh, riskScore=41, maximum=MAX_RISK):
        vault.release(application, r.as_args(), 41, USAGE_JSON, sender=bob)


def test_release__claiming_lower_score_than_settled__wrong_output(vault, settlement, application, tee_model, tee_key,
                                                                  bob, sign, heartbeat, gov):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 90)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=gov)
    with reverts(vault.RiskGatedVaultWrongOutput, outputHash=r.outputHash):
        vault.release(application, r.as_args(), 9, USAGE_JSON, sender=bob)


def test_release__vanilla_answer__mode_too_weak(vault, settlement, application, open_model, operator, bob, sign, now,
                                                gov):
    """A VANILLA answer fails a TEE-or-better requirement; the vault also pins its model, so it never gets that far."""
    r = assessment(vault, application, open_model, operator.address, now(), 3, mode=Mode.VANILLA)
    settlement.settle(r.as_args(), sign(r, operator), sender=gov)
    with reverts(settlement.InferenceSettlementModeTooWeak, requestId=r.requestId, mode=Mode.VANILLA, minMode=Mode.TEE):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.TEE, True)
    with reverts(vault.RiskGatedVaultWrongModel, modelId=open_model, expected=vault.modelId()):
        vault.release(application, r.as_args(), 3, USAGE_JSON, sender=bob)


def test_release__answer_still_pending__not_verified(vault, settlement, application, tee_model, tee_key, operator, bob,
                                                     gov, heartbeat, auth_for):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.postPending(r.as_args(), *auth_for(r, operator, gov), sender=operator)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__proof_missed__not_verified(vault, settlement, application, tee_model, tee_key, operator, bob,
                                             gov, heartbeat, chain, auth_for):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.postPending(r.as_args(), *auth_for(r, operator, gov), sender=operator)
    advance(chain, PROOF_WINDOW + 1)
    settlement.reportMissedProof(gov, r.requestId, sender=bob)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__answer_about_other_input__wrong_input(vault, settlement, application, tee_model, tee_key, bob, sign,
                                                        heartbeat, gov):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5).with_changes(inputHash=b"\x09" * 32)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=gov)
    with reverts(vault.RiskGatedVaultWrongInput, inputHash=r.inputHash, expected=vault.inputHashOf(application)):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__receipt_for_other_request__wrong_request(vault, settlement, application, tee_model, tee_key, bob,
                                                           sign, heartbeat, gov):
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5).with_changes(requestId=b"\x08" * 32)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=gov)
    with reverts(vault.RiskGatedVaultWrongRequest, requestId=r.requestId, expected=vault.requestIdOf(application)):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__receipt_differs_from_settled__receipt_mismatch(vault, settlement, application, tee_model, tee_key,
                                                                 bob, sign, heartbeat, gov):
    """The settled record binds the whole receipt: the same request with another signer or price is refused."""
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=gov)
    altered = r.with_changes(timestamp=r.timestamp - 1)
    with reverts(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        vault.release(application, altered.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__unknown_application__named_error(vault, settlement, tee_model, tee_key, bob, heartbeat):
    r = assessment(vault, 77, tee_model, tee_key.address, heartbeat(), 5)
    with reverts(vault.RiskGatedVaultUnknownApplication, applicationId=77):
        vault.release(77, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_require_verified__never_settled__status_none(settlement, open_model, operator, alice, now):
    r = receipt("never", open_model, operator.address, now(), payer=alice.address)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.NONE):
        settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, False)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.settledAt, record.receiptHash) == (Status.NONE, 0, b"\x00" * 24)


def test_release__receipt_in_another_namespace__wrong_requester(vault, settlement, application, tee_model, tee_key,
                                                                 bob, sign, heartbeat, gov):
    """A receipt for the vault's request id recorded in someone else's namespace (here bob's) is refused."""
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5, payer=bob.address)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=bob)
    with reverts(vault.RiskGatedVaultWrongRequester, payer=bob.address, expected=vault.owner()):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)


def test_release__third_party_with_owner_authorization__paid(vault, settlement, token, application, tee_model, tee_key,
                                                             operator, gov, bob, sign, sign_auth, heartbeat):
    """Anyone (here bob) may settle the owner's assessment under the owner's authorization naming the TEE operator."""
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12)
    auth = authorization(r, node=operator.address)
    settlement.settleWithAuthorization(r.as_args(), sign(r, tee_key), auth.as_args(), sign_auth(auth, gov), sender=bob)
    before = token.balanceOf(bob)
    vault.release(application, r.as_args(), 12, USAGE_JSON, sender=bob)
    assert token.balanceOf(bob) == before + PAYOUT


def test_cancel__proof_missed__owner_frees_the_amount(vault, settlement, token, application, tee_model, tee_key,
                                                      operator, gov, bob, heartbeat, chain, auth_for):
    """An assessment that can never complete (its proof was missed) leaves the owner a way out."""
    r = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 5)
    settlement.postPending(r.as_args(), *auth_for(r, operator, gov), sender=operator)
    advance(chain, PROOF_WINDOW + 1)
    committed = vault.committed()
    tx = vault.cancel(application, sender=gov)
    assert tx.events == [vault.Cancelled(application)]
    assert vault.committed() == committed - PAYOUT
    with reverts(vault.RiskGatedVaultClosed, applicationId=application):
        vault.release(application, r.as_args(), 5, USAGE_JSON, sender=bob)
    with reverts(vault.RiskGatedVaultClosed, applicationId=application):
        vault.cancel(application, sender=gov)


def test_cancel__not_owner__reverts(vault, application, bob):
    with reverts(vault.OwnableUnauthorizedAccount, account=bob.address):
        vault.cancel(application, sender=bob)


def test_withdraw__uncommitted_only(vault, token, application, gov, treasury):
    available = token.balanceOf(vault) - vault.committed()
    with reverts(vault.RiskGatedVaultUncommittedBalanceTooLow, available=available, requested=available + 1):
        vault.withdraw(treasury, available + 1, sender=gov)
    before = token.balanceOf(treasury)
    tx = vault.withdraw(treasury, available, sender=gov)
    assert tx.events.filter(vault.Withdrawn) == [vault.Withdrawn(treasury, available)]
    assert token.balanceOf(treasury) == before + available


def test_withdraw__not_owner__reverts(vault, bob):
    with reverts(vault.OwnableUnauthorizedAccount, account=bob.address):
        vault.withdraw(bob, 1, sender=bob)
