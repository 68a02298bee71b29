"""LiquidationGuard: a consumer that liquidates only on a final ZKML proof about the position's own features."""

import ape
import pytest
from ape.utils import ZERO_ADDRESS

from opgkit.receipts import Status, zkml_evidence
from opgkit.zkml.models import RISKY_POSITION, SAFE_POSITION
from settlement_helpers import OPG, zk_receipt

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
def settled(settlement, liquidation_model, operator, sign, now):
    """Settle a ZKML receipt for ``proof`` and return the receipt."""

    def settle(label, proof):
        r = zk_receipt(label, liquidation_model.model_id, operator.address, now(), list(proof.inputs),
                       list(proof.outputs))
        settlement.settle(r.as_args(), zkml_evidence(sign(r, operator), proof.proof, proof.inputs, proof.outputs),
                          sender=operator)
        return r

    return settle


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
    with ape.reverts(guard.LiquidationGuardAlreadyLiquidated, positionId=position):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__proven_safe__risk_below_threshold(guard, open_position, settled, safe_proof, bob):
    position = open_position(SAFE_POSITION)
    r = settled("guard-safe", safe_proof)
    score = safe_proof.outputs[RISK_OUTPUT]
    with ape.reverts(guard.LiquidationGuardRiskBelowThreshold, riskScore=score,
                     threshold=guard.liquidationThreshold()):
        guard.liquidate(position, r.as_args(), safe_proof.outputs, sender=bob)


def test_liquidate__proof_about_other_features__wrong_input(guard, open_position, settled, risky_proof, bob):
    position = open_position(SAFE_POSITION)
    r = settled("guard-other-position", risky_proof)
    with ape.reverts(guard.LiquidationGuardWrongInput, inputHash=r.inputHash):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__features_updated_after_the_proof__wrong_input(guard, open_position, settled, risky_proof,
                                                                  liquidation_artifacts, gov, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-stale", risky_proof)
    guard.updateFeatures(position, liquidation_artifacts.quantize(SAFE_POSITION), sender=gov)
    with ape.reverts(guard.LiquidationGuardWrongInput, inputHash=r.inputHash):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__pending_zkml_result__not_verified(guard, settlement, open_position, liquidation_model,
                                                      risky_proof, operator, now, bob):
    position = open_position(RISKY_POSITION)
    r = zk_receipt("guard-pending", liquidation_model.model_id, operator.address, now(), list(risky_proof.inputs),
                   list(risky_proof.outputs))
    settlement.postPending(r.as_args(), sender=operator)
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.PENDING):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__scores_not_the_proven_ones__wrong_output(guard, open_position, settled, risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-forged-scores", risky_proof)
    forged = [risky_proof.outputs[0] * 2, risky_proof.outputs[1]]
    with ape.reverts(guard.LiquidationGuardWrongOutput, outputHash=r.outputHash):
        guard.liquidate(position, r.as_args(), forged, sender=bob)


def test_liquidate__receipt_of_another_model__wrong_model(guard, settlement, open_position, credit_model,
                                                          risky_proof, operator, now, bob):
    position = open_position(RISKY_POSITION)
    r = zk_receipt("guard-credit", credit_model.model_id, operator.address, now(), list(risky_proof.inputs),
                   list(risky_proof.outputs))
    with ape.reverts(guard.LiquidationGuardWrongModel, modelId=credit_model.model_id):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__unsettled_receipt__not_verified(guard, settlement, open_position, liquidation_model, risky_proof,
                                                    operator, now, bob):
    position = open_position(RISKY_POSITION)
    r = zk_receipt("guard-unsettled", liquidation_model.model_id, operator.address, now(), list(risky_proof.inputs),
                   list(risky_proof.outputs))
    with ape.reverts(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.NONE):
        guard.liquidate(position, r.as_args(), risky_proof.outputs, sender=bob)


def test_liquidate__receipt_altered_after_settlement__receipt_mismatch(guard, settlement, open_position, settled,
                                                                       risky_proof, bob):
    position = open_position(RISKY_POSITION)
    r = settled("guard-altered", risky_proof)
    altered = r.with_changes(price=1)
    with ape.reverts(settlement.InferenceSettlementReceiptMismatch, requestId=r.requestId):
        guard.liquidate(position, altered.as_args(), risky_proof.outputs, sender=bob)


def test_positions__bad_calls__named_errors(guard, gov, alice, bob, liquidation_artifacts):
    features = liquidation_artifacts.quantize(RISKY_POSITION)
    with ape.reverts(guard.LiquidationGuardZeroBorrower):
        guard.openPosition(ZERO_ADDRESS, COLLATERAL, features, sender=gov)
    with ape.reverts(guard.OwnableUnauthorizedAccount, account=bob.address):
        guard.openPosition(alice, COLLATERAL, features, sender=bob)
    with ape.reverts(guard.LiquidationGuardUnknownPosition, positionId=999):
        guard.updateFeatures(999, features, sender=gov)
    with ape.reverts(guard.OwnableUnauthorizedAccount, account=bob.address):
        guard.updateFeatures(1, features, sender=bob)
