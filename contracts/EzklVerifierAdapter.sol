// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IHalo2Verifier} from "../interfaces/IHalo2Verifier.sol";
import {IZkmlVerifier} from "../interfaces/IZkmlVerifier.sol";

/// @title EZKL verifier adapter
/// @notice Serves `IZkmlVerifier` for one EZKL circuit whose model inputs and outputs are public instances
/// (`input_visibility = output_visibility = public`, parameters fixed). The circuit lays its instances out as
/// `inputs ‖ outputs`; this adapter fixes that split, so a prover cannot move values between the two (which
/// would change the receipt hashes the proof is bound to), and turns the Halo2 verifier's revert on a bad
/// proof into `false`, which settlement reports as a named error.
contract EzklVerifierAdapter is IZkmlVerifier {
    /// @notice The verifier EZKL generated for the circuit's verifying key.
    IHalo2Verifier public immutable halo2Verifier;
    /// @notice How many public instances are model inputs (they come first).
    uint256 public immutable inputCount;
    /// @notice How many public instances are model outputs (they follow the inputs).
    uint256 public immutable outputCount;
    /// @notice keccak-256 of the verifying key file the verifier was generated from (as registered for the model).
    bytes32 public immutable verifyingKeyDigest;

    error EzklVerifierAdapterNotAContract(address verifier);
    error EzklVerifierAdapterEmptyLayout(uint256 inputCount, uint256 outputCount);
    error EzklVerifierAdapterZeroKeyDigest();

    constructor(IHalo2Verifier verifier, uint256 inputCount_, uint256 outputCount_, bytes32 verifyingKeyDigest_) {
        if (address(verifier).code.length == 0) revert EzklVerifierAdapterNotAContract(address(verifier));
        if (inputCount_ == 0 || outputCount_ == 0) revert EzklVerifierAdapterEmptyLayout(inputCount_, outputCount_);
        if (verifyingKeyDigest_ == bytes32(0)) revert EzklVerifierAdapterZeroKeyDigest();
        halo2Verifier = verifier;
        inputCount = inputCount_;
        outputCount = outputCount_;
        verifyingKeyDigest = verifyingKeyDigest_;
    }

    /// @inheritdoc IZkmlVerifier
    /// @dev False for a wrong split, and for anything the Halo2 verifier rejects (it reverts), including
    /// non-canonical field elements, so the same proof cannot be replayed under different instance words.
    function verifyInference(bytes calldata proof, uint256[] calldata inputInstances, uint256[] calldata outputInstances)
        external
        view
        returns (bool)
    {
        if (inputInstances.length != inputCount || outputInstances.length != outputCount) return false;
        uint256[] memory instances = new uint256[](inputCount + outputCount);
        for (uint256 i = 0; i < inputInstances.length; ++i) {
            instances[i] = inputInstances[i];
        }
        for (uint256 j = 0; j < outputInstances.length; ++j) {
            instances[inputCount + j] = outputInstances[j];
        }
        try halo2Verifier.verifyProof(proof, instances) returns (bool valid) {
            return valid;
        } catch {
            return false;
        }
    }
}
