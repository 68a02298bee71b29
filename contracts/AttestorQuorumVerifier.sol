// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {IAttestationVerifier} from "../interfaces/IAttestationVerifier.sol";

/// @title Attestor quorum verifier
/// @notice Accepts an attestation statement when at least `threshold` of the governance-registered
/// attestation services signed it as EIP-712 typed data under this contract's domain. Each attestation
/// service checks the enclave's hardware attestation off chain and signs only what it verified.
/// @dev Evidence is `abi.encode(address[] signers, bytes[] signatures)` with signers strictly ascending, so
/// each attestor counts once. Signatures are checked with OpenZeppelin's SignatureChecker, so an attestor
/// may be an EOA or an ERC-1271 contract (a multisig, say).
contract AttestorQuorumVerifier is IAttestationVerifier, AccessControl, EIP712 {
    using EnumerableSet for EnumerableSet.AddressSet;

    bytes32 public constant ATTESTATION_TYPEHASH = keccak256(
        "Attestation(address operator,address teeKey,uint8 teeType,bytes32 measurement,bytes32 tlsCertHash,"
        "address paymentAddress,bytes32 endpointHash,uint256 chainId,address registry,uint256 nonce,uint64 expiry)"
    );

    EnumerableSet.AddressSet private _attestors;
    /// @notice How many distinct attestors must sign a statement.
    uint256 public threshold;

    event AttestorAdded(address indexed attestor);
    event AttestorRemoved(address indexed attestor);
    event ThresholdSet(uint256 previous, uint256 current);

    error AttestorQuorumZeroAddress();
    error AttestorQuorumAlreadyAttestor(address attestor);
    error AttestorQuorumNotAttestor(address attestor);
    error AttestorQuorumInvalidThreshold(uint256 threshold, uint256 attestors);

    /// @param admin Manages attestors and the threshold (governance: the timelock in production).
    /// @param attestors The initial attestation services.
    /// @param threshold_ How many of them must sign; 1 ≤ threshold ≤ number of attestors.
    constructor(address admin, address[] memory attestors, uint256 threshold_) EIP712("OPG Attestor Quorum", "1") {
        if (admin == address(0)) revert AttestorQuorumZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        for (uint256 i = 0; i < attestors.length; ++i) {
            _addAttestor(attestors[i]);
        }
        _setThreshold(threshold_);
    }

    /// @notice Register an attestation service.
    function addAttestor(address attestor) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _addAttestor(attestor);
    }

    /// @notice Remove an attestation service; the threshold must still be reachable afterwards.
    function removeAttestor(address attestor) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!_attestors.remove(attestor)) revert AttestorQuorumNotAttestor(attestor);
        if (threshold > _attestors.length()) revert AttestorQuorumInvalidThreshold(threshold, _attestors.length());
        emit AttestorRemoved(attestor);
    }

    /// @notice Set how many distinct attestors must sign.
    function setThreshold(uint256 threshold_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setThreshold(threshold_);
    }

    /// @inheritdoc IAttestationVerifier
    function verifyAttestation(AttestationStatement calldata statement, bytes calldata evidence)
        external
        view
        returns (bool)
    {
        (address[] memory signers, bytes[] memory signatures) = abi.decode(evidence, (address[], bytes[]));
        if (signers.length != signatures.length || signers.length < threshold) return false;
        bytes32 digest = attestationDigest(statement);
        address previous = address(0);
        for (uint256 i = 0; i < signers.length; ++i) {
            address signer = signers[i];
            if (signer <= previous || !_attestors.contains(signer)) return false;
            if (!SignatureChecker.isValidSignatureNow(signer, digest, signatures[i])) return false;
            previous = signer;
        }
        return true;
    }

    /// @notice The EIP-712 digest attestors sign for `statement`.
    function attestationDigest(AttestationStatement calldata statement) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ATTESTATION_TYPEHASH, statement)));
    }

    /// @notice Whether `account` is a registered attestation service.
    function isAttestor(address account) external view returns (bool) {
        return _attestors.contains(account);
    }

    /// @notice All registered attestation services (a governance-sized set).
    function attestors() external view returns (address[] memory) {
        return _attestors.values();
    }

    function _addAttestor(address attestor) private {
        if (attestor == address(0)) revert AttestorQuorumZeroAddress();
        if (!_attestors.add(attestor)) revert AttestorQuorumAlreadyAttestor(attestor);
        emit AttestorAdded(attestor);
    }

    function _setThreshold(uint256 threshold_) private {
        if (threshold_ == 0 || threshold_ > _attestors.length()) {
            revert AttestorQuorumInvalidThreshold(threshold_, _attestors.length());
        }
        emit ThresholdSet(threshold, threshold_);
        threshold = threshold_;
    }
}
