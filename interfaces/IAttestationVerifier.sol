// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Attestation verifier interface
/// @notice Judges whether `evidence` proves that an enclave running `statement.measurement` generated
/// `statement.teeKey` and vouches for every other field of the statement.
/// @dev The default implementation is `AttestorQuorumVerifier` (M-of-N attestation services sign the
/// statement). An on-chain AWS Nitro verifier fits behind the same call: `evidence` is the enclave's
/// COSE_Sign1 attestation document, the verifier checks its certificate chain to the AWS Nitro root and
/// its signature, requires PCR0..2 to hash to `measurement`, the document's public key to be `teeKey`, and
/// its `user_data` to equal `keccak256(abi.encode(statement))`, which binds operator, chain, registry,
/// nonce and expiry.
interface IAttestationVerifier {
    /// @notice What an attestation vouches for. Every field is bound, so an observed attestation cannot
    /// be replayed by another operator, on another chain, for another registry, twice, or after expiry.
    struct AttestationStatement {
        address operator;
        address teeKey;
        uint8 teeType;
        bytes32 measurement;
        bytes32 tlsCertHash;
        address paymentAddress;
        bytes32 endpointHash;
        uint256 chainId;
        address registry;
        uint256 nonce;
        uint64 expiry;
    }

    /// @notice True when `evidence` proves `statement`. Returns false (or reverts) otherwise.
    function verifyAttestation(AttestationStatement calldata statement, bytes calldata evidence)
        external
        view
        returns (bool);
}
