// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {INodeStaking} from "../interfaces/INodeStaking.sol";
import {ITEERegistry} from "../interfaces/ITEERegistry.sol";
import {IZkmlVerifier} from "../interfaces/IZkmlVerifier.sol";
import {ReceiptHashing} from "./ReceiptHashing.sol";
import {SettlementPayments} from "./SettlementPayments.sol";

/// @title Inference settlement
/// @notice Settles inference receipts in three verification modes and three ways, and answers what a
/// request's verified output is.
///
/// - Individually: anyone submits a receipt with its evidence and it is checked at once. VANILLA: signed by
///   an active staked inference node. TEE: signed by a TEE key that `TEERegistry.isActive` at the receipt's
///   timestamp. ZKML: signed by an active inference node and proven by the model's verifier, with the proof's
///   public instances bound to the receipt's input and output hashes.
/// - In batches: an active relayer commits a Merkle root of signed VANILLA/TEE receipts. The batch is
///   pending for `challengeWindow`; one faulty leaf shown by anyone rejects the whole batch and slashes the
///   relayer, part of the slash going to the challenger. The window is always shorter than the staking
///   unbonding delay, so a relayer cannot unbond and withdraw before a challenge lands.
/// - Asynchronously: a node posts a TEE or ZKML result as pending and owes its evidence within
///   `proofWindow`; delivered in time it is final, otherwise the request fails, the node is slashed and the
///   payer refunded.
///
/// A requestId is recorded at most once, ever; only a rejected batch gives its requestIds back.
contract InferenceSettlement is SettlementPayments {
    using SafeCast for uint256;

    uint256 public constant MIN_CHALLENGE_WINDOW = 5 minutes;
    uint256 public constant MIN_PROOF_WINDOW = 1 minutes;
    uint256 public constant MAX_PROOF_WINDOW = 7 days;
    uint256 public constant MIN_RECEIPT_AGE = 1 minutes;
    uint256 public constant MAX_RECEIPT_AGE = 30 days;
    uint256 public constant MAX_SLASH_BPS = 5_000;
    uint256 public constant MAX_BATCH_SIZE = 1 << 24;

    /// @dev `status` is authoritative for direct records; for batch records (`batchId != 0`) it only marks the
    /// record as present and the status comes from the batch.
    struct Record {
        bytes32 outputHash;
        bytes32 receiptHash;
        uint40 batchId;
        uint48 recordedAt;
        uint48 settledAt;
        IModelRegistry.Mode mode;
        Status status;
        bool paid;
    }

    struct PendingProof {
        address node;
        uint48 deadline;
        address payer;
        uint96 held;
    }

    ITEERegistry public immutable teeRegistry;

    uint256 public challengeWindow;
    uint256 public proofWindow;
    uint256 public maxReceiptAge;
    uint256 public relayerSlashBps;
    uint256 public nodeSlashBps;
    uint256 public batchCount;

    mapping(bytes32 requestId => Record) private _records;
    mapping(bytes32 requestId => PendingProof) private _pendingProofs;
    mapping(uint256 batchId => Batch) private _batches;

    event ChallengeWindowSet(uint256 previous, uint256 current);
    event ProofWindowSet(uint256 previous, uint256 current);
    event MaxReceiptAgeSet(uint256 previous, uint256 current);
    event SlashFractionsSet(uint256 relayerSlashBps, uint256 nodeSlashBps);

    error InferenceSettlementAlreadySettled(bytes32 requestId);
    error InferenceSettlementReceiptFromFuture(uint64 timestamp);
    error InferenceSettlementReceiptTooOld(uint64 timestamp, uint256 maxAge);
    error InferenceSettlementUnknownModel(bytes32 modelId);
    error InferenceSettlementModelDeprecated(bytes32 modelId);
    error InferenceSettlementModeNotAccepted(bytes32 modelId, IModelRegistry.Mode mode);
    error InferenceSettlementBadSignature(address signer);
    error InferenceSettlementSignerInactive(address signer, uint64 timestamp);
    error InferenceSettlementInputNotBound(bytes32 inputHash);
    error InferenceSettlementOutputNotBound(bytes32 outputHash);
    error InferenceSettlementProofRejected(address verifier);
    error InferenceSettlementPaymentRequired(uint256 price);
    error InferenceSettlementNothingToPay(bytes32 requestId);
    error InferenceSettlementNotRelayer(address account);
    error InferenceSettlementEmptyBatch();
    error InferenceSettlementBatchTooLarge(uint256 count, uint256 maximum);
    error InferenceSettlementUnknownBatch(uint256 batchId);
    error InferenceSettlementBatchRejected(uint256 batchId);
    error InferenceSettlementChallengeWindowClosed(uint256 batchId);
    error InferenceSettlementNotIncluded(uint256 batchId, bytes32 requestId);
    error InferenceSettlementNoFault(uint256 batchId, bytes32 requestId);
    error InferenceSettlementNotDuplicate(uint256 batchId, uint256 otherBatchId);
    error InferenceSettlementModeNotAsync(IModelRegistry.Mode mode);
    error InferenceSettlementNotNode(address account, address signer);
    error InferenceSettlementNotPending(bytes32 requestId);
    error InferenceSettlementReceiptMismatch(bytes32 requestId);
    error InferenceSettlementProofDeadlinePassed(bytes32 requestId, uint48 deadline);
    error InferenceSettlementProofNotDue(bytes32 requestId, uint48 deadline);
    error InferenceSettlementNotVerified(bytes32 requestId, Status status);
    error InferenceSettlementModeTooWeak(bytes32 requestId, IModelRegistry.Mode mode, IModelRegistry.Mode minMode);
    error InferenceSettlementChallengeWindowOutOfBounds(uint256 window, uint256 minimum, uint256 unbondingDelay);
    error InferenceSettlementProofWindowOutOfBounds(uint256 window);
    error InferenceSettlementReceiptAgeOutOfBounds(uint256 maxAge);
    error InferenceSettlementSlashFractionOutOfBounds(uint256 fractionBps);

    /// @param admin Holds DEFAULT_ADMIN_ROLE (the timelock in production): parameters, fee split, treasury.
    /// @param challengeWindow_ Seconds a batch stays open to challenges; below the staking unbonding delay.
    /// @param proofWindow_ Seconds a node has to deliver the evidence of a pending result.
    /// @param maxReceiptAge_ Oldest receipt accepted, in seconds before its settlement or batch.
    constructor(
        IERC20 token_,
        INodeStaking staking_,
        IModelRegistry models_,
        ITEERegistry teeRegistry_,
        address treasury_,
        address admin,
        uint256 challengeWindow_,
        uint256 proofWindow_,
        uint256 maxReceiptAge_
    ) EIP712("InferenceSettlement", "1") SettlementPayments(token_, staking_, models_, treasury_) {
        if (address(teeRegistry_) == address(0) || admin == address(0)) revert InferenceSettlementZeroAddress();
        teeRegistry = teeRegistry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setChallengeWindow(challengeWindow_);
        _setProofWindow(proofWindow_);
        _setMaxReceiptAge(maxReceiptAge_);
        _setSlashFractions(1_000, 500);
    }

    // ---------------------------------------------------------------- admin

    /// @notice Seconds a new batch stays open to challenges: at least 5 minutes, below the unbonding delay.
    /// Batches already posted keep their deadline.
    function setChallengeWindow(uint256 window) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setChallengeWindow(window);
    }

    /// @notice Seconds a node has to deliver the evidence of a new pending result (1 minute to 7 days).
    function setProofWindow(uint256 window) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setProofWindow(window);
    }

    /// @notice Oldest receipt accepted, in seconds before its settlement or its batch (1 minute to 30 days).
    function setMaxReceiptAge(uint256 maxAge) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMaxReceiptAge(maxAge);
    }

    /// @notice Fractions of stake slashed from a relayer whose batch is rejected and from a node that misses
    /// a proof deadline.
    function setSlashFractions(uint256 relayerBps, uint256 nodeBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setSlashFractions(relayerBps, nodeBps);
    }

    // ---------------------------------------------------------------- individual

    /// @inheritdoc IInferenceSettlement
    function settle(Receipt calldata receipt, bytes calldata evidence) external {
        if (receipt.price != 0) revert InferenceSettlementPaymentRequired(receipt.price);
        bytes32 receiptHash = _verifyNow(receipt, evidence);
        _recordFinal(receipt, receiptHash, false);
    }

    /// @inheritdoc IInferenceSettlement
    function settleAndPay(
        Receipt calldata receipt,
        bytes calldata evidence,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        if (receipt.price == 0) revert InferenceSettlementNothingToPay(receipt.requestId);
        bytes32 receiptHash = _verifyNow(receipt, evidence);
        _recordFinal(receipt, receiptHash, true);
        _collect(receipt, authorization, authorizationSignature);
        (address payee, address operator) = _payeeOf(receipt);
        _split(receipt.requestId, receipt.modelId, receipt.price, payee, operator);
    }

    // ---------------------------------------------------------------- batches

    /// @inheritdoc IInferenceSettlement
    function postBatch(bytes32 root, uint32 count, string calldata dataUri) external returns (uint256 batchId) {
        if (!staking.isActiveOperator(msg.sender, INodeStaking.Role.SettlementRelayer)) {
            revert InferenceSettlementNotRelayer(msg.sender);
        }
        if (count == 0) revert InferenceSettlementEmptyBatch();
        if (count > MAX_BATCH_SIZE) revert InferenceSettlementBatchTooLarge(count, MAX_BATCH_SIZE);
        uint256 window = challengeWindow;
        // The staking delay may have been shortened since the window was set.
        uint256 unbondingDelay = staking.unbondingDelay();
        if (window >= unbondingDelay) {
            revert InferenceSettlementChallengeWindowOutOfBounds(window, MIN_CHALLENGE_WINDOW, unbondingDelay);
        }
        batchId = ++batchCount;
        _batches[batchId] = Batch({
            relayer: msg.sender,
            postedAt: block.timestamp.toUint40(),
            challengeDeadline: (block.timestamp + window).toUint40(),
            rejected: false,
            root: root
        });
        emit BatchPosted(batchId, msg.sender, root, count, dataUri);
    }

    /// @inheritdoc IInferenceSettlement
    function challenge(uint256 batchId, BatchLeaf calldata leaf) external nonReentrant returns (Fault fault) {
        Batch storage b = _openBatch(batchId);
        _requireIncluded(b, batchId, leaf);
        fault = _findFault(b, batchId, leaf.receipt, leaf.signature);
        if (fault == Fault.None) revert InferenceSettlementNoFault(batchId, leaf.receipt.requestId);
        _reject(b, batchId, leaf.receipt.requestId, fault);
    }

    /// @inheritdoc IInferenceSettlement
    function challengeDuplicate(uint256 batchId, BatchLeaf calldata leaf, uint256 otherBatchId, BatchLeaf calldata other)
        external
        nonReentrant
    {
        Batch storage b = _openBatch(batchId);
        _requireIncluded(b, batchId, leaf);
        Batch storage otherBatch = _knownBatch(otherBatchId);
        if (otherBatch.rejected) revert InferenceSettlementBatchRejected(otherBatchId);
        _requireIncluded(otherBatch, otherBatchId, other);

        // The same leaf shown twice under the same proof is one occurrence, not two.
        bool sameOccurrence = otherBatchId == batchId && keccak256(abi.encode(leaf)) == keccak256(abi.encode(other));
        if (other.receipt.requestId != leaf.receipt.requestId || otherBatchId > batchId || sameOccurrence) {
            revert InferenceSettlementNotDuplicate(batchId, otherBatchId);
        }
        _reject(b, batchId, leaf.receipt.requestId, Fault.Duplicated);
    }

    /// @inheritdoc IInferenceSettlement
    function claimBatchReceipt(
        uint256 batchId,
        BatchLeaf calldata leaf,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        Batch storage b = _knownBatch(batchId);
        if (b.rejected) revert InferenceSettlementBatchRejected(batchId);
        _requireIncluded(b, batchId, leaf);

        Receipt calldata receipt = leaf.receipt;
        Record storage record = _records[receipt.requestId];
        bool recordedHere = record.batchId == batchId && record.status != Status.None;
        if (!recordedHere) {
            _requireFree(receipt.requestId);
            _records[receipt.requestId] = Record({
                outputHash: receipt.outputHash,
                receiptHash: ReceiptHashing.structHash(receipt),
                batchId: batchId.toUint40(),
                recordedAt: block.timestamp.toUint48(),
                settledAt: 0,
                mode: receipt.mode,
                status: Status.Pending,
                paid: false
            });
            emit BatchReceiptRecorded(batchId, receipt.requestId, receipt.outputHash);
        }

        bool chargeable = receipt.price != 0 && block.timestamp > b.challengeDeadline;
        if (!chargeable) {
            if (recordedHere) revert InferenceSettlementAlreadySettled(receipt.requestId);
            return;
        }
        if (record.paid) revert InferenceSettlementAlreadySettled(receipt.requestId);
        record.paid = true;
        _collect(receipt, authorization, authorizationSignature);
        (address payee, address operator) = _payeeOf(receipt);
        _split(receipt.requestId, receipt.modelId, receipt.price, payee, operator);
    }

    // ---------------------------------------------------------------- asynchronous

    /// @inheritdoc IInferenceSettlement
    function postPending(Receipt calldata receipt) external {
        if (receipt.price != 0) revert InferenceSettlementPaymentRequired(receipt.price);
        _postPending(receipt, 0);
    }

    /// @inheritdoc IInferenceSettlement
    function postPendingAndPay(
        Receipt calldata receipt,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        if (receipt.price == 0) revert InferenceSettlementNothingToPay(receipt.requestId);
        _postPending(receipt, receipt.price);
        _collect(receipt, authorization, authorizationSignature);
    }

    /// @inheritdoc IInferenceSettlement
    function deliverProof(Receipt calldata receipt, bytes calldata evidence) external nonReentrant {
        bytes32 requestId = receipt.requestId;
        Record storage record = _pendingRecord(requestId);
        PendingProof memory pending = _pendingProofs[requestId];
        if (block.timestamp > pending.deadline) {
            revert InferenceSettlementProofDeadlinePassed(requestId, pending.deadline);
        }
        bytes32 receiptHash = ReceiptHashing.structHash(receipt);
        if (record.receiptHash != receiptHash) revert InferenceSettlementReceiptMismatch(requestId);

        if (receipt.mode == IModelRegistry.Mode.Tee) {
            _requireSignedBy(receiptHash, receipt.signer, evidence);
            _requireSignerActive(receipt);
        } else {
            (bytes memory zkProof, uint256[] memory inputs, uint256[] memory outputs) =
                abi.decode(evidence, (bytes, uint256[], uint256[]));
            _requireProof(receipt, zkProof, inputs, outputs);
        }

        record.status = Status.Final;
        record.settledAt = block.timestamp.toUint48();
        delete _pendingProofs[requestId];
        emit ProofDelivered(requestId, msg.sender);
        emit ReceiptSettled(requestId, receipt.modelId, receipt.mode, receipt.outputHash);
        if (pending.held != 0) {
            (address payee, address operator) = _payeeOf(receipt);
            _split(requestId, receipt.modelId, pending.held, payee, operator);
        }
    }

    /// @inheritdoc IInferenceSettlement
    function reportMissedProof(bytes32 requestId) external nonReentrant {
        Record storage record = _pendingRecord(requestId);
        PendingProof memory pending = _pendingProofs[requestId];
        if (block.timestamp <= pending.deadline) revert InferenceSettlementProofNotDue(requestId, pending.deadline);

        record.status = Status.Failed;
        delete _pendingProofs[requestId];
        if (pending.held != 0) escrowOf[pending.payer] += pending.held;
        emit ProofMissed(requestId, pending.node, pending.held);
        staking.slash(pending.node, nodeSlashBps, _evidenceId("missed-proof", requestId), msg.sender);
    }

    // ---------------------------------------------------------------- queries

    /// @inheritdoc IInferenceSettlement
    function verifiedOutput(bytes32 requestId) public view returns (VerifiedOutput memory out) {
        Record storage record = _records[requestId];
        if (record.status == Status.None) return out;
        out.outputHash = record.outputHash;
        out.mode = record.mode;
        out.status = _statusOf(record);
        if (record.batchId == 0) {
            out.settledAt = record.settledAt;
        } else if (out.status == Status.Final) {
            out.settledAt = _batches[record.batchId].challengeDeadline + 1;
        }
    }

    /// @inheritdoc IInferenceSettlement
    function requireVerified(bytes32 requestId, IModelRegistry.Mode minMode, bool mustBeFinal)
        public
        view
        returns (bytes32 outputHash)
    {
        VerifiedOutput memory out = verifiedOutput(requestId);
        bool accepted = out.status == Status.Final || (!mustBeFinal && out.status == Status.Pending);
        if (!accepted) revert InferenceSettlementNotVerified(requestId, out.status);
        if (out.mode < minMode) revert InferenceSettlementModeTooWeak(requestId, out.mode, minMode);
        return out.outputHash;
    }

    /// @inheritdoc IInferenceSettlement
    function requireVerifiedReceipt(Receipt calldata receipt, IModelRegistry.Mode minMode, bool mustBeFinal)
        external
        view
    {
        requireVerified(receipt.requestId, minMode, mustBeFinal);
        if (_records[receipt.requestId].receiptHash != ReceiptHashing.structHash(receipt)) {
            revert InferenceSettlementReceiptMismatch(receipt.requestId);
        }
    }

    /// @inheritdoc IInferenceSettlement
    function isIncluded(uint256 batchId, BatchLeaf calldata leaf) external view returns (bool) {
        Batch storage b = _batches[batchId];
        return b.postedAt != 0 && _includes(b, leaf);
    }

    /// @inheritdoc IInferenceSettlement
    function batchStatus(uint256 batchId) public view returns (Status) {
        Batch storage b = _batches[batchId];
        if (b.postedAt == 0) return Status.None;
        if (b.rejected) return Status.Rejected;
        return block.timestamp <= b.challengeDeadline ? Status.Pending : Status.Final;
    }

    /// @inheritdoc IInferenceSettlement
    function batch(uint256 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    /// @inheritdoc IInferenceSettlement
    function receiptDigest(Receipt calldata receipt) external view returns (bytes32) {
        return _hashTypedDataV4(ReceiptHashing.structHash(receipt));
    }

    /// @notice The node that owes a pending request's evidence, its deadline, and the payment held for it.
    function pendingProof(bytes32 requestId) external view returns (PendingProof memory) {
        return _pendingProofs[requestId];
    }

    // ---------------------------------------------------------------- verification

    /// @dev Everything an individual settlement checks; returns the receipt's struct hash.
    function _verifyNow(Receipt calldata receipt, bytes calldata evidence) private view returns (bytes32 receiptHash) {
        _requireFree(receipt.requestId);
        _requireRecent(receipt.timestamp, block.timestamp);
        _requireAccepted(receipt.modelId, receipt.mode);
        receiptHash = ReceiptHashing.structHash(receipt);
        if (receipt.mode == IModelRegistry.Mode.Zkml) {
            (bytes memory signature, bytes memory zkProof, uint256[] memory inputs, uint256[] memory outputs) =
                abi.decode(evidence, (bytes, bytes, uint256[], uint256[]));
            _requireSignedBy(receiptHash, receipt.signer, signature);
            _requireProof(receipt, zkProof, inputs, outputs);
        } else {
            _requireSignedBy(receiptHash, receipt.signer, evidence);
        }
        _requireSignerActive(receipt);
    }

    function _requireFree(bytes32 requestId) private view {
        Record storage record = _records[requestId];
        if (record.status != Status.None && _statusOf(record) != Status.Rejected) {
            revert InferenceSettlementAlreadySettled(requestId);
        }
    }

    function _requireRecent(uint64 timestamp, uint256 asOf) private view {
        if (timestamp > asOf) revert InferenceSettlementReceiptFromFuture(timestamp);
        if (asOf - timestamp > maxReceiptAge) revert InferenceSettlementReceiptTooOld(timestamp, maxReceiptAge);
    }

    function _requireAccepted(bytes32 modelId, IModelRegistry.Mode mode) private view {
        if (models.acceptsMode(modelId, mode)) return;
        if (!models.exists(modelId)) revert InferenceSettlementUnknownModel(modelId);
        if (models.deprecatedAt(modelId) != 0) revert InferenceSettlementModelDeprecated(modelId);
        revert InferenceSettlementModeNotAccepted(modelId, mode);
    }

    function _requireSignedBy(bytes32 receiptHash, address signer, bytes memory signature) private view {
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(_hashTypedDataV4(receiptHash), signature);
        if (error != ECDSA.RecoverError.NoError || recovered != signer) revert InferenceSettlementBadSignature(signer);
    }

    function _requireSignerActive(Receipt calldata receipt) private view {
        if (!_signerActive(receipt)) revert InferenceSettlementSignerInactive(receipt.signer, receipt.timestamp);
    }

    /// @dev TEE keys are judged at the receipt's timestamp. Staking keeps no history of who was active, so
    /// VANILLA and ZKML signers are judged now.
    function _signerActive(Receipt calldata receipt) private view returns (bool) {
        if (receipt.mode == IModelRegistry.Mode.Tee) return teeRegistry.isActive(receipt.signer, receipt.timestamp);
        return staking.isActiveOperator(receipt.signer, INodeStaking.Role.InferenceNode);
    }

    function _requireProof(
        Receipt calldata receipt,
        bytes memory zkProof,
        uint256[] memory inputs,
        uint256[] memory outputs
    ) private view {
        if (keccak256(abi.encode(inputs)) != receipt.inputHash) revert InferenceSettlementInputNotBound(receipt.inputHash);
        if (keccak256(abi.encode(outputs)) != receipt.outputHash) {
            revert InferenceSettlementOutputNotBound(receipt.outputHash);
        }
        address verifier = models.zkVerifierOf(receipt.modelId);
        if (!IZkmlVerifier(verifier).verifyInference(zkProof, inputs, outputs)) {
            revert InferenceSettlementProofRejected(verifier);
        }
    }

    // ---------------------------------------------------------------- batch internals

    function _knownBatch(uint256 batchId) private view returns (Batch storage b) {
        b = _batches[batchId];
        if (b.postedAt == 0) revert InferenceSettlementUnknownBatch(batchId);
    }

    function _openBatch(uint256 batchId) private view returns (Batch storage b) {
        b = _knownBatch(batchId);
        if (b.rejected) revert InferenceSettlementBatchRejected(batchId);
        if (block.timestamp > b.challengeDeadline) revert InferenceSettlementChallengeWindowClosed(batchId);
    }

    function _includes(Batch storage b, BatchLeaf calldata leaf) private view returns (bool) {
        return MerkleProof.verifyCalldata(leaf.proof, b.root, ReceiptHashing.leaf(leaf.receipt, leaf.signature));
    }

    function _requireIncluded(Batch storage b, uint256 batchId, BatchLeaf calldata leaf) private view {
        if (!_includes(b, leaf)) revert InferenceSettlementNotIncluded(batchId, leaf.receipt.requestId);
    }

    /// @dev The first fault of a batched receipt, judged as of the batch's posting where history allows.
    function _findFault(Batch storage b, uint256 batchId, Receipt calldata receipt, bytes calldata signature)
        private
        view
        returns (Fault)
    {
        if (receipt.mode == IModelRegistry.Mode.Zkml) return Fault.ModeNotBatchable;
        if (!models.exists(receipt.modelId)) return Fault.UnknownModel;
        uint256 deprecatedAt = models.deprecatedAt(receipt.modelId);
        if (deprecatedAt != 0 && deprecatedAt < b.postedAt) return Fault.ModelDeprecated;
        if (!_policyAccepts(receipt.modelId, receipt.mode)) return Fault.ModeNotAccepted;
        uint64 timestamp = receipt.timestamp;
        if (timestamp > b.postedAt || b.postedAt - timestamp > maxReceiptAge) return Fault.TimestampOutOfBounds;
        (address recovered, ECDSA.RecoverError error,) =
            ECDSA.tryRecoverCalldata(_hashTypedDataV4(ReceiptHashing.structHash(receipt)), signature);
        if (error != ECDSA.RecoverError.NoError || recovered != receipt.signer) return Fault.BadSignature;
        if (!_signerActive(receipt)) return Fault.SignerInactive;
        if (_settledBefore(receipt.requestId, batchId, b.postedAt)) return Fault.AlreadySettled;
        return Fault.None;
    }

    /// @dev The model's policy, ignoring deprecation (judged separately, by date).
    function _policyAccepts(bytes32 modelId, IModelRegistry.Mode mode) private view returns (bool) {
        IModelRegistry.Model memory m = models.model(modelId);
        return (m.allowedModes & (1 << uint8(mode))) != 0 && mode >= m.minimumMode;
    }

    /// @dev True when another live record took `requestId` before this batch was posted.
    function _settledBefore(bytes32 requestId, uint256 batchId, uint256 postedAt) private view returns (bool) {
        Record storage record = _records[requestId];
        if (record.status == Status.None || record.batchId == batchId) return false;
        if (_statusOf(record) == Status.Rejected) return false;
        if (record.batchId != 0) return record.batchId < batchId;
        return record.recordedAt < postedAt;
    }

    function _reject(Batch storage b, uint256 batchId, bytes32 requestId, Fault fault) private {
        b.rejected = true;
        emit BatchChallenged(batchId, msg.sender, requestId, fault);
        staking.slash(b.relayer, relayerSlashBps, _evidenceId("rejected-batch", bytes32(batchId)), msg.sender);
    }

    // ---------------------------------------------------------------- async internals

    function _postPending(Receipt calldata receipt, uint256 held) private {
        if (receipt.mode == IModelRegistry.Mode.Vanilla) revert InferenceSettlementModeNotAsync(receipt.mode);
        _requireFree(receipt.requestId);
        _requireRecent(receipt.timestamp, block.timestamp);
        _requireAccepted(receipt.modelId, receipt.mode);
        (, address operator) = _payeeOf(receipt);
        if (operator != msg.sender) revert InferenceSettlementNotNode(msg.sender, receipt.signer);
        if (!staking.isActiveOperator(msg.sender, _asyncRole(receipt.mode))) {
            revert InferenceSettlementNotNode(msg.sender, receipt.signer);
        }

        uint48 deadline = (block.timestamp + proofWindow).toUint48();
        _records[receipt.requestId] = Record({
            outputHash: receipt.outputHash,
            receiptHash: ReceiptHashing.structHash(receipt),
            batchId: 0,
            recordedAt: block.timestamp.toUint48(),
            settledAt: 0,
            mode: receipt.mode,
            status: Status.Pending,
            paid: held != 0
        });
        _pendingProofs[receipt.requestId] =
            PendingProof({node: msg.sender, deadline: deadline, payer: receipt.payer, held: held.toUint96()});
        emit ProofRequested(receipt.requestId, msg.sender, deadline);
    }

    function _pendingRecord(bytes32 requestId) private view returns (Record storage record) {
        record = _records[requestId];
        if (record.status != Status.Pending || record.batchId != 0) revert InferenceSettlementNotPending(requestId);
    }

    function _asyncRole(IModelRegistry.Mode mode) private pure returns (INodeStaking.Role) {
        return mode == IModelRegistry.Mode.Tee ? INodeStaking.Role.TeeNode : INodeStaking.Role.InferenceNode;
    }

    // ---------------------------------------------------------------- shared internals

    function _recordFinal(Receipt calldata receipt, bytes32 receiptHash, bool paid) private {
        uint48 now48 = block.timestamp.toUint48();
        _records[receipt.requestId] = Record({
            outputHash: receipt.outputHash,
            receiptHash: receiptHash,
            batchId: 0,
            recordedAt: now48,
            settledAt: now48,
            mode: receipt.mode,
            status: Status.Final,
            paid: paid
        });
        emit ReceiptSettled(receipt.requestId, receipt.modelId, receipt.mode, receipt.outputHash);
    }

    function _statusOf(Record storage record) private view returns (Status) {
        return record.batchId == 0 ? record.status : batchStatus(record.batchId);
    }

    /// @dev Who is paid the node's share, and whose stakers earn: a TEE's payment address and operator, or
    /// the signing node itself.
    function _payeeOf(Receipt calldata receipt) private view returns (address payee, address operator) {
        if (receipt.mode != IModelRegistry.Mode.Tee) return (receipt.signer, receipt.signer);
        (operator, payee) = teeRegistry.payeeOf(receipt.signer);
        if (payee == address(0)) payee = operator;
    }

    function _evidenceId(string memory kind, bytes32 subject) private view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), kind, subject));
    }

    function _setChallengeWindow(uint256 window) private {
        uint256 unbondingDelay = staking.unbondingDelay();
        if (window < MIN_CHALLENGE_WINDOW || window >= unbondingDelay) {
            revert InferenceSettlementChallengeWindowOutOfBounds(window, MIN_CHALLENGE_WINDOW, unbondingDelay);
        }
        emit ChallengeWindowSet(challengeWindow, window);
        challengeWindow = window;
    }

    function _setProofWindow(uint256 window) private {
        if (window < MIN_PROOF_WINDOW || window > MAX_PROOF_WINDOW) revert InferenceSettlementProofWindowOutOfBounds(window);
        emit ProofWindowSet(proofWindow, window);
        proofWindow = window;
    }

    function _setMaxReceiptAge(uint256 maxAge) private {
        if (maxAge < MIN_RECEIPT_AGE || maxAge > MAX_RECEIPT_AGE) revert InferenceSettlementReceiptAgeOutOfBounds(maxAge);
        emit MaxReceiptAgeSet(maxReceiptAge, maxAge);
        maxReceiptAge = maxAge;
    }

    function _setSlashFractions(uint256 relayerBps, uint256 nodeBps) private {
        if (relayerBps == 0 || relayerBps > MAX_SLASH_BPS) revert InferenceSettlementSlashFractionOutOfBounds(relayerBps);
        if (nodeBps == 0 || nodeBps > MAX_SLASH_BPS) revert InferenceSettlementSlashFractionOutOfBounds(nodeBps);
        relayerSlashBps = relayerBps;
        nodeSlashBps = nodeBps;
        emit SlashFractionsSet(relayerBps, nodeBps);
    }
}
