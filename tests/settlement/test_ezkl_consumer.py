"""LiquidationGuard: a consumer that liquidates only on a final ZKML proof about the position's own features."""

import ape
import pytest
from ape.utils import ZERO_ADDRESS

from opgkit.receipts import Status, zkml_evidence, zkml_proof_evidence
from opgkit.testing import advance, reverts
from opgkit.zkml.models import RISKY_POSITION, SAFE_POSITION
from settlement_helpers import OPG, PROOF_WINDOW, authorization, zk_receipt

pytestmark = pytest.mark.zkml

COLLATERAL = 1_000 * OPG
RISK_OUTPUT = 0  # liquidation_risk; output 1 is safety_margin


@pytest.fixture(scope="module")
def guard(project, deployer, settlement, token, liquidation_model, liquidation_artifacts, gov, treasury):
    threshold = 2 ** liquidation_artifacts.output_scale  # a risk score of 1.0
    guard = deployer.deploy(project.LiquidationGuard, settlement, token, liquidation_model.model_id, RISK_OUTPUT,
                            threshold, gov)
    token.transfer(gov, 10 * COLLATERAL, sender=treasury)
    token.approve(guard, 10 * COLLATERAL, sender=gov)
    return guard


@pytest.fixture
def open_position(guard, gov, alice, liquidation_artifacts):
    def open_(features):
        tx = guard.openPosition(alice, COLLATERAL, liquidation_artifacts.quantize(features), sender=gov)
        return tx.events.filter(guard.PositionOpened)[0].positionId

    return open_


@pytest.fixture
def proven(liquidation_model, operator, bob, now):
    """A ZKML receipt by ``operator`` for ``proof``, asked for (and settled) by bob."""
    return lambda label, proof, model=liquidation_model: zk_receipt(
        label, model.model_id, operator.address, now(), list(proof.inputs), list(proof.outputs), payer=bob.address)


@pytest.fixture
def settled(settlement, proven, operator, bob, sign):
    """Settle a ZKML receipt for ``proof`` as its payer and return the receipt."""

    def settle(label, proof):
        r = proven(label, proof)
        settlement.settle(r.as_args(), zkml_evidence(sign(r, operator), proof.proof, proof.inputs, proof.outputs),
                          sender=bob)
        return r

    return settle


@pytest.fixture
def posted(settlement, proven, operator, bob, sign_auth, chain):
    """Post a ZKML receipt for ``proof`` as pending (the node, with bob's authorization) and return it."""

    def post(label, proof):
        r = proven(label, proof)
        advance(chain, 1)  # a pending result needs a receipt from an earlier second
        auth = authorization(r)
        settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, bob), sender=operator)
        return r

    return post


def test_quantize__features__equal_the_proven_input_instances(liquidation_artifacts, risky_proof):
    assert liquidation_artifacts.quantize(RISKY_POSITION) == risky_proof.inputs


def test_liquidate__final_zkml_risk_above_threshold__collateral_to_liquidator(guard, token, open_position, settled,
                                                                              risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-risky", risky_proof)
    before = token.balanceOf(bob)
    tx = guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)
    event = tx.events.filter(guard.Liquidated)[0]
    assert (event.positionId, event.liquidator, event.collateral) == (position, bob.address, COLLATERAL)
    assert event.riskScore == risky_proof.outputs[RISK_OUTPUT] >= guard.liquidationThreshold()
    assert token.balanceOf(bob) == before + COLLATERAL
    with reverts(guard.LiquidationGuardAlreadyLiquidated, positionId=position):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__proven_safe__risk_below_threshold(guard, open_position, settled, safe_proof, bob):
    position = open_position(SAFE_POSITION)
    r = settled("guard-safe", safe_proof)
    score = safe_proof.outputs[RISK_OUTPUT]
    with reverts(guard.LiquidationGuardRiskBelowThreshold, riskScore=score,
                     threshold=guard.liquidationThreshold()):
        guard.liquidate(position, r.as_args(), safe_proof.outputs, sender=bob)


