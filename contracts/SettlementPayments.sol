// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {INodeStaking} from "../interfaces/INodeStaking.sol";
import {ReceiptHashing} from "./ReceiptHashing.sol";

/// @title Settlement payments
/// @notice x402-style consent and payment for request records. A request is recorded in its payer's namespace
/// only with the payer's consent: the payer's own transaction, or its signed `PaymentAuthorization` naming the
/// request, the node allowed to answer and be paid, the model, the input and a ceiling. The price the node
/// signed is charged from the payer's prepaid escrow when it covers it, otherwise from the payer's wallet
/// (ERC-20 allowance), and split between the node, the model owner (less the parent's royalty), the protocol
/// treasury and the node's stakers. Everyone withdraws what they are owed (pull), except the stakers: their
/// share is paid into `NodeStaking` as the price is split, so it goes to the stake bonded when it was earned,
/// at the commission in force then. Nothing is ever credited to the zero address.
abstract contract SettlementPayments is IInferenceSettlement, AccessControl, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint256 internal constant BPS = 10_000;
    /// @notice The node keeps at least half of every price.
    uint256 internal constant MAX_SHARES_BPS = 5_000;

    IERC20 public immutable token;
    INodeStaking public immutable staking;
    IModelRegistry public immutable models;

    address public treasury;
    uint16 public protocolFeeBps;
    uint16 public stakerRewardBps;
    uint16 public modelOwnerBps;

    /// @notice OPG a payer has prepaid; settlement draws on it first.
    mapping(address payer => uint256) public escrowOf;
    /// @notice OPG an account may withdraw: node fees, model fees, royalties, treasury fees, refunds are in escrow.
    mapping(address account => uint256) public proceedsOf;
    /// @notice A payer's current authorization epoch; authorizations signed for another value are void.
    mapping(address payer => uint256) public authorizationNonce;

    event FeeSplitSet(uint16 protocolFeeBps, uint16 stakerRewardBps, uint16 modelOwnerBps);
    event TreasurySet(address indexed previous, address indexed current);

    error InferenceSettlementZeroAddress();
    error InferenceSettlementZeroAmount();
    error InferenceSettlementFeeSplitTooHigh(uint256 totalBps, uint256 maximum);
    error InferenceSettlementInsufficientEscrow(uint256 available, uint256 requested);
    error InferenceSettlementNothingToWithdraw(address account);
    error InferenceSettlementZeroPayer(bytes32 requestId);
    error InferenceSettlementAuthorizationMismatch(bytes32 requestId);
    error InferenceSettlementAuthorizationExpired(uint64 deadline);
    error InferenceSettlementStaleAuthorization(uint256 nonce, uint256 currentNonce);
    error InferenceSettlementPriceAboveAuthorization(uint256 price, uint256 maxAmount);
    error InferenceSettlementBadAuthorizationSignature(address payer);

    constructor(IERC20 token_, INodeStaking staking_, IModelRegistry models_, address treasury_) {
        if (address(token_) == address(0) || address(staking_) == address(0) || address(models_) == address(0)) {
            revert InferenceSettlementZeroAddress();
        }
        token = token_;
        staking = staking_;
        models = models_;
        // Stakers' shares are paid with `notifyReward`, which pulls only from its caller: one standing allowance
        // saves an approval per payment.
        token_.forceApprove(address(staking_), type(uint256).max);
        _setTreasury(treasury_);
        _setFeeSplit(500, 1_000, 2_000);
    }

    // ---------------------------------------------------------------- admin

    /// @notice Set the shares of each price that go to the treasury, the node's stakers and the model owner;
    /// the node keeps the rest (at least half).
    function setFeeSplit(uint16 protocolFeeBps_, uint16 stakerRewardBps_, uint16 modelOwnerBps_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setFeeSplit(protocolFeeBps_, stakerRewardBps_, modelOwnerBps_);
    }

    /// @notice Where the protocol's share of each price is credited.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    // ---------------------------------------------------------------- payers

    /// @inheritdoc IInferenceSettlement
    function deposit(uint256 amount) external nonReentrant {
        if (amount == 0) revert InferenceSettlementZeroAmount();
        escrowOf[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IInferenceSettlement
    function withdrawEscrow(uint256 amount) external nonReentrant {
        if (amount == 0) revert InferenceSettlementZeroAmount();
        uint256 available = escrowOf[msg.sender];
        if (amount > available) revert InferenceSettlementInsufficientEscrow(available, amount);
        escrowOf[msg.sender] = available - amount;
        emit EscrowWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IInferenceSettlement
    function revokeAuthorizations() external {
        uint256 next = ++authorizationNonce[msg.sender];
        emit AuthorizationsRevoked(msg.sender, next);
    }

    // ---------------------------------------------------------------- payees

    /// @inheritdoc IInferenceSettlement
    function withdrawProceeds() external nonReentrant returns (uint256 amount) {
        amount = proceedsOf[msg.sender];
        if (amount == 0) revert InferenceSettlementNothingToWithdraw(msg.sender);
        proceedsOf[msg.sender] = 0;
        emit ProceedsWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IInferenceSettlement
    function paymentDigest(PaymentAuthorization calldata authorization) public view returns (bytes32) {
        return _hashTypedDataV4(ReceiptHashing.structHash(authorization));
    }

    // ---------------------------------------------------------------- internal

    /// @dev Revert unless `caller` may record `receipt` in its payer's namespace for `node`: the caller is the
    /// payer, or `authorization` is the payer's, current, and names exactly this payer, request, node, model,
    /// input and mode with a ceiling at or above the price. A record is written once per request, which is what makes an
    /// authorization single-use.
    function _requireConsent(
        address caller,
        Receipt calldata receipt,
        address node,
        PaymentAuthorization calldata authorization,
        bytes calldata authorizationSignature
    ) internal view {
        address payer = receipt.payer;
        if (payer == address(0)) revert InferenceSettlementZeroPayer(receipt.requestId);
        if (caller == payer) return;
        if (
            authorization.payer != payer || authorization.requestId != receipt.requestId || authorization.node != node
                || authorization.modelId != receipt.modelId || authorization.inputHash != receipt.inputHash
                || authorization.mode != receipt.mode
        ) revert InferenceSettlementAuthorizationMismatch(receipt.requestId);
        if (block.timestamp > authorization.deadline) revert InferenceSettlementAuthorizationExpired(authorization.deadline);
        uint256 current = authorizationNonce[payer];
        if (authorization.nonce != current) revert InferenceSettlementStaleAuthorization(authorization.nonce, current);
        if (receipt.price > authorization.maxAmount) {
            revert InferenceSettlementPriceAboveAuthorization(receipt.price, authorization.maxAmount);
        }
        if (!SignatureChecker.isValidSignatureNow(payer, paymentDigest(authorization), authorizationSignature)) {
            revert InferenceSettlementBadAuthorizationSignature(payer);
        }
    }

    /// @dev Move `price` from the payer (escrow first, else wallet) into this contract's custody.
    function _collect(bytes32 requestId, address payer, uint256 price) internal {
        uint256 escrow = escrowOf[payer];
        bool fromEscrow = escrow >= price;
        emit PaymentCharged(requestId, payer, price, fromEscrow);
        if (fromEscrow) {
            escrowOf[payer] = escrow - price;
        } else {
            token.safeTransferFrom(payer, address(this), price);
        }
    }

    /// @dev Give `amount`, held in custody for a request that will not complete, back to the payer's escrow.
    function _refund(bytes32 requestId, address payer, uint256 amount) internal {
        escrowOf[payer] += amount;
        emit PaymentRefunded(requestId, payer, amount);
    }

    /// @dev Credit `amount`, already in custody, to everyone owed a share of it.
    function _split(bytes32 requestId, bytes32 modelId, uint256 amount, address nodePayee, address operator) internal {
        (address modelOwner, uint16 royaltyBps, address royaltyRecipient) = models.paymentTerms(modelId);
        uint256 toTreasury = amount * protocolFeeBps / BPS;
        uint256 toStakers = amount * stakerRewardBps / BPS;
        uint256 ownerCut = amount * modelOwnerBps / BPS;
        uint256 toRoyalty = amount * modelOwnerBps * royaltyBps / (BPS * BPS);
        uint256 toNode = amount - toTreasury - toStakers - ownerCut;

        if (operator == address(0)) {
            (toTreasury, toStakers) = (toTreasury + toStakers, 0);
        } else if (toStakers != 0) {
            staking.notifyReward(operator, toStakers);
        }
        _credit(treasury, toTreasury);
        _credit(modelOwner, ownerCut - toRoyalty);
        _credit(royaltyRecipient, toRoyalty);
        _credit(nodePayee, toNode);
        emit PaymentSplit(requestId, nodePayee, toNode, ownerCut - toRoyalty, toRoyalty, toTreasury, toStakers);
    }

    /// @dev Credit `amount` to `account`, or to the treasury when there is no account to credit.
    function _credit(address account, uint256 amount) private {
        if (amount == 0) return;
        proceedsOf[account == address(0) ? treasury : account] += amount;
    }

    function _setFeeSplit(uint16 protocolFeeBps_, uint16 stakerRewardBps_, uint16 modelOwnerBps_) private {
        uint256 total = uint256(protocolFeeBps_) + stakerRewardBps_ + modelOwnerBps_;
        if (total > MAX_SHARES_BPS) revert InferenceSettlementFeeSplitTooHigh(total, MAX_SHARES_BPS);
        protocolFeeBps = protocolFeeBps_;
        stakerRewardBps = stakerRewardBps_;
        modelOwnerBps = modelOwnerBps_;
        emit FeeSplitSet(protocolFeeBps_, stakerRewardBps_, modelOwnerBps_);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert InferenceSettlementZeroAddress();
        emit TreasurySet(treasury, treasury_);
        treasury = treasury_;
    }
}
