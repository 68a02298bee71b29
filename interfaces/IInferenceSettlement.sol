// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IModelRegistry} from "./IModelRegistry.sol";

/// @title Inference settlement interface
/// @notice Receipts for AI inferences, settled individually or asynchronously here and in challengeable
/// batches through `IBatchSettlement`, with payments and a query API for consumer contracts. This contract is
/// the one source of truth for request records.
///
/// Every request lives in its requester's namespace: the record of `(payer, requestId)` exists only with the
/// consent of `payer` — its own transaction, or its signed `PaymentAuthorization` naming the node, model and
/// input it pays for — so no third party can occupy or rewrite it.
interface IInferenceSettlement {
    /// @notice Where a request stands. `None`: no record. `Pending`: in a batch still open to challenges, or
    /// posted asynchronously with its proof due and not yet overdue. `Final`: settled for good. `Rejected`: its
    /// batch was proven faulty (the request may be recorded again). `Failed`: its asynchronous proof is overdue
    /// or was reported missed.
    enum Status {
        None,
        Pending,
        Final,
        Rejected,
        Failed
    }

    /// @notice What a node signs (EIP-712, under this contract's domain).
    /// @param requestId The request's id in the payer's namespace; each `(payer, requestId)` settles once.
    /// @param modelId The model that ran (`ModelRegistry` id).
    /// @param inputHash keccak-256 of the request input (for ZKML: of `abi.encode(inputInstances)`).
    /// @param outputHash keccak-256 of the output manifest's canonical JSON (for ZKML: of
    /// `abi.encode(outputInstances)`).
    /// @param mode The verification mode the receipt claims.
    /// @param signer The inference node (VANILLA, ZKML) or TEE signing key (TEE).
    /// @param timestamp When the node produced the answer (unix seconds).
    /// @param payer The requester: owns the request's namespace, consents to its record and pays `price`.
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

    /// @notice What a payer signs (EIP-712, under this contract's domain) to let a request be recorded in its
    /// namespace, and charged, by someone else.
    /// @param payer The payer itself, so a smart-contract wallet that accepts its owner's signatures cannot be
    /// charged under an authorization its owner signed for another namespace.
    /// @param requestId The one request this authorization is for.
    /// @param node The node allowed to answer and be paid: the signer (VANILLA, ZKML) or the TEE's operator.
    /// @param modelId The model that must have run.
    /// @param inputHash The input it must have run on.
    /// @param mode The verification mode the answer must carry.
    /// @param maxAmount The most the request may charge (zero for a free request).
    /// @param deadline Last second at which the authorization may be used.
    /// @param nonce The payer's authorization epoch; `revokeAuthorizations` moves it on and voids older ones.
    struct PaymentAuthorization {
        address payer;
        bytes32 requestId;
        address node;
        bytes32 modelId;
        bytes32 inputHash;
        IModelRegistry.Mode mode;
        uint256 maxAmount;
        uint64 deadline;
        uint256 nonce;
    }

    /// @notice A request's record as consumers see it.
    /// @param status See `Status`.
    /// @param mode The verification mode that was checked (Final) or is owed (Pending: a batch still open to
    /// challenges, or a proof due). A ZKML mode is never recorded without a verified proof, and a batch never
    /// records ZKML.
    /// @param settledAt When it became final (zero until then).
    /// @param receiptHash The leading 192 bits of the recorded receipt's EIP-712 struct hash.
    struct RecordView {
        Status status;
        IModelRegistry.Mode mode;
        uint48 settledAt;
        bytes24 receiptHash;
    }

    /// @notice A receipt became final individually or by its delivered proof. `signer` is the node or TEE key
    /// that answered (the execution history is rebuilt from these events).
    /// @notice A payment held for a pending or batched request, and the node that owes a pending one's evidence.
    struct Custody {
        address node;
        uint96 held;
    }

