// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {IBatchSettlement} from "../interfaces/IBatchSettlement.sol";
import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {INodeStaking} from "../interfaces/INodeStaking.sol";
import {ITEERegistry} from "../interfaces/ITEERegistry.sol";
import {ReceiptHashing} from "./ReceiptHashing.sol";

/// @title Batch settlement
/// @notice A staked relayer commits a Merkle root of signed VANILLA/TEE receipts (OpenZeppelin
/// StandardMerkleTree leaves of `[receipt fields, signature]`). The batch is pending for `challengeWindow`;
/// one faulty leaf shown by anyone rejects it and slashes the relayer, part of the slash going to the
/// challenger. The window is always shorter than the staking unbonding delay, so a relayer cannot unbond and
/// withdraw before a challenge lands.
///
/// A fault is a property of the leaf alone, judged from histories nobody can rewrite: the model as registered
/// and not deprecated before the receipt's timestamp, its fixed policy, the signer's activity at the receipt's
/// timestamp, and the receipt age limit in force before the posting. Nothing another party does (posting the same root, claiming the same
/// request first, a signer unbonding or being jailed later) can make an honest batch faulty. A request
/// already recorded elsewhere is not a fault either: its leaf simply cannot be claimed.
contract BatchSettlement is IBatchSettlement, AccessControl, ReentrancyGuardTransient {
    using Checkpoints for Checkpoints.Trace208;
    using SafeCast for uint256;

    uint256 public constant MIN_CHALLENGE_WINDOW = 5 minutes;
    uint256 public constant MIN_RECEIPT_AGE = 1 minutes;
    uint256 public constant MAX_RECEIPT_AGE = 30 days;
    uint256 public constant MAX_SLASH_BPS = 5_000;
    uint256 public constant MAX_BATCH_SIZE = 1 << 24;

    IInferenceSettlement public immutable settlement;
    INodeStaking public immutable staking;
    IModelRegistry public immutable models;
    ITEERegistry public immutable teeRegistry;

    uint256 public challengeWindow;
    uint256 public relayerSlashBps;
    uint256 public batchCount;

    mapping(uint256 batchId => Batch) private _batches;
    Checkpoints.Trace208 private _maxReceiptAge;

    event ChallengeWindowSet(uint256 previous, uint256 current);
    event MaxReceiptAgeSet(uint256 current);
    event RelayerSlashSet(uint256 relayerSlashBps);

    error BatchSettlementZeroAddress();
    error BatchSettlementNotRelayer(address account);
    error BatchSettlementEmptyBatch();
    error BatchSettlementBatchTooLarge(uint256 count, uint256 maximum);
    error BatchSettlementUnknownBatch(uint256 batchId);
    error BatchSettlementBatchRejected(uint256 batchId);
    error BatchSettlementChallengeWindowClosed(uint256 batchId);
    error BatchSettlementNotIncluded(uint256 batchId, bytes32 requestId);
    error BatchSettlementNoFault(uint256 batchId, bytes32 requestId);
    error BatchSettlementBadSignature(address signer);
    error BatchSettlementFaultyLeaf(uint256 batchId, bytes32 requestId, Fault fault);
    error BatchSettlementChallengeWindowOutOfBounds(uint256 window, uint256 minimum, uint256 unbondingDelay);
    error BatchSettlementReceiptAgeOutOfBounds(uint256 maxAge);
    error BatchSettlementSlashFractionOutOfBounds(uint256 fractionBps);

    /// @param settlement_ The settlement contract that holds request records and signs receipts' domain.
    /// @param admin Holds DEFAULT_ADMIN_ROLE (the timelock in production).
    /// @param challengeWindow_ Seconds a batch stays open to challenges; below the staking unbonding delay.
    /// @param maxReceiptAge_ Oldest receipt a batch may carry, in seconds before its posting.
    constructor(
        IInferenceSettlement settlement_,
        INodeStaking staking_,
        IModelRegistry models_,
        ITEERegistry teeRegistry_,
        address admin,
        uint256 challengeWindow_,
        uint256 maxReceiptAge_
    ) {
        if (
            address(settlement_) == address(0) || address(staking_) == address(0) || address(models_) == address(0)
                || address(teeRegistry_) == address(0) || admin == address(0)
        ) revert BatchSettlementZeroAddress();
        settlement = settlement_;
        staking = staking_;
        models = models_;
        teeRegistry = teeRegistry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setChallengeWindow(challengeWindow_);
        _setMaxReceiptAge(maxReceiptAge_);
        _setRelayerSlash(1_000);
    }

    // ---------------------------------------------------------------- admin

    /// @notice Seconds a new batch stays open to challenges: at least 5 minutes, below the unbonding delay.
    /// Batches already posted keep their deadline.
    function setChallengeWindow(uint256 window) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setChallengeWindow(window);
    }

    /// @notice Oldest receipt a new batch may carry (1 minute to 30 days). Batches already posted are judged
    /// by the limit in force when they were posted.
    function setMaxReceiptAge(uint256 maxAge) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMaxReceiptAge(maxAge);
    }

    /// @notice Fraction of stake slashed from a relayer whose batch is rejected.
    function setRelayerSlash(uint256 relayerBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setRelayerSlash(relayerBps);
    }

    // ---------------------------------------------------------------- relayers and challengers

    /// @inheritdoc IBatchSettlement
    function postBatch(bytes32 root, uint32 count, string calldata dataUri) external returns (uint256 batchId) {
        if (!staking.isActiveOperator(msg.sender, INodeStaking.Role.SettlementRelayer)) {
            revert BatchSettlementNotRelayer(msg.sender);
        }
        if (count == 0) revert BatchSettlementEmptyBatch();
        if (count > MAX_BATCH_SIZE) revert BatchSettlementBatchTooLarge(count, MAX_BATCH_SIZE);
        uint256 window = challengeWindow;
        // The staking delay may have been shortened since the window was set.
        uint256 unbondingDelay = staking.unbondingDelay();
        if (window >= unbondingDelay) {
            revert BatchSettlementChallengeWindowOutOfBounds(window, MIN_CHALLENGE_WINDOW, unbondingDelay);
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

    /// @inheritdoc IBatchSettlement
    function challenge(uint256 batchId, BatchLeaf calldata leaf) external nonReentrant returns (Fault fault) {
        Batch storage b = _knownBatch(batchId);
        if (block.timestamp > b.challengeDeadline) revert BatchSettlementChallengeWindowClosed(batchId);
        _requireIncluded(b, batchId, leaf);
        fault = faultOf(batchId, leaf);
        if (fault == Fault.None) revert BatchSettlementNoFault(batchId, leaf.receipt.requestId);

        b.rejected = true;
        emit BatchChallenged(batchId, msg.sender, leaf.receipt.requestId, fault);
        bytes32 evidenceId = keccak256(abi.encode(block.chainid, address(this), "rejected-batch", batchId));
        staking.slash(b.relayer, relayerSlashBps, evidenceId, msg.sender);
    }

    /// @inheritdoc IBatchSettlement
    function claimBatchReceipt(
        uint256 batchId,
        BatchLeaf calldata leaf,
        IInferenceSettlement.PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) external nonReentrant {
        Batch storage b = _knownBatch(batchId);
        _requireIncluded(b, batchId, leaf);
        // Every fault is checked here too, not left to challengers: a relayer that withholds its batch data must
        // not be able to turn a faulty leaf (one the node never signed, or signed with a key inactive at its
        // timestamp) into a record under someone's copied authorization once nobody can challenge it. A ZKML
        // leaf is left to the settlement, which never records one.
        Fault fault = faultOf(batchId, leaf);
        if (fault == Fault.BadSignature) revert BatchSettlementBadSignature(leaf.receipt.signer);
        if (fault != Fault.None && fault != Fault.ModeNotBatchable) {
            revert BatchSettlementFaultyLeaf(batchId, leaf.receipt.requestId, fault);
        }
        settlement.recordBatchReceipt(msg.sender, batchId, leaf.receipt, authorization, authorizationSignature);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IBatchSettlement
    function faultOf(uint256 batchId, BatchLeaf calldata leaf) public view returns (Fault) {
        uint256 postedAt = _batches[batchId].postedAt;
        IInferenceSettlement.Receipt calldata receipt = leaf.receipt;
        uint256 timestamp = receipt.timestamp;
        if (receipt.mode == IModelRegistry.Mode.Zkml) return Fault.ModeNotBatchable;
        // Strictly before the posting: whatever happens later in the receipt's own second cannot change it.
        if (timestamp >= postedAt || postedAt - timestamp > _maxReceiptAgeBefore(postedAt)) {
            return Fault.TimestampOutOfBounds;
        }
        if (!_signedBySigner(leaf)) return Fault.BadSignature;
        bool active = receipt.mode == IModelRegistry.Mode.Tee
            ? teeRegistry.isActive(receipt.signer, timestamp)
            : staking.wasActiveOperator(receipt.signer, INodeStaking.Role.InferenceNode, timestamp);
        if (!active) return Fault.SignerInactive;
        // The model is judged as the signer saw it: registered, and not yet deprecated, strictly before the
        // receipt's second. Registering a model later cannot clear a fault, deprecating it later cannot make one.
        uint256 registeredAt = models.registeredAt(receipt.modelId);
        if (registeredAt == 0 || registeredAt > timestamp) return Fault.UnknownModel;
        uint256 deprecatedAt = models.deprecatedAt(receipt.modelId);
        if (deprecatedAt != 0 && deprecatedAt < timestamp) return Fault.ModelDeprecated;
        if (!models.policyAccepts(receipt.modelId, receipt.mode)) return Fault.ModeNotAccepted;
        return Fault.None;
    }

    /// @inheritdoc IBatchSettlement
    function isIncluded(uint256 batchId, BatchLeaf calldata leaf) external view returns (bool) {
        Batch storage b = _batches[batchId];
        return b.postedAt != 0 && _includes(b, leaf);
    }

    /// @inheritdoc IBatchSettlement
    function batchStatus(uint256 batchId) external view returns (IInferenceSettlement.Status status) {
        (status,) = batchFinality(batchId);
    }

    /// @inheritdoc IBatchSettlement
    function batchFinality(uint256 batchId) public view returns (IInferenceSettlement.Status, uint48) {
        Batch storage b = _batches[batchId];
        if (b.postedAt == 0) return (IInferenceSettlement.Status.None, 0);
        if (b.rejected) return (IInferenceSettlement.Status.Rejected, 0);
        if (block.timestamp <= b.challengeDeadline) return (IInferenceSettlement.Status.Pending, 0);
        return (IInferenceSettlement.Status.Final, b.challengeDeadline + 1);
    }

    /// @inheritdoc IBatchSettlement
    function batch(uint256 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    /// @notice Oldest receipt a batch posted at `postedAt` may carry: the limit in force at the end of the
    /// second before, so a change mined later in the posting's own block cannot judge it.
    function maxReceiptAgeAt(uint256 postedAt) external view returns (uint256) {
        return _maxReceiptAgeBefore(postedAt);
    }

    // ---------------------------------------------------------------- internals

    function _maxReceiptAgeBefore(uint256 postedAt) private view returns (uint256 maxAge) {
        maxAge = postedAt == 0 ? 0 : _maxReceiptAge.upperLookupRecent((postedAt - 1).toUint48());
        // Posted in the second this contract was deployed: the most lenient limit, in the relayer's favour.
        if (maxAge == 0) maxAge = MAX_RECEIPT_AGE;
    }

    function _signedBySigner(BatchLeaf calldata leaf) private view returns (bool) {
        (address recovered, ECDSA.RecoverError error,) =
            ECDSA.tryRecoverCalldata(settlement.receiptDigest(leaf.receipt), leaf.signature);
        return error == ECDSA.RecoverError.NoError && recovered == leaf.receipt.signer;
    }

    function _knownBatch(uint256 batchId) private view returns (Batch storage b) {
        b = _batches[batchId];
        if (b.postedAt == 0) revert BatchSettlementUnknownBatch(batchId);
        if (b.rejected) revert BatchSettlementBatchRejected(batchId);
    }

    function _includes(Batch storage b, BatchLeaf calldata leaf) private view returns (bool) {
        return MerkleProof.verifyCalldata(leaf.proof, b.root, ReceiptHashing.leaf(leaf.receipt, leaf.signature));
    }

    function _requireIncluded(Batch storage b, uint256 batchId, BatchLeaf calldata leaf) private view {
        if (!_includes(b, leaf)) revert BatchSettlementNotIncluded(batchId, leaf.receipt.requestId);
    }

    function _setChallengeWindow(uint256 window) private {
        uint256 unbondingDelay = staking.unbondingDelay();
        if (window < MIN_CHALLENGE_WINDOW || window >= unbondingDelay) {
            revert BatchSettlementChallengeWindowOutOfBounds(window, MIN_CHALLENGE_WINDOW, unbondingDelay);
        }
        emit ChallengeWindowSet(challengeWindow, window);
        challengeWindow = window;
    }

    function _setMaxReceiptAge(uint256 maxAge) private {
        if (maxAge < MIN_RECEIPT_AGE || maxAge > MAX_RECEIPT_AGE) revert BatchSettlementReceiptAgeOutOfBounds(maxAge);
        _maxReceiptAge.push(block.timestamp.toUint48(), uint208(maxAge));
        emit MaxReceiptAgeSet(maxAge);
    }

    function _setRelayerSlash(uint256 relayerBps) private {
        if (relayerBps == 0 || relayerBps > MAX_SLASH_BPS) revert BatchSettlementSlashFractionOutOfBounds(relayerBps);
        relayerSlashBps = relayerBps;
        emit RelayerSlashSet(relayerBps);
    }
}
