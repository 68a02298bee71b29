// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IZkmlVerifier} from "../interfaces/IZkmlVerifier.sol";

/// @title Re-execution verifier
/// @notice A ZKML verifier for models small enough to recompute on chain: an integer linear layer
/// `outputs[j] = biases[j] + sum_i weights[j * inputCount + i] * inputs[i]`. It checks a claimed inference
/// by recomputing it, so it needs no proof (and accepts none). It serves the same `IZkmlVerifier` interface,
/// binding and failure paths as a SNARK verifier, at a cost that grows with the model.
contract ReexecutionVerifier is IZkmlVerifier {
    /// @notice Inputs and parameters stay below 2^64 so no sum can overflow.
    uint256 public constant MAX_VALUE = type(uint64).max;

    uint256 public immutable inputCount;
    uint256[] private _weights;
    uint256[] private _biases;

    error ReexecutionVerifierShapeMismatch(uint256 weights, uint256 inputCount, uint256 outputCount);
    error ReexecutionVerifierValueTooLarge(uint256 value);

    constructor(uint256[] memory weights, uint256[] memory biases, uint256 inputCount_) {
        if (inputCount_ == 0 || biases.length == 0 || weights.length != inputCount_ * biases.length) {
            revert ReexecutionVerifierShapeMismatch(weights.length, inputCount_, biases.length);
        }
        for (uint256 i = 0; i < weights.length; ++i) {
            if (weights[i] > MAX_VALUE) revert ReexecutionVerifierValueTooLarge(weights[i]);
        }
        for (uint256 j = 0; j < biases.length; ++j) {
            if (biases[j] > MAX_VALUE) revert ReexecutionVerifierValueTooLarge(biases[j]);
        }
        inputCount = inputCount_;
        _weights = weights;
        _biases = biases;
    }

    /// @inheritdoc IZkmlVerifier
    function verifyInference(bytes calldata proof, uint256[] calldata inputs, uint256[] calldata outputs)
        external
        view
        returns (bool)
    {
        if (proof.length != 0 || inputs.length != inputCount || outputs.length != _biases.length) return false;
        for (uint256 i = 0; i < inputs.length; ++i) {
            if (inputs[i] > MAX_VALUE) return false;
        }
        for (uint256 j = 0; j < outputs.length; ++j) {
            if (outputs[j] != evaluate(inputs, j)) return false;
        }
        return true;
    }

    /// @notice Output `j` of the model for `inputs`.
    function evaluate(uint256[] calldata inputs, uint256 j) public view returns (uint256 out) {
        out = _biases[j];
        uint256 row = j * inputCount;
        for (uint256 i = 0; i < inputCount; ++i) {
            out += _weights[row + i] * inputs[i];
        }
    }
}
