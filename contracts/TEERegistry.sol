// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {IAttestationVerifier} from "../interfaces/IAttestationVerifier.sol";
import {INodeStaking} from "../interfaces/INodeStaking.sol";
import {ITEERegistry} from "../interfaces/ITEERegistry.sol";

/// @title TEE registry
/// @notice Registers enclaves of operators staked for the TEE role. A registration carries an attestation
/// statement that commits to the operator (the caller), the enclave's signing key, its measurement, TLS
/// certificate hash, payment address and endpoint, this chain and this registry, a per-operator nonce and
/// an expiry; an `IAttestationVerifier` judges the evidence for it.
///
/// History is kept in checkpoints so `isActive(teeKey, t)` answers for any past `t`: enabled status and
/// heartbeats per TEE, the heartbeat age limit globally. Every checkpoint is keyed by the block time it was
/// written at, so nothing recorded later (a heartbeat relayed late included) changes an answer for an
/// earlier time. Revoking a measurement stores one timestamp, so it is O(1) and deactivates every TEE on it
/// from that moment. A new measurement needs a new key (`reattest` with another key rotates it); the same
/// key can only refresh endpoint, TLS hash and payee.
contract TEERegistry is ITEERegistry, AccessControl, EIP712, Nonces {
    using Checkpoints for Checkpoints.Trace208;
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @notice May revoke measurements and disable TEEs at once, in an emergency.
    bytes32 public constant REVOKER_ROLE = keccak256("REVOKER_ROLE");
    bytes32 public constant HEARTBEAT_TYPEHASH = keccak256("Heartbeat(address teeKey,uint64 timestamp)");
    uint256 public constant MIN_HEARTBEAT_AGE = 1 minutes;
    uint256 public constant MAX_HEARTBEAT_AGE = 1 days;

    INodeStaking public immutable staking;
    IAttestationVerifier public verifier;

    mapping(uint8 teeType => string) public teeTypeName;
    mapping(bytes32 measurementHash => Measurement) private _measurements;
    mapping(address teeKey => Tee) private _tees;
    mapping(address teeKey => Checkpoints.Trace208) private _enabledHistory;
    mapping(address teeKey => Checkpoints.Trace208) private _heartbeats;
    Checkpoints.Trace208 private _maxHeartbeatAge;
    mapping(address operator => EnumerableSet.AddressSet) private _teesByOperator;
    mapping(uint8 teeType => EnumerableSet.AddressSet) private _teesByType;

    error TEERegistryZeroAddress();
    error TEERegistryUnknownTeeType(uint8 teeType);
    error TEERegistryTeeTypeExists(uint8 teeType);
    error TEERegistryZeroMeasurement();
    error TEERegistryMeasurementExists(bytes32 measurementHash);
    error TEERegistryMeasurementNotApproved(bytes32 measurementHash);
    error TEERegistryMeasurementRevoked(bytes32 measurementHash);
    error TEERegistryMeasurementTypeMismatch(bytes32 measurementHash, uint8 teeType);
    error TEERegistryMeasurementChangeNeedsNewKey(address teeKey);
    error TEERegistryNotStatementOperator(address caller, address operator);
    error TEERegistryOperatorNotStaked(address operator);
    error TEERegistryWrongChain(uint256 chainId);
    error TEERegistryWrongRegistry(address registry);
    error TEERegistryAttestationExpired(uint64 expiry);
    error TEERegistryEndpointMismatch(bytes32 endpointHash);
    error TEERegistryAttestationRejected();
    error TEERegistryTeeExists(address teeKey);
    error TEERegistryUnknownTee(address teeKey);
    error TEERegistryRetired(address teeKey);
    error TEERegistryNotTeeOperator(address teeKey, address account);
    error TEERegistryDisabledByAdmin(address teeKey);
    error TEERegistryInvalidHeartbeatSignature(address teeKey);
    error TEERegistryHeartbeatOutOfWindow(uint64 timestamp);
    error TEERegistryHeartbeatNotNewer(uint64 timestamp, uint256 latest);
    error TEERegistryHeartbeatAgeOutOfBounds(uint256 maxAge);

    /// @param staking_ NodeStaking: only active TEE-role operators may register, and stay active.
    /// @param verifier_ Judges attestation evidence (the attestor quorum by default).
    /// @param admin Governance (the timelock in production); also receives the revoker role.
    /// @param maxHeartbeatAge_ Longest gap after a heartbeat during which a TEE counts as alive (1 min–1 day).
    constructor(INodeStaking staking_, IAttestationVerifier verifier_, address admin, uint256 maxHeartbeatAge_)
        EIP712("OPG TEERegistry", "1")
    {
        if (address(staking_) == address(0) || admin == address(0)) revert TEERegistryZeroAddress();
        staking = staking_;
        _setVerifier(verifier_);
        _setMaxHeartbeatAge(maxHeartbeatAge_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REVOKER_ROLE, admin);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Add a TEE type (for example 1 = AWS Nitro, 2 = Intel TDX, 3 = AMD SEV-SNP).
    function addTeeType(uint8 teeType, string calldata name) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bytes(teeTypeName[teeType]).length != 0) revert TEERegistryTeeTypeExists(teeType);
        if (bytes(name).length == 0) revert TEERegistryUnknownTeeType(teeType);
        teeTypeName[teeType] = name;
        emit TeeTypeAdded(teeType, name);
    }

    /// @notice Approve a code measurement for a TEE type, with a version number for humans.
    function approveMeasurement(bytes32 measurementHash, uint8 teeType, uint32 version)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (measurementHash == bytes32(0)) revert TEERegistryZeroMeasurement();
        _requireTeeType(teeType);
        if (_measurements[measurementHash].approvedAt != 0) revert TEERegistryMeasurementExists(measurementHash);
        _measurements[measurementHash] =
            Measurement({teeType: teeType, version: version, approvedAt: _now(), revokedAt: 0});
        emit MeasurementApproved(measurementHash, teeType, version);
    }

    /// @notice Revoke a measurement for good. O(1): every TEE on it is inactive from this moment.
    function revokeMeasurement(bytes32 measurementHash) external onlyRole(REVOKER_ROLE) {
        Measurement storage m = _measurements[measurementHash];
        if (m.approvedAt == 0) revert TEERegistryMeasurementNotApproved(measurementHash);
        if (m.revokedAt != 0) revert TEERegistryMeasurementRevoked(measurementHash);
        m.revokedAt = _now();
        emit MeasurementRevoked(measurementHash);
    }

    /// @notice Replace the attestation verifier. Registered TEEs are not re-judged.
    function setVerifier(IAttestationVerifier verifier_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setVerifier(verifier_);
    }

    /// @notice Set the heartbeat age limit; past answers of `isActive` keep the limit of their time.
    function setMaxHeartbeatAge(uint256 maxAge) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMaxHeartbeatAge(maxAge);
    }

    /// @notice Disable a TEE at once; only an admin can enable it again.
    function adminDisable(address teeKey) external onlyRole(REVOKER_ROLE) {
        Tee storage t = _liveTee(teeKey);
        t.disabledByAdmin = true;
        _setEnabledFlag(teeKey, t, false, true);
    }

    // ---------------------------------------------------------------- operators

    /// @inheritdoc ITEERegistry
    function registerTee(
        IAttestationVerifier.AttestationStatement calldata statement,
        string calldata endpoint,
        bytes calldata evidence
    ) external {
        _checkStatement(statement, endpoint, evidence);
        _create(statement, endpoint);
    }

    /// @notice Refresh a TEE with a fresh attestation. With the same key: new endpoint, TLS hash or payee
    /// (same measurement). With a new key: rotation; the old key retires and the new one takes its place.
    function reattest(
        address currentKey,
        IAttestationVerifier.AttestationStatement calldata statement,
        string calldata endpoint,
        bytes calldata evidence
    ) external {
        Tee storage current = _liveTee(currentKey);
        if (current.operator != msg.sender) revert TEERegistryNotTeeOperator(currentKey, msg.sender);
        _checkStatement(statement, endpoint, evidence);

        if (statement.teeKey == currentKey) {
            if (statement.measurement != current.measurement) revert TEERegistryMeasurementChangeNeedsNewKey(currentKey);
            current.tlsCertHash = statement.tlsCertHash;
            current.paymentAddress = statement.paymentAddress;
            current.endpoint = endpoint;
            _heartbeats[currentKey].push(_now(), _now());
            emit TeeUpdated(currentKey, statement.tlsCertHash, statement.paymentAddress, endpoint);
            return;
        }
        current.retiredAt = _now();
        _enabledHistory[currentKey].push(_now(), 0);
        _teesByOperator[msg.sender].remove(currentKey);
        _teesByType[current.teeType].remove(currentKey);
        _create(statement, endpoint);
        emit TeeKeyRotated(currentKey, statement.teeKey, msg.sender);
    }

    /// @notice Record a heartbeat the TEE key signed (EIP-712 `Heartbeat(teeKey, timestamp)`). Anyone may
    /// relay it; its signed `timestamp` must be newer than the last one and no older than the heartbeat age
    /// limit. It counts from the block that records it, never before: it is checkpointed at `block.timestamp`
    /// with `timestamp` as its value, so a heartbeat relayed late cannot make the TEE active at a time that
    /// has already passed, and the age limit still runs from `timestamp` (when the enclave was seen alive).
    function heartbeat(address teeKey, uint64 timestamp, bytes calldata signature) external {
        _liveTee(teeKey);
        if (timestamp > block.timestamp || block.timestamp - timestamp > _maxHeartbeatAge.latest()) {
            revert TEERegistryHeartbeatOutOfWindow(timestamp);
        }
        uint256 latest = _heartbeats[teeKey].latest();
        if (timestamp <= latest) revert TEERegistryHeartbeatNotNewer(timestamp, latest);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(HEARTBEAT_TYPEHASH, teeKey, timestamp)));
        if (!SignatureChecker.isValidSignatureNow(teeKey, digest, signature)) {
            revert TEERegistryInvalidHeartbeatSignature(teeKey);
        }
        _heartbeats[teeKey].push(_now(), timestamp);
        emit Heartbeat(teeKey, timestamp);
    }

    /// @notice Enable or disable one of the caller's TEEs.
    function setEnabled(address teeKey, bool enabled) external {
        Tee storage t = _liveTee(teeKey);
        if (t.operator != msg.sender) revert TEERegistryNotTeeOperator(teeKey, msg.sender);
        if (enabled && t.disabledByAdmin) revert TEERegistryDisabledByAdmin(teeKey);
        _setEnabledFlag(teeKey, t, enabled, false);
    }

    /// @notice Lift an admin disable and enable the TEE.
    function adminEnable(address teeKey) external onlyRole(REVOKER_ROLE) {
        Tee storage t = _liveTee(teeKey);
        t.disabledByAdmin = false;
        _setEnabledFlag(teeKey, t, true, true);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc ITEERegistry
    function isActive(address teeKey, uint256 timestamp) public view returns (bool) {
        Tee storage t = _tees[teeKey];
        if (t.operator == address(0) || timestamp > block.timestamp) return false;
        uint48 at = SafeCast.toUint48(timestamp);
        if (_valueAt(_enabledHistory[teeKey], at) == 0) return false;
        uint48 revokedAt = _measurements[t.measurement].revokedAt;
        if (revokedAt != 0 && at >= revokedAt) return false;
        // The signed time of the last heartbeat recorded at or before `at` (never later than `at`).
        uint256 beat = _valueAt(_heartbeats[teeKey], at);
        if (beat == 0 || timestamp - beat > _valueAt(_maxHeartbeatAge, at)) return false;
        return staking.wasActiveOperator(t.operator, INodeStaking.Role.TeeNode, timestamp);
    }

    /// @inheritdoc ITEERegistry
    function tee(address teeKey) external view returns (Tee memory) {
        return _tees[teeKey];
    }

    /// @inheritdoc ITEERegistry
    function payeeOf(address teeKey) external view returns (address operator, address paymentAddress) {
        Tee storage t = _tees[teeKey];
        return (t.operator, t.paymentAddress);
    }

    /// @inheritdoc ITEERegistry
    function measurement(bytes32 measurementHash) external view returns (Measurement memory) {
        return _measurements[measurementHash];
    }

    /// @inheritdoc ITEERegistry
    function lastHeartbeat(address teeKey) external view returns (uint256) {
        return _heartbeats[teeKey].latest();
    }

    /// @notice The heartbeat age limit now.
    function maxHeartbeatAge() external view returns (uint256) {
        return _maxHeartbeatAge.latest();
    }

    /// @inheritdoc ITEERegistry
    function teeCountOfOperator(address operator) external view returns (uint256) {
        return _teesByOperator[operator].length();
    }

    /// @inheritdoc ITEERegistry
    function teesOfOperator(address operator, uint256 offset, uint256 limit) external view returns (address[] memory) {
        return _slice(_teesByOperator[operator], offset, limit);
    }

    /// @inheritdoc ITEERegistry
    function teeCountOfType(uint8 teeType) external view returns (uint256) {
        return _teesByType[teeType].length();
    }

    /// @inheritdoc ITEERegistry
    function teesOfType(uint8 teeType, uint256 offset, uint256 limit) external view returns (address[] memory) {
        return _slice(_teesByType[teeType], offset, limit);
    }

    /// @inheritdoc ITEERegistry
    function activeTeesOfType(uint8 teeType, uint256 offset, uint256 limit) external view returns (address[] memory) {
        return _activeOnly(_slice(_teesByType[teeType], offset, limit));
    }

    /// @inheritdoc ITEERegistry
    function activeTeesOfOperator(address operator, uint256 offset, uint256 limit)
        external
        view
        returns (address[] memory)
    {
        return _activeOnly(_slice(_teesByOperator[operator], offset, limit));
    }

    // ---------------------------------------------------------------- internals

    function _checkStatement(
        IAttestationVerifier.AttestationStatement calldata statement,
        string calldata endpoint,
        bytes calldata evidence
    ) private {
        if (statement.operator != msg.sender) revert TEERegistryNotStatementOperator(msg.sender, statement.operator);
        if (!staking.isActiveOperator(msg.sender, INodeStaking.Role.TeeNode)) {
            revert TEERegistryOperatorNotStaked(msg.sender);
        }
        if (statement.chainId != block.chainid) revert TEERegistryWrongChain(statement.chainId);
        if (statement.registry != address(this)) revert TEERegistryWrongRegistry(statement.registry);
        if (statement.expiry < block.timestamp) revert TEERegistryAttestationExpired(statement.expiry);
        if (keccak256(bytes(endpoint)) != statement.endpointHash) revert TEERegistryEndpointMismatch(statement.endpointHash);
        if (statement.teeKey == address(0)) revert TEERegistryZeroAddress();
        Measurement storage m = _measurements[statement.measurement];
        if (m.approvedAt == 0) revert TEERegistryMeasurementNotApproved(statement.measurement);
        if (m.revokedAt != 0) revert TEERegistryMeasurementRevoked(statement.measurement);
        if (m.teeType != statement.teeType) revert TEERegistryMeasurementTypeMismatch(statement.measurement, statement.teeType);
        _useCheckedNonce(msg.sender, statement.nonce);

        try verifier.verifyAttestation(statement, evidence) returns (bool ok) {
            if (!ok) revert TEERegistryAttestationRejected();
        } catch {
            revert TEERegistryAttestationRejected();
        }
    }

    function _create(IAttestationVerifier.AttestationStatement calldata statement, string calldata endpoint) private {
        address teeKey = statement.teeKey;
        if (_tees[teeKey].operator != address(0)) revert TEERegistryTeeExists(teeKey);
        _tees[teeKey] = Tee({
            operator: statement.operator,
            teeType: statement.teeType,
            enabled: true,
            disabledByAdmin: false,
            registeredAt: _now(),
            retiredAt: 0,
            measurement: statement.measurement,
            tlsCertHash: statement.tlsCertHash,
            paymentAddress: statement.paymentAddress,
            endpoint: endpoint
        });
        _enabledHistory[teeKey].push(_now(), 1);
        _heartbeats[teeKey].push(_now(), _now());
        _teesByOperator[statement.operator].add(teeKey);
        _teesByType[statement.teeType].add(teeKey);
        emit TeeRegistered(teeKey, statement.operator, statement.teeType, statement.measurement, endpoint);
    }

    function _liveTee(address teeKey) private view returns (Tee storage t) {
        t = _tees[teeKey];
        if (t.operator == address(0)) revert TEERegistryUnknownTee(teeKey);
        if (t.retiredAt != 0) revert TEERegistryRetired(teeKey);
    }

    function _setEnabledFlag(address teeKey, Tee storage t, bool enabled, bool byAdmin) private {
        t.enabled = enabled;
        _enabledHistory[teeKey].push(_now(), enabled ? 1 : 0);
        emit TeeEnabledChanged(teeKey, enabled, byAdmin);
    }

    function _requireTeeType(uint8 teeType) private view {
        if (bytes(teeTypeName[teeType]).length == 0) revert TEERegistryUnknownTeeType(teeType);
    }

    function _setVerifier(IAttestationVerifier verifier_) private {
        if (address(verifier_) == address(0)) revert TEERegistryZeroAddress();
        emit VerifierSet(address(verifier), address(verifier_));
        verifier = verifier_;
    }

    function _setMaxHeartbeatAge(uint256 maxAge) private {
        if (maxAge < MIN_HEARTBEAT_AGE || maxAge > MAX_HEARTBEAT_AGE) revert TEERegistryHeartbeatAgeOutOfBounds(maxAge);
        emit MaxHeartbeatAgeSet(_maxHeartbeatAge.latest(), maxAge);
        _maxHeartbeatAge.push(_now(), SafeCast.toUint208(maxAge));
    }

    function _now() private view returns (uint48) {
        return SafeCast.toUint48(block.timestamp);
    }

    function _activeOnly(address[] memory keys) private view returns (address[] memory active) {
        active = new address[](keys.length);
        uint256 count;
        for (uint256 i = 0; i < keys.length; ++i) {
            if (isActive(keys[i], block.timestamp)) active[count++] = keys[i];
        }
        assembly ("memory-safe") {
            mstore(active, count)
        }
    }

    function _slice(EnumerableSet.AddressSet storage set, uint256 offset, uint256 limit)
        private
        view
        returns (address[] memory out)
    {
        uint256 length = set.length();
        uint256 start = Math.min(offset, length);
        uint256 end = start + Math.min(limit, length - start);
        out = new address[](end - start);
        for (uint256 i = start; i < end; ++i) {
            out[i - start] = set.at(i);
        }
    }

    /// @dev The value in force at `at`. Receipts are usually newer than the latest checkpoint, so that one is
    /// tried first (two reads); otherwise the search starts from the recent end of the history.
    function _valueAt(Checkpoints.Trace208 storage trace, uint48 at) private view returns (uint208) {
        (bool exists, uint48 key, uint208 value) = trace.latestCheckpoint();
        if (exists && key <= at) return value;
        return trace.upperLookupRecent(at);
    }
}
