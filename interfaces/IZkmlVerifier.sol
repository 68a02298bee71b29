// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ZKML verifier interface
/// @notice What the settlement contract calls to check a ZKML receipt. A model registers one verifier
/// (and the digest of its verifying key); the verifier knows its circuit's public-instance layout.
///
/// Binding scheme: a ZKML receipt commits to `inputHash = keccak256(abi.encode(inputInstances))` and
/// `outputHash = keccak256(abi.encode(outputInstances))`. Settlement checks both hashes before calling the
/// verifier, so a valid proof of any other computation cannot settle the receipt. The verifier checks the
/// proof against `inputInstances ‖ outputInstances` and rejects arrays whose lengths do not match its
/// circuit, so the split between inputs and outputs cannot be chosen by the prover.
interface IZkmlVerifier {
    /// @notice True when `proof` proves the model maps `inputInstances` to `outputInstances`.
    function verifyInference(bytes calldata proof, uint256[] calldata inputInstances, uint256[] calldata outputInstances)
        external
        view
        returns (bool);
}
