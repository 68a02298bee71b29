// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IModelRegistry} from "./IModelRegistry.sol";

/// @title Inference settlement interface
/// @notice Receipts for AI inferences, settled individually, in challengeable batches or asynchronously,
/// with payments and a query API for consumer contracts.
interface IInferenceSettlement {
    /// @notice Where a request stands. `None`: never settled. `Pending`: in a batch still open to challenges,
    /// or posted asynchronously with its proof still due. `Final`: settled for good. `Rejected`: its batch was
    /// proven faulty. `Failed`: its asynchronous proof never came.
    enum Status {
        None,
        Pending,
        Final,
        Rejected,
        Failed
    }

    /// @notice What a batch challenge proved wrong with a leaf.
    enum Fault {
        None,
        BadSignature,
        SignerInactive,
        UnknownModel,
        ModelDeprecated,
        ModeNotAccepted,
        ModeNotBatchable,
        TimestampOutOfBounds,
        AlreadySettled,
        Duplicated
    }

    /// @notice What a node signs (EIP-712, under this contract's domain).
    /// @param requestId Unique id of the request; each settles once, ever.
    /// @param modelId The model that ran (`ModelRegistry` id).
    /// @param inputHash keccak-256 of the request input (for ZKML: of `abi.encode(inputInstances)`).
    /// @param outputHash keccak-256 of the output manifest's canonical JSON (for ZKML: of
    /// `abi.encode(outputInstances)`).
    /// @param mode The verification mode the receipt claims.
    /// @param signer The inference node (VANILLA, ZKML) or TEE signing key (TEE).
    /// @param timestamp When the node produced the answer (unix seconds).
    /// @param payer Who pays `price`; zero when `price` is zero.
    /// @param price OPG wei charged for the inference.
    struct Receipt {
        bytes32 requestId;
        bytes32 modelId;
        bytes32 inputHash;
        bytes32 outputHash;
        IModelRegistry.Mode mode;
        address signer;
        uint64 timestamp;
        address payer;
        uint256 price;
    }

    /// @notice What a payer signs (EIP-712, under this contract's domain) to let one request charge it.
    /// @param requestId The one request this authorization pays for.
    /// @param maxAmount The most the request may charge.
    /// @param deadline Last second at which the authorization may be used.
    /// @param nonce The payer's authorization epoch; `revokeAuthorizations` moves it on and voids older ones.
    struct PaymentAuthorization {
        bytes32 requestId;
        uint256 maxAmount;
        uint64 deadline;
        uint256 nonce;
    }

    /// @notice One leaf of a batch: a receipt, its signer's signature, and the Merkle proof of the pair.
    struct BatchLeaf {
        Receipt receipt;
        bytes signature;
        bytes32[] proof;
    }

    /// @notice A batch of receipts committed by a relayer as a Merkle root (its size and data URI are in
    /// `BatchPosted`). Final from `challengeDeadline + 1` unless rejected.
    struct Batch {
        address relayer;
        uint40 postedAt;
        uint40 challengeDeadline;
        bool rejected;
        bytes32 root;
    }

    /// @notice A settled request as consumer contracts see it.
    struct VerifiedOutput {
        bytes32 outputHash;
        IModelRegistry.Mode mode;
        Status status;
        uint48 settledAt;
    }

    event ReceiptSettled(bytes32 indexed requestId, bytes32 indexed modelId, IModelRegistry.Mode mode, bytes32 outputHash);
    event BatchPosted(uint256 indexed batchId, address indexed relayer, bytes32 root, uint32 count, string dataUri);
    event BatchReceiptRecorded(uint256 indexed batchId, bytes32 indexed requestId, bytes32 outputHash);
    event BatchChallenged(uint256 indexed batchId, address indexed challenger, bytes32 indexed requestId, Fault fault);
    event ProofRequested(bytes32 indexed requestId, address indexed node, uint48 deadline);
    event ProofDelivered(bytes32 indexed requestId, address indexed deliveredBy);
    event ProofMissed(bytes32 indexed requestId, address indexed node, uint256 refund);
    event PaymentCharged(bytes32 indexed requestId, address indexed payer, uint256 amount, bool fromEscrow);
    event PaymentSplit(
        bytes32 indexed requestId,
        address indexed nodePayee,
        uint256 toNode,
        uint256 toModelOwner,
        uint256 toRoyalty,
        uint256 toTreasury,
        uint256 toStakers
    );
    event Deposited(address indexed payer, uint256 amount);
    event EscrowWithdrawn(address indexed payer, uint256 amount);
    event ProceedsWithdrawn(address indexed account, uint256 amount);
    event StakerRewardsDistributed(address indexed operator, uint256 amount);
    event AuthorizationsRevoked(address indexed payer, uint256 newNonce);

