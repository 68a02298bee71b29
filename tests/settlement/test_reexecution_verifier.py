"""ReexecutionVerifier on its own: the model's shape and value bounds at deployment, and which claimed
inferences it accepts (only W x + b, recomputed on chain, with no proof bytes)."""

import ape
import pytest

from settlement_helpers import ZK_BIASES, ZK_INPUT_COUNT, ZK_WEIGHTS, zk_outputs

MAX_VALUE = 2**64 - 1
INPUTS = [4, 1, 9]


@pytest.fixture(scope="module")
def verifier(project, alice):
    # Not the deployer: ape remembers a contract type per address, and a later module's failing deployment from the
    # deployer at the same nonce would have its revert decoded with this contract's ABI.
    return alice.deploy(project.ReexecutionVerifier, ZK_WEIGHTS, ZK_BIASES, ZK_INPUT_COUNT)


@pytest.mark.parametrize(
    "weights, biases, input_count",
    [
        (ZK_WEIGHTS, ZK_BIASES, 0),  # no inputs
        ([], [], ZK_INPUT_COUNT),  # no outputs
        (ZK_WEIGHTS[:-1], ZK_BIASES, ZK_INPUT_COUNT),  # one weight short of inputs x outputs
    ],
)
def test_deploy__shape_mismatch__reverts(project, alice, weights, biases, input_count):
    with ape.reverts(project.ReexecutionVerifier.ReexecutionVerifierShapeMismatch, weights=len(weights),
                     inputCount=input_count, outputCount=len(biases)):
        alice.deploy(project.ReexecutionVerifier, weights, biases, input_count)


@pytest.mark.parametrize("where", ["weights", "biases"])
def test_deploy__value_above_uint64__reverts(project, alice, where):
    weights, biases = list(ZK_WEIGHTS), list(ZK_BIASES)
    (weights if where == "weights" else biases)[1] = MAX_VALUE + 1
    with ape.reverts(project.ReexecutionVerifier.ReexecutionVerifierValueTooLarge, value=MAX_VALUE + 1):
        alice.deploy(project.ReexecutionVerifier, weights, biases, ZK_INPUT_COUNT)


def test_verify__recomputed_outputs__accepted(verifier):
    outputs = zk_outputs(INPUTS)
    assert [verifier.evaluate(INPUTS, j) for j in range(len(ZK_BIASES))] == outputs
    assert verifier.verifyInference(b"", INPUTS, outputs)


def test_verify__largest_values__do_not_overflow(verifier):
    inputs = [MAX_VALUE] * ZK_INPUT_COUNT
    assert verifier.verifyInference(b"", inputs, zk_outputs(inputs))


@pytest.mark.parametrize(
    "proof, inputs, outputs",
    [
        (b"\x01", INPUTS, zk_outputs(INPUTS)),  # re-execution takes no proof bytes
        (b"", INPUTS[:2], zk_outputs(INPUTS)),  # too few inputs
        (b"", INPUTS, zk_outputs(INPUTS)[:1]),  # too few outputs
        (b"", [MAX_VALUE + 1, 0, 0], zk_outputs([MAX_VALUE + 1, 0, 0])),  # input above the bound
        (b"", INPUTS, [zk_outputs(INPUTS)[0], zk_outputs(INPUTS)[1] + 1]),  # a wrong output
    ],
)
def test_verify__malformed_or_wrong_claim__rejected(verifier, proof, inputs, outputs):
    assert not verifier.verifyInference(proof, inputs, outputs)
