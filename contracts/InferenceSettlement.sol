// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IBatchSettlement} from "../interfaces/IBatchSettlement.sol";
import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {INodeStaking} from "../interfaces/INodeStaking.sol";
import {ITEERegistry} from "../interfaces/ITEERegistry.sol";
import {IZkmlVerifier} from "../interfaces/IZkmlVerifier.sol";
import {ReceiptHashing} from "./ReceiptHashing.sol";
import {SettlementPayments} from "./SettlementPayments.sol";

/// @title Inference settlement
/// @notice The one source of truth for request records, and settlement of individual and asynchronous
/// receipts. Batches live in `BatchSettlement`, which records their leaves here.
///
/// - Individually: the payer submits a receipt (or anyone does, under the payer's authorization) with its
///   evidence, checked at once. VANILLA: signed by a node that was an active staked inference node at the
///   receipt's timestamp. TEE: signed by a TEE key `TEERegistry.isActive` at the receipt's timestamp. ZKML:
///   signed by such a node and proven by the model's verifier, with the proof's public instances bound to the
///   receipt's input and output hashes.
/// - Asynchronously: the node that owes the evidence posts a TEE or ZKML result as pending and delivers it
///   within `proofWindow`; otherwise the request fails (it reads as failed as soon as it is overdue), the node
///   is slashed once, and the payer refunded.
///
/// A record is one storage slot: the receipt's hash, the mode that was verified, its kind and one date. Each
/// `(payer, requestId)` is recorded at most once; only a rejected batch gives its request back.
contract InferenceSettlement is SettlementPayments {
    using SafeCast for uint256;

    uint256 internal constant MIN_PROOF_WINDOW = 1 minutes;
    uint256 internal constant MAX_PROOF_WINDOW = 7 days;
    /// @notice Least time between a proof deadline and the maturity of stake unbonded when it was posted, so a
    /// missed proof can always be reported before the node withdraws.
    uint256 public constant PROOF_REPORT_MARGIN = 1 hours;
    uint256 internal constant MIN_RECEIPT_AGE = 1 minutes;
    uint256 internal constant MAX_RECEIPT_AGE = 30 days;
    uint256 public constant MAX_SLASH_BPS = 5_000;

    /// @dev How a record was made, which says where its status comes from (see `_statusOf`).
    enum Kind {
        None,
        Final,
        Pending,
        Failed,
        Batch,
        BatchHeld
    }

    /// @dev One slot. `data` is the settlement time (Final), the proof deadline (Pending, Failed) or the batch
    /// id (Batch, BatchHeld: the batch's status is the record's).
    struct Record {
        bytes24 receiptHash;
        IModelRegistry.Mode mode;
        Kind kind;
        uint48 data;
    }

    ITEERegistry public immutable teeRegistry;
    IBatchSettlement public batchSettlement;

    uint256 public proofWindow;
    uint256 public maxReceiptAge;
    uint256 public nodeSlashBps;

    mapping(bytes32 key => Record) private _records;
    mapping(bytes32 key => Custody) private _custody;

    event ProofWindowSet(uint256 previous, uint256 current);
    event MaxReceiptAgeSet(uint256 previous, uint256 current);
    event NodeSlashSet(uint256 nodeSlashBps);

    error InferenceSettlementAlreadySettled(address payer, bytes32 requestId);
    error InferenceSettlementNotPayer(address caller, address payer);
    error InferenceSettlementReceiptFromFuture(uint64 timestamp);
    error InferenceSettlementReceiptTooOld(uint64 timestamp, uint256 maxAge);
    error InferenceSettlementUnknownModel(bytes32 modelId);
    error InferenceSettlementModelDeprecated(bytes32 modelId);
    error InferenceSettlementModeNotAccepted(bytes32 modelId, IModelRegistry.Mode mode);
    error InferenceSettlementModeNotBatchable(IModelRegistry.Mode mode);
    error InferenceSettlementModeNotAsync(IModelRegistry.Mode mode);
    error InferenceSettlementBadSignature(address signer);
    error InferenceSettlementSignerInactive(address signer, uint64 timestamp);
    error InferenceSettlementUnknownSigner(address signer);
    error InferenceSettlementInputNotBound(bytes32 inputHash);
    error InferenceSettlementOutputNotBound(bytes32 outputHash);
    error InferenceSettlementProofRejected(address verifier);
    error InferenceSettlementNotNode(address account, address node);
    error InferenceSettlementNotPending(address payer, bytes32 requestId);
    error InferenceSettlementReceiptMismatch(bytes32 requestId);
    error InferenceSettlementProofDeadlinePassed(bytes32 requestId, uint48 deadline);
    error InferenceSettlementProofNotDue(bytes32 requestId, uint48 deadline);
    error InferenceSettlementNotVerified(bytes32 requestId, Status status);
    error InferenceSettlementModeTooWeak(bytes32 requestId, IModelRegistry.Mode mode, IModelRegistry.Mode minMode);
    error InferenceSettlementNotBatchSettlement(address caller);
    error InferenceSettlementBatchSettlementAlreadySet(address current);
    error InferenceSettlementNothingHeld(bytes32 requestId);
    error InferenceSettlementBatchNotFinal(uint256 batchId);
    error InferenceSettlementProofWindowOutOfBounds(uint256 window, uint256 unbondingDelay);
    error InferenceSettlementReceiptAgeOutOfBounds(uint256 maxAge);
    error InferenceSettlementSlashFractionOutOfBounds(uint256 fractionBps);

    /// @param admin Holds DEFAULT_ADMIN_ROLE (the timelock in production): parameters, fee split, treasury.
    /// @param proofWindow_ Seconds a node has to deliver the evidence of a pending result; at least
    /// `PROOF_REPORT_MARGIN` shorter than the staking unbonding delay.
    /// @param maxReceiptAge_ Oldest receipt accepted, in seconds before its settlement.
    constructor(
        IERC20 token_,
        INodeStaking staking_,
        IModelRegistry models_,
        ITEERegistry teeRegistry_,
        address treasury_,
        address admin,
        uint256 proofWindow_,
        uint256 maxReceiptAge_
    ) EIP712("InferenceSettlement", "1") SettlementPayments(token_, staking_, models_, treasury_) {
        if (address(teeRegistry_) == address(0) || admin == address(0)) revert InferenceSettlementZeroAddress();
        teeRegistry = teeRegistry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setProofWindow(proofWindow_);
        _setMaxReceiptAge(maxReceiptAge_);
        _setNodeSlash(500);
    }

    // ---------------------------------------------------------------- admin

    /// @notice Connect the batch settlement contract whose leaves are recorded here; once, ever (its batch ids
    /// are part of the records).
    function setBatchSettlement(IBatchSettlement batchSettlement_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(batchSettlement) != address(0)) revert InferenceSettlementBatchSettlementAlreadySet(address(batchSettlement));
        if (address(batchSettlement_) == address(0)) revert InferenceSettlementZeroAddress();
        batchSettlement = batchSettlement_;
        emit BatchSettlementSet(address(batchSettlement_));
    }

    /// @notice Seconds a node has to deliver the evidence of a new pending result: 1 minute to 7 days, and at
    /// least `PROOF_REPORT_MARGIN` below the staking unbonding delay.
    function setProofWindow(uint256 window) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setProofWindow(window);
    }

    /// @notice Oldest receipt accepted, in seconds before its settlement (1 minute to 30 days).
    function setMaxReceiptAge(uint256 maxAge) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMaxReceiptAge(maxAge);
    }

    /// @notice Fraction of stake slashed from a node that misses a proof deadline.
    function setNodeSlash(uint256 nodeBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setNodeSlash(nodeBps);
    }

    // ---------------------------------------------------------------- individual

    /// @inheritdoc IInferenceSettlement
    function settle(Receipt calldata receipt, bytes calldata evidence) external nonReentrant {
        if (msg.sender != receipt.payer) revert InferenceSettlementNotPayer(msg.sender, receipt.payer);
        _settleNow(receipt, evidence);
    }

    /// @inheritdoc IInferenceSettlement
    function settleWithAuthorization(
        Receipt calldata receipt,
        bytes calldata evidence,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        (address node,) = _nodeAndPayee(receipt);
        _requireConsent(msg.sender, receipt, node, authorization, authorizationSignature);
        _settleNow(receipt, evidence);
    }

    // ---------------------------------------------------------------- asynchronous

    /// @inheritdoc IInferenceSettlement
    function postPending(
        Receipt calldata receipt,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        if (receipt.mode == IModelRegistry.Mode.Vanilla) revert InferenceSettlementModeNotAsync(receipt.mode);
        (address node,) = _nodeAndPayee(receipt);
        if (msg.sender != node) revert InferenceSettlementNotNode(msg.sender, node);
        INodeStaking.Role role =
            receipt.mode == IModelRegistry.Mode.Tee ? INodeStaking.Role.TeeNode : INodeStaking.Role.InferenceNode;
        if (!staking.isActiveOperator(node, role)) revert InferenceSettlementNotNode(msg.sender, node);
        _requireConsent(msg.sender, receipt, node, authorization, authorizationSignature);
        bytes32 key = _claimKey(receipt.payer, receipt.requestId);
        // Strictly before this second: evidence is judged at the receipt's timestamp, which must be history
        // that nothing later in this block (such as a slash of the node) can change.
        if (receipt.timestamp >= block.timestamp) revert InferenceSettlementReceiptFromFuture(receipt.timestamp);
        _requireRecent(receipt.timestamp);
        _requireAccepted(receipt.modelId, receipt.mode);
        // The TEE key is judged now exactly as its evidence will be, so a delivery can never be refused (and the
        // node slashed) for a reason that already held when the result was accepted.
        if (receipt.mode == IModelRegistry.Mode.Tee) _requireSignerActive(receipt);
        // The unbonding delay may have been shortened since the window was set.
        uint256 window = proofWindow;
        _requireProofWindowFits(window);

        uint48 deadline = (block.timestamp + window).toUint48();
        _records[key] = Record(_hashOf(receipt), receipt.mode, Kind.Pending, deadline);
        _custody[key] = Custody(node, receipt.price.toUint96());
        emit ProofRequested(receipt.requestId, receipt.payer, node, deadline);
        if (receipt.price != 0) _collect(receipt.requestId, receipt.payer, receipt.price);
    }

    /// @inheritdoc IInferenceSettlement
    function deliverProof(Receipt calldata receipt, bytes calldata evidence) external {
        bytes32 requestId = receipt.requestId;
        bytes32 key = _keyOf(receipt.payer, requestId);
        Record storage record = _pendingRecord(key, receipt.payer, requestId);
        if (block.timestamp > record.data) revert InferenceSettlementProofDeadlinePassed(requestId, record.data);
        bytes32 receiptHash = ReceiptHashing.structHash(receipt);
        if (record.receiptHash != bytes24(receiptHash)) revert InferenceSettlementReceiptMismatch(requestId);

        // Evidence is judged as of the receipt's timestamp: nothing that happened to the node since (a jail, a
        // revoked role) makes owed evidence undeliverable.
        if (receipt.mode == IModelRegistry.Mode.Tee) {
            _requireSignedBy(receiptHash, receipt.signer, evidence);
            _requireSignerActive(receipt);
        } else {
            (bytes memory zkProof, uint256[] memory inputs, uint256[] memory outputs) =
                abi.decode(evidence, (bytes, uint256[], uint256[]));
            _requireProof(receipt, zkProof, inputs, outputs);
        }

        record.kind = Kind.Final;
        record.data = block.timestamp.toUint48();
        uint256 held = _custody[key].held;
        delete _custody[key];
        emit ProofDelivered(requestId, receipt.payer, msg.sender);
        emit ReceiptSettled(requestId, receipt.payer, receipt.modelId, receipt.mode, receipt.outputHash, receipt.signer);
        if (held != 0) _pay(receipt, held);
    }

    /// @inheritdoc IInferenceSettlement
    function reportMissedProof(address payer, bytes32 requestId) external nonReentrant {
        bytes32 key = _keyOf(payer, requestId);
        Record storage record = _pendingRecord(key, payer, requestId);
        if (block.timestamp <= record.data) revert InferenceSettlementProofNotDue(requestId, record.data);

        record.kind = Kind.Failed;
        Custody memory custody = _custody[key];
        delete _custody[key];
        emit ProofMissed(requestId, payer, custody.node, custody.held);
        if (custody.held != 0) _refund(requestId, payer, custody.held);
        staking.slash(custody.node, nodeSlashBps, _evidenceId("missed-proof", key), msg.sender);
    }

    // ---------------------------------------------------------------- batch records

    /// @inheritdoc IInferenceSettlement
    function recordBatchReceipt(
        address caller,
        uint256 batchId,
        Receipt calldata receipt,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        if (msg.sender != address(batchSettlement)) revert InferenceSettlementNotBatchSettlement(msg.sender);
        // A batch cannot verify a proof, so a ZKML claim could never be recorded as verified.
        if (receipt.mode == IModelRegistry.Mode.Zkml) revert InferenceSettlementModeNotBatchable(receipt.mode);
        (address node,) = _nodeAndPayee(receipt);
        _requireConsent(caller, receipt, node, authorization, authorizationSignature);
        bytes32 key = _claimKey(receipt.payer, receipt.requestId);

        (Status batchState,) = batchSettlement.batchFinality(batchId);
        bool held = receipt.price != 0 && batchState == Status.Pending;
        _records[key] = Record(_hashOf(receipt), receipt.mode, held ? Kind.BatchHeld : Kind.Batch, batchId.toUint48());
        emit BatchReceiptRecorded(
            batchId, receipt.requestId, receipt.payer, receipt.modelId, receipt.mode, receipt.outputHash, receipt.signer
        );
        if (receipt.price == 0) return;
        _collect(receipt.requestId, receipt.payer, receipt.price);
        if (held) {
            _custody[key] = Custody(address(0), receipt.price.toUint96());
        } else {
            _pay(receipt, receipt.price);
        }
    }

    /// @inheritdoc IInferenceSettlement
    function releaseBatchPayment(Receipt calldata receipt) external {
        bytes32 key = _keyOf(receipt.payer, receipt.requestId);
        Record storage record = _records[key];
        if (record.kind != Kind.BatchHeld) revert InferenceSettlementNothingHeld(receipt.requestId);
        if (record.receiptHash != _hashOf(receipt)) revert InferenceSettlementReceiptMismatch(receipt.requestId);
        (Status batchState,) = batchSettlement.batchFinality(record.data);
        if (batchState == Status.Pending) revert InferenceSettlementBatchNotFinal(record.data);

        record.kind = Kind.Batch;
        uint256 held = _custody[key].held;
        delete _custody[key];
        if (batchState == Status.Final) {
            _pay(receipt, held);
        } else {
            _refund(receipt.requestId, receipt.payer, held);
        }
    }

    // ---------------------------------------------------------------- queries

    /// @inheritdoc IInferenceSettlement
    function recordOf(address payer, bytes32 requestId) public view returns (RecordView memory view_) {
        Record memory record = _records[_keyOf(payer, requestId)];
        if (record.kind == Kind.None) return view_;
        (view_.status, view_.settledAt) = _statusOf(record);
        view_.mode = record.mode;
        view_.receiptHash = record.receiptHash;
    }

    /// @inheritdoc IInferenceSettlement
    function requireVerifiedReceipt(Receipt calldata receipt, IModelRegistry.Mode minMode, bool mustBeFinal)
        external
        view
        returns (uint48 settledAt)
    {
        RecordView memory view_ = recordOf(receipt.payer, receipt.requestId);
        bool accepted = view_.status == Status.Final || (!mustBeFinal && view_.status == Status.Pending);
        if (!accepted) revert InferenceSettlementNotVerified(receipt.requestId, view_.status);
        if (view_.receiptHash != _hashOf(receipt)) revert InferenceSettlementReceiptMismatch(receipt.requestId);
        if (view_.mode < minMode) revert InferenceSettlementModeTooWeak(receipt.requestId, view_.mode, minMode);
        return view_.settledAt;
    }

    /// @inheritdoc IInferenceSettlement
    function custodyOf(address payer, bytes32 requestId) external view returns (Custody memory) {
        return _custody[_keyOf(payer, requestId)];
    }

    /// @inheritdoc IInferenceSettlement
    function receiptDigest(Receipt calldata receipt) external view returns (bytes32) {
        return _hashTypedDataV4(ReceiptHashing.structHash(receipt));
    }

    // ---------------------------------------------------------------- internals

    /// @dev Everything an individual settlement checks, then the record, then the payment.
    function _settleNow(Receipt calldata receipt, bytes calldata evidence) private {
        bytes32 key = _claimKey(receipt.payer, receipt.requestId);
        _requireRecent(receipt.timestamp);
        _requireAccepted(receipt.modelId, receipt.mode);
        bytes32 receiptHash = ReceiptHashing.structHash(receipt);
        if (receipt.mode == IModelRegistry.Mode.Zkml) {
            (bytes memory signature, bytes memory zkProof, uint256[] memory inputs, uint256[] memory outputs) =
                abi.decode(evidence, (bytes, bytes, uint256[], uint256[]));
            _requireSignedBy(receiptHash, receipt.signer, signature);
            _requireProof(receipt, zkProof, inputs, outputs);
        } else {
            _requireSignedBy(receiptHash, receipt.signer, evidence);
        }
        _requireSignerActive(receipt);

        _records[key] = Record(bytes24(receiptHash), receipt.mode, Kind.Final, block.timestamp.toUint48());
        emit ReceiptSettled(
            receipt.requestId, receipt.payer, receipt.modelId, receipt.mode, receipt.outputHash, receipt.signer
        );
        if (receipt.price != 0) {
            _collect(receipt.requestId, receipt.payer, receipt.price);
            _pay(receipt, receipt.price);
        }
    }

    /// @dev The record key of `requestId` in `payer`'s namespace.
    function _keyOf(address payer, bytes32 requestId) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0x00, payer)
            mstore(0x20, requestId)
            key := keccak256(0x00, 0x40)
        }
    }

    /// @dev The key of a request that may be recorded now: never recorded, or its batch was rejected (any
    /// payment still held for that rejected record goes back to the payer first).
    function _claimKey(address payer, bytes32 requestId) private returns (bytes32 key) {
        if (payer == address(0)) revert InferenceSettlementZeroPayer(requestId);
        key = _keyOf(payer, requestId);
        Record memory record = _records[key];
        if (record.kind == Kind.None) return key;
        (Status status,) = _statusOf(record);
        if (status != Status.Rejected) revert InferenceSettlementAlreadySettled(payer, requestId);
        if (record.kind == Kind.BatchHeld) {
            uint256 held = _custody[key].held;
            delete _custody[key];
            _refund(requestId, payer, held);
        }
    }

    function _pendingRecord(bytes32 key, address payer, bytes32 requestId) private view returns (Record storage record) {
        record = _records[key];
        if (record.kind != Kind.Pending) revert InferenceSettlementNotPending(payer, requestId);
    }

    /// @dev A record's status and settlement time. An overdue pending proof reads as failed at once.
    function _statusOf(Record memory record) private view returns (Status status, uint48 settledAt) {
        Kind kind = record.kind;
        if (kind == Kind.Final) return (Status.Final, record.data);
        if (kind == Kind.Pending) return (block.timestamp > record.data ? Status.Failed : Status.Pending, 0);
        if (kind == Kind.Failed) return (Status.Failed, 0);
        return batchSettlement.batchFinality(record.data);
    }

    function _hashOf(Receipt calldata receipt) private pure returns (bytes24) {
        return bytes24(ReceiptHashing.structHash(receipt));
    }

    function _requireRecent(uint64 timestamp) private view {
        if (timestamp > block.timestamp) revert InferenceSettlementReceiptFromFuture(timestamp);
        if (block.timestamp - timestamp > maxReceiptAge) revert InferenceSettlementReceiptTooOld(timestamp, maxReceiptAge);
    }

    function _requireAccepted(bytes32 modelId, IModelRegistry.Mode mode) private view {
        IModelRegistry.Refusal refusal = models.refusalOf(modelId, mode);
        if (refusal == IModelRegistry.Refusal.None) return;
        if (refusal == IModelRegistry.Refusal.UnknownModel) revert InferenceSettlementUnknownModel(modelId);
        if (refusal == IModelRegistry.Refusal.Deprecated) revert InferenceSettlementModelDeprecated(modelId);
        revert InferenceSettlementModeNotAccepted(modelId, mode);
    }

    function _requireSignedBy(bytes32 receiptHash, address signer, bytes memory signature) private view {
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(_hashTypedDataV4(receiptHash), signature);
        if (error != ECDSA.RecoverError.NoError || recovered != signer) revert InferenceSettlementBadSignature(signer);
    }

    /// @dev Signers are judged at the receipt's timestamp: a TEE key by the TEE registry's history, a node by
    /// the staking activity history.
    function _requireSignerActive(Receipt calldata receipt) private view {
        bool active = receipt.mode == IModelRegistry.Mode.Tee
            ? teeRegistry.isActive(receipt.signer, receipt.timestamp)
            : staking.wasActiveOperator(receipt.signer, INodeStaking.Role.InferenceNode, receipt.timestamp);
        if (!active) revert InferenceSettlementSignerInactive(receipt.signer, receipt.timestamp);
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

    /// @dev Who answers for a receipt and who is paid its node share: a TEE's operator and payment address (the
    /// operator when it set none), or the signing node itself. An unknown TEE key has neither.
    function _nodeAndPayee(Receipt calldata receipt) private view returns (address node, address payee) {
        if (receipt.mode != IModelRegistry.Mode.Tee) return (receipt.signer, receipt.signer);
        (node, payee) = teeRegistry.payeeOf(receipt.signer);
        if (node == address(0)) revert InferenceSettlementUnknownSigner(receipt.signer);
        if (payee == address(0)) payee = node;
    }

    /// @dev Split `amount`, in custody, for `receipt`'s node and model.
    function _pay(Receipt calldata receipt, uint256 amount) private {
        (address node, address payee) = _nodeAndPayee(receipt);
        _split(receipt.requestId, receipt.modelId, amount, payee, node);
    }

    function _evidenceId(string memory kind, bytes32 subject) private view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), kind, subject));
    }

    function _requireProofWindowFits(uint256 window) private view {
        uint256 unbondingDelay = staking.unbondingDelay();
        if (window < MIN_PROOF_WINDOW || window > MAX_PROOF_WINDOW || window + PROOF_REPORT_MARGIN > unbondingDelay) {
            revert InferenceSettlementProofWindowOutOfBounds(window, unbondingDelay);
        }
    }

    function _setProofWindow(uint256 window) private {
        _requireProofWindowFits(window);
        emit ProofWindowSet(proofWindow, window);
        proofWindow = window;
    }

    function _setMaxReceiptAge(uint256 maxAge) private {
        if (maxAge < MIN_RECEIPT_AGE || maxAge > MAX_RECEIPT_AGE) revert InferenceSettlementReceiptAgeOutOfBounds(maxAge);
        emit MaxReceiptAgeSet(maxReceiptAge, maxAge);
        maxReceiptAge = maxAge;
    }

    function _setNodeSlash(uint256 nodeBps) private {
        if (nodeBps == 0 || nodeBps > MAX_SLASH_BPS) revert InferenceSettlementSlashFractionOutOfBounds(nodeBps);
        nodeSlashBps = nodeBps;
        emit NodeSlashSet(nodeBps);
    }
}