    /// @notice Settle a free (price zero) VANILLA, TEE or ZKML receipt now. `evidence` is the signer's
    /// signature for VANILLA and TEE, `abi.encode(signature, proof, inputInstances, outputInstances)` for ZKML.
    function settle(Receipt calldata receipt, bytes calldata evidence) external;

    /// @notice Settle a receipt now and charge its payer under `authorization`.
    function settleAndPay(
        Receipt calldata receipt,
        bytes calldata evidence,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice Commit a batch of signed receipts (the caller must be an active relayer).
    function postBatch(bytes32 root, uint32 count, string calldata dataUri) external returns (uint256 batchId);

    /// @notice Prove a batch leaf faulty during the challenge window: rejects the batch and slashes its relayer.
    function challenge(uint256 batchId, BatchLeaf calldata leaf) external returns (Fault fault);

    /// @notice Prove that a batch repeats a requestId another live batch (posted no later) also holds.
    function challengeDuplicate(uint256 batchId, BatchLeaf calldata leaf, uint256 otherBatchId, BatchLeaf calldata other)
        external;

    /// @notice Record one receipt of a batch so it can be queried by requestId, and charge it once the batch is
    /// final. Call again after the challenge window to charge a receipt recorded while its batch was pending.
    function claimBatchReceipt(
        uint256 batchId,
        BatchLeaf calldata leaf,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice Post a TEE or ZKML result before its evidence exists; the caller is the node that owes it.
    function postPending(Receipt calldata receipt) external;

    /// @notice As `postPending`, taking the payment into custody until the evidence arrives.
    function postPendingAndPay(
        Receipt calldata receipt,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice Deliver the evidence owed for a pending request: the TEE signature, or
    /// `abi.encode(proof, inputInstances, outputInstances)` for ZKML.
    function deliverProof(Receipt calldata receipt, bytes calldata evidence) external;

    /// @notice After the deadline of an undelivered proof: fail the request, slash its node, refund the payer.
    function reportMissedProof(bytes32 requestId) external;

    /// @notice Prepay `amount` OPG (pulled from the caller); settlements charge it before the wallet.
    function deposit(uint256 amount) external;
    /// @notice Take back `amount` of the caller's prepaid (or refunded) OPG.
    function withdrawEscrow(uint256 amount) external;
    /// @notice Withdraw everything credited to the caller: node, model-owner, royalty or treasury shares.
    function withdrawProceeds() external returns (uint256 amount);
    /// @notice Send the stakers' share owed to `operator`'s pool into `NodeStaking` as rewards (anyone may call).
    function distributeStakerRewards(address operator) external returns (uint256 amount);
    /// @notice Void every payment authorization the caller signed so far.
    function revokeAuthorizations() external;

    /// @notice The output a request settled with, its mode, status and settlement time (zero values if none).
    function verifiedOutput(bytes32 requestId) external view returns (VerifiedOutput memory);

    /// @notice Revert with a named error unless `requestId` settled, at `minMode` or stronger, and (if
    /// `mustBeFinal`) for good. Returns its output hash.
    function requireVerified(bytes32 requestId, IModelRegistry.Mode minMode, bool mustBeFinal)
        external
        view
        returns (bytes32 outputHash);

    /// @notice As `requireVerified`, and also that the settled receipt is exactly `receipt` (same model, input,
    /// signer, payer, price, ...). Consumers that act on an answer should use this one.
    function requireVerifiedReceipt(Receipt calldata receipt, IModelRegistry.Mode minMode, bool mustBeFinal) external view;

    /// @notice True when `leaf` (receipt and signature) is in batch `batchId` under its proof.
    function isIncluded(uint256 batchId, BatchLeaf calldata leaf) external view returns (bool);

    /// @notice None (unknown), Pending (window open), Final, or Rejected.
    function batchStatus(uint256 batchId) external view returns (Status);
    function batch(uint256 batchId) external view returns (Batch memory);
    /// @notice The EIP-712 digest a signer signs for `receipt` on this contract and chain.
    function receiptDigest(Receipt calldata receipt) external view returns (bytes32);
    /// @notice The EIP-712 digest a payer signs for `authorization` on this contract and chain.
    function paymentDigest(PaymentAuthorization calldata authorization) external view returns (bytes32);
}