def test_liquidate__proof_about_other_features__wrong_input(guard, open_position, settled, risky_proof, bob):
    position = open_position(SAFE_POSITION)
    r = settled("guard-other-position", risky_proof)
    with reverts(guard.LiquidationGuardWrongInput, inputHash=r.inputHash):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__features_updated_after_the_proof__wrong_input(guard, open_position, settled, risky_proof,
                                                                  liquidation_artifacts, gov, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-stale", risky_proof)
    guard.updateFeatures(position, liquidation_artifacts.quantize(SAFE_POSITION), sender=gov)
    with reverts(guard.LiquidationGuardWrongInput, inputHash=r.inputHash):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__pending_zkml_result__not_verified(guard, settlement, open_position, posted, risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = posted("guard-pending", risky_proof)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__proof_delivered_after_pending__liquidated(guard, settlement, open_position, posted, risky_proof,
                                                              bob):
    position = open_position(RISKY_POSITION)
    r = posted("guard-delivered", risky_proof)
    settlement.deliverProof(r.as_args(), zkml_proof_evidence(risky_proof.proof, risky_proof.inputs,
                                                             risky_proof.outputs), sender=bob)
    tx = guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)
    assert tx.events.filter(guard.Liquidated)[0].positionId == position


def test_liquidate__proof_overdue__failed_before_anyone_reports_it(guard, settlement, open_position, posted,
                                                                   risky_proof, bob, chain):
    position = open_position(RISKY_POSITION)
    r = posted("guard-overdue", risky_proof)
    advance(chain, PROOF_WINDOW + 1)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__scores_not_the_proven_ones__wrong_output(guard, open_position, settled, risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-forged-scores", risky_proof)
    forged = [risky_proof.outputs[0] * 2, risky_proof.outputs[1]]
    with reverts(guard.LiquidationGuardWrongOutput, outputHash=r.outputHash):
        guard.liquidate(position, r.as_args(), forged, sender=bob)


def test_liquidate__receipt_of_another_model__wrong_model(guard, open_position, proven, credit_model, risky_proof,
                                                          bob):
    position = open_position(RISKY_POSITION)
    r = proven("guard-credit", risky_proof, model=credit_model)
    with reverts(guard.LiquidationGuardWrongModel, modelId=credit_model.model_id):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__unsettled_receipt__not_verified(guard, settlement, open_position, proven, risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = proven("guard-unsettled", risky_proof)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.NONE):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__receipt_altered_after_settlement__receipt_mismatch(guard, settlement, open_position, settled,
                                                                       risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-altered", risky_proof)
    altered = r.with_changes(price=1)
    with reverts(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        guard.liquidate(position, altered.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__same_request_in_another_payers_namespace__not_verified(guard, settlement, open_position, settled,
                                                                          risky_proof, alice, bob):
    """The record is bob's: the same receipt naming alice as its payer was never settled."""
    position = open_position(RISKY_POSITION)
    r = settled("guard-namespace", risky_proof)
    elsewhere = r.with_changes(payer=alice.address)
    with reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.NONE):
        guard.liquidate(position, elsewhere.as_args(), risky_proof.outputs, sender=bob)


def test_positions__bad_calls__named_errors(guard, gov, alice, bob, liquidation_artifacts):
    features = liquidation_artifacts.quantize(RISKY_POSITION)
    with reverts(guard.LiquidationGuardZeroBorrower):
        guard.openPosition(ZERO_ADDRESS, COLLATERAL, features, sender=gov)
    with reverts(guard.OwnableUnauthorizedAccount, account=bob.address):
        guard.openPosition(alice, COLLATERAL, features, sender=bob)
    with reverts(guard.LiquidationGuardUnknownPosition, positionId=999):
        guard.updateFeatures(999, features, sender=gov)
    with reverts(guard.OwnableUnauthorizedAccount, account=bob.address):
        guard.updateFeatures(1, features, sender=bob)
