// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceSettlement} from "./IInferenceSettlement.sol";

/// @title Batch settlement interface
/// @notice Optimistic batches: a staked relayer commits a Merkle root of signed receipts, anyone may prove a
/// leaf faulty during the challenge window, and a proven fault rejects the batch and slashes that relayer.
/// A fault is always a property of a leaf the relayer itself committed, judged as of the batch's posting, so
/// copying a root or a leaf, or anything a signer or another relayer does later, never makes an honest batch
/// faulty. Leaves become request records through `claimBatchReceipt`, with the payer's consent.
interface IBatchSettlement {
    /// @notice What a challenge proved wrong with a leaf.
    enum Fault {
        None,
        BadSignature,
        SignerInactive,
        UnknownModel,
        ModelDeprecated,
        ModeNotAccepted,
        ModeNotBatchable,
        TimestampOutOfBounds
    }

    /// @notice One leaf of a batch: a receipt, its signer's signature, and the Merkle proof of the pair.
    struct BatchLeaf {
        IInferenceSettlement.Receipt receipt;
        bytes signature;
        bytes32[] proof;
    }

    /// @notice A batch committed by a relayer (its size and data URI are in `BatchPosted`). Final from
    /// `challengeDeadline + 1` unless rejected.
    struct Batch {
        address relayer;
        uint40 postedAt;
        uint40 challengeDeadline;
        bool rejected;
        bytes32 root;
    }

    event BatchPosted(uint256 indexed batchId, address indexed relayer, bytes32 root, uint32 count, string dataUri);
    event BatchChallenged(uint256 indexed batchId, address indexed challenger, bytes32 indexed requestId, Fault fault);

    /// @notice Commit a batch of signed receipts (the caller must be an active relayer).
    function postBatch(bytes32 root, uint32 count, string calldata dataUri) external returns (uint256 batchId);

    /// @notice Prove a batch leaf faulty during the challenge window: rejects the batch and slashes its relayer.
    function challenge(uint256 batchId, BatchLeaf calldata leaf) external returns (Fault fault);

    /// @notice Record a batch leaf in its payer's namespace (consent: the caller is the payer, or
    /// `authorization` is the payer's), taking its payment into custody until the batch is final. A leaf with a
    /// fault (`faultOf`) is never recorded, challenged or not.
    function claimBatchReceipt(
        uint256 batchId,
        BatchLeaf calldata leaf,
        IInferenceSettlement.PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice The first fault of `leaf` as a leaf of batch `batchId` (None if it has none); does not check
    /// inclusion.
    function faultOf(uint256 batchId, BatchLeaf calldata leaf) external view returns (Fault);
    /// @notice True when `leaf` (receipt and signature) is in batch `batchId` under its proof.
    function isIncluded(uint256 batchId, BatchLeaf calldata leaf) external view returns (bool);
    /// @notice None (unknown), Pending (window open), Final, or Rejected.
    function batchStatus(uint256 batchId) external view returns (IInferenceSettlement.Status);
    /// @notice The batch's status and, once final, when it became final (`challengeDeadline + 1`).
    function batchFinality(uint256 batchId) external view returns (IInferenceSettlement.Status status, uint48 finalAt);
    function batch(uint256 batchId) external view returns (Batch memory);
    function batchCount() external view returns (uint256);
}