    event ReceiptSettled(
        bytes32 indexed requestId,
        address indexed payer,
        bytes32 indexed modelId,
        IModelRegistry.Mode mode,
        bytes32 outputHash,
        address signer
    );
    /// @notice A batched receipt was recorded; it is final when its batch is.
    event BatchReceiptRecorded(
        uint256 indexed batchId,
        bytes32 indexed requestId,
        address indexed payer,
        bytes32 modelId,
        IModelRegistry.Mode mode,
        bytes32 outputHash,
        address signer
    );
    event ProofRequested(bytes32 indexed requestId, address indexed payer, address indexed node, uint48 deadline);
    event ProofDelivered(bytes32 indexed requestId, address indexed payer, address deliveredBy);
    event ProofMissed(bytes32 indexed requestId, address indexed payer, address indexed node, uint256 refund);
    event PaymentCharged(bytes32 indexed requestId, address indexed payer, uint256 amount, bool fromEscrow);
    event PaymentRefunded(bytes32 indexed requestId, address indexed payer, uint256 amount);
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
    event AuthorizationsRevoked(address indexed payer, uint256 newNonce);
    event BatchSettlementSet(address indexed batchSettlement);

    /// @notice Settle a VANILLA, TEE or ZKML receipt now; the caller is its payer, so this is its consent, and a
    /// non-zero price is charged to it. `evidence` is the signer's signature for VANILLA and TEE,
    /// `abi.encode(signature, proof, inputInstances, outputInstances)` for ZKML.
    function settle(Receipt calldata receipt, bytes calldata evidence) external;

    /// @notice Settle a receipt now on behalf of its payer, under the payer's `authorization`.
    function settleWithAuthorization(
        Receipt calldata receipt,
        bytes calldata evidence,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice Post a TEE or ZKML result before its evidence exists. The caller is the node that owes it (the
    /// TEE's operator, or the ZKML signer) and must be active; the payer consents by `authorization` (ignored
    /// when the caller is the payer). A non-zero price is held until the evidence arrives.
    function postPending(
        Receipt calldata receipt,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice Deliver the evidence owed for a pending request before its deadline: the TEE signature, or
    /// `abi.encode(proof, inputInstances, outputInstances)` for ZKML. Anyone may deliver.
    function deliverProof(Receipt calldata receipt, bytes calldata evidence) external;

    /// @notice After the deadline of an undelivered proof: fail the request, slash its node, refund the payer.
    function reportMissedProof(address payer, bytes32 requestId) external;

    /// @notice Record a batched receipt (only the batch settlement contract, for `caller`): consent and payment
    /// are taken here, exactly as for an individual receipt.
    function recordBatchReceipt(
        address caller,
        uint256 batchId,
        Receipt calldata receipt,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external;

    /// @notice Split the payment held for a batched receipt once its batch is final, or refund it to the
    /// payer's escrow if the batch was rejected. Anyone may call.
    function releaseBatchPayment(Receipt calldata receipt) external;

    /// @notice Prepay `amount` OPG (pulled from the caller); settlements charge it before the wallet.
    function deposit(uint256 amount) external;
    /// @notice Take back `amount` of the caller's prepaid (or refunded) OPG.
    function withdrawEscrow(uint256 amount) external;
    /// @notice Withdraw everything credited to the caller: node, model-owner, royalty or treasury shares.
    function withdrawProceeds() external returns (uint256 amount);
    /// @notice Void every payment authorization the caller signed so far.
    function revokeAuthorizations() external;

    /// @notice The record of `requestId` in `payer`'s namespace (zero values if none).
    function recordOf(address payer, bytes32 requestId) external view returns (RecordView memory);

    /// @notice Revert with a named error unless `receipt` is exactly the receipt recorded for its request, at
    /// `minMode` or stronger, and (if `mustBeFinal`) final. The one call a consumer needs: it then checks the
    /// receipt's payer (its own namespace), model and input, and reads the answer from `outputHash`.
    function requireVerifiedReceipt(Receipt calldata receipt, IModelRegistry.Mode minMode, bool mustBeFinal)
        external
        view
        returns (uint48 settledAt);

    /// @notice The node that owes a pending request's evidence and the payment held for a pending or batched
    /// request.
    function custodyOf(address payer, bytes32 requestId) external view returns (Custody memory);

    /// @notice The EIP-712 digest a signer signs for `receipt` on this contract and chain.
    function receiptDigest(Receipt calldata receipt) external view returns (bytes32);
    /// @notice The EIP-712 digest a payer signs for `authorization` on this contract and chain.
    function paymentDigest(PaymentAuthorization calldata authorization) external view returns (bytes32);
    /// @notice Oldest receipt accepted, in seconds before its settlement.
    function maxReceiptAge() external view returns (uint256);
}
