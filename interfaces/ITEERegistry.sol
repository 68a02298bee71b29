// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAttestationVerifier} from "./IAttestationVerifier.sol";

/// @title TEE registry interface
/// @notice Trusted execution environments run by staked operators: TEE types, governance-approved code
/// measurements, attested registration bound to its operator, signed heartbeats, key rotation, and an
/// `isActive(teeKey, timestamp)` answer for any past time.
interface ITEERegistry {
    /// @notice An approved code measurement (e.g. the hash of a Nitro enclave's PCR0..2).
    struct Measurement {
        uint8 teeType;
        uint32 version;
        uint48 approvedAt;
        uint48 revokedAt;
    }

    /// @notice A registered TEE, keyed by the address of its signing key.
    struct Tee {
        address operator;
        uint8 teeType;
        bool enabled;
        bool disabledByAdmin;
        uint48 registeredAt;
        uint48 retiredAt;
        bytes32 measurement;
        bytes32 tlsCertHash;
        address paymentAddress;
        string endpoint;
    }

    event TeeTypeAdded(uint8 indexed teeType, string name);
    event MeasurementApproved(bytes32 indexed measurement, uint8 indexed teeType, uint32 version);
    event MeasurementRevoked(bytes32 indexed measurement);
    event TeeRegistered(
        address indexed teeKey, address indexed operator, uint8 indexed teeType, bytes32 measurement, string endpoint
    );
    event TeeUpdated(address indexed teeKey, bytes32 tlsCertHash, address paymentAddress, string endpoint);
    event TeeKeyRotated(address indexed previousKey, address indexed newKey, address indexed operator);
    event TeeEnabledChanged(address indexed teeKey, bool enabled, bool byAdmin);
    event Heartbeat(address indexed teeKey, uint64 timestamp);
    event VerifierSet(address indexed previous, address indexed current);
    event MaxHeartbeatAgeSet(uint256 previous, uint256 current);

    function registerTee(
        IAttestationVerifier.AttestationStatement calldata statement,
        string calldata endpoint,
        bytes calldata evidence
    ) external;

    function reattest(
        address currentKey,
        IAttestationVerifier.AttestationStatement calldata statement,
        string calldata endpoint,
        bytes calldata evidence
    ) external;

    /// @notice Record a heartbeat signed by `teeKey` at `timestamp` (relayed by anyone); it counts from the
    /// block that records it, not from `timestamp`.
    function heartbeat(address teeKey, uint64 timestamp, bytes calldata signature) external;
    function setEnabled(address teeKey, bool enabled) external;

    /// @notice Whether `teeKey` was registered, enabled, on an approved and unrevoked measurement, and had a
    /// heartbeat within the maximum age, at `timestamp`, and its operator was an active staked TEE node then
    /// (`NodeStaking.wasActiveOperator`), so jailing the operator later does not change it. The heartbeat is
    /// the last one recorded on chain at or before `timestamp`, and its signed time must be within the age
    /// limit in force at `timestamp`: a heartbeat relayed later, whatever time it was signed at, never changes
    /// the answer for a time before the block that recorded it. Future timestamps are never active.
    function isActive(address teeKey, uint256 timestamp) external view returns (bool);
    function tee(address teeKey) external view returns (Tee memory);
    /// @notice The operator of `teeKey` and the address its fees are paid to (both zero for an unknown key).
    function payeeOf(address teeKey) external view returns (address operator, address paymentAddress);
    function measurement(bytes32 measurementHash) external view returns (Measurement memory);
    /// @notice The signed time of the latest heartbeat recorded for `teeKey` (registration and re-attestation
    /// count as heartbeats at their block's time).
    function lastHeartbeat(address teeKey) external view returns (uint256);
    function teeCountOfOperator(address operator) external view returns (uint256);
    function teesOfOperator(address operator, uint256 offset, uint256 limit) external view returns (address[] memory);
    function teeCountOfType(uint8 teeType) external view returns (uint256);
    function teesOfType(uint8 teeType, uint256 offset, uint256 limit) external view returns (address[] memory);
    /// @notice The TEEs of `teeType` in positions `offset` to `offset + limit` that are active now.
    function activeTeesOfType(uint8 teeType, uint256 offset, uint256 limit) external view returns (address[] memory);
    /// @notice The TEEs of `operator` in positions `offset` to `offset + limit` that are active now.
    function activeTeesOfOperator(address operator, uint256 offset, uint256 limit) external view returns (address[] memory);
}
