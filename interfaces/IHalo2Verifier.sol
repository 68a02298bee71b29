// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Halo2 verifier, as EZKL generates it
/// @notice EZKL writes one verifier contract per verifying key. It returns true for a valid proof and
/// reverts (with no data) for an invalid one, a wrong number of instances, or an instance that is not a
/// canonical field element.
/// @dev The generated function is not marked `view`, but it only reads calldata and calls precompiles, so it
/// runs under STATICCALL; declaring it `view` here lets a `view` adapter call it.
interface IHalo2Verifier {
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external view returns (bool);
}
