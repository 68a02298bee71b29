// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";
import {IInferenceRequests} from "../interfaces/IInferenceRequests.sol";
import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";

/// @title Inference requests
/// @notice Requests opened on chain, with the fee escrowed up front, answered by a callback to the consumer
/// once a receipt on the request's terms is final in `InferenceSettlement`.
///
/// This contract is the payer of every request it issues, so each lives in its namespace of the settlement
/// contract under an id only it hands out: `settlementIdOf(requestId)`, the request id with its attempt number in
/// the upper 128 bits. An attempt whose asynchronous proof failed is closed for good in settlement; `reopen` moves
/// the request to its next attempt, so a node that posts a result and never proves it is slashed without killing
/// the request. It consents to a record there in two ways only: by settling a
/// receipt itself (`fulfill`), after checking it against the request; or, for `Delayed` requests, through
/// ERC-1271 (`isValidSignature`), which accepts a payment authorization only for an open, unexpired request on
/// its model and input, at its minimum mode or stronger, for at most its fee.
///
/// The callback runs after settlement and payment, with the request's gas limit and without copying its
/// return data: a consumer that reverts, runs out of gas or returns a huge buffer cannot undo or block
/// either, and the call can be retried by anyone. A caller must forward enough gas for the whole limit, so
/// no one can make a callback fail by starving it.
contract InferenceRequests is IInferenceRequests, IERC1271, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint32 public constant MAX_CALLBACK_GAS = 2_000_000;
    uint40 public constant MIN_TTL = 1 minutes;
    uint40 public constant MAX_TTL = 30 days;
    /// @notice How long after expiry (or after its answer became final, if later) an answered request may still
    /// be delivered before `closeWithheld` can close it.
    uint256 public constant WITHHELD_GRACE = 1 days;
    /// @dev Gas kept back beyond the callback's limit: the call itself and, after a failure, recording the
    /// answer for a retry (up to three storage writes and an event).
    uint256 internal constant CALLBACK_RESERVE = 40_000;

    IInferenceSettlement public immutable settlement;
    IModelRegistry public immutable models;
    IERC20 public immutable token;

    uint256 public requestCount;
    mapping(bytes32 requestId => Request) private _requests;

    error InferenceRequestsUnknownModel(bytes32 modelId);
    error InferenceRequestsFeeBelowQuote(uint256 maxFee, uint256 quote);
    error InferenceRequestsCallbackGasOutOfBounds(uint32 callbackGasLimit, uint32 maximum);
    error InferenceRequestsTtlOutOfBounds(uint40 ttl);
    error InferenceRequestsNotOpen(bytes32 requestId, State state);
    error InferenceRequestsExpired(bytes32 requestId, uint40 expiresAt);
    error InferenceRequestsNotExpired(bytes32 requestId, uint40 expiresAt);
    error InferenceRequestsWrongRequest(bytes32 requestId);
    error InferenceRequestsWrongTerms(bytes32 requestId);
    error InferenceRequestsModeTooWeak(bytes32 requestId, IModelRegistry.Mode mode, IModelRegistry.Mode minMode);
    error InferenceRequestsPriceAboveFee(bytes32 requestId, uint256 price, uint256 maxFee);
    error InferenceRequestsWrongOutput(bytes32 requestId);
    error InferenceRequestsStillAnswering(bytes32 requestId, IInferenceSettlement.Status status);
    error InferenceRequestsPaymentHeld(bytes32 requestId);
    error InferenceRequestsMissedProofUnreported(bytes32 requestId);
    error InferenceRequestsDeliveryStillOpen(bytes32 requestId, uint256 until);
    error InferenceRequestsInsufficientGas(uint256 available, uint256 needed);
    error InferenceRequestsCallbackNotFailed(bytes32 requestId, State state);
    error InferenceRequestsAttemptNotFailed(bytes32 requestId, IInferenceSettlement.Status status);

    constructor(IInferenceSettlement settlement_, IModelRegistry models_, IERC20 token_) {
        settlement = settlement_;
        models = models_;
        token = token_;
        // Fees are deposited into this contract's escrow in settlement as requests open.
        token_.forceApprove(address(settlement_), type(uint256).max);
    }

    /// @inheritdoc IInferenceRequests
    function open(
        bytes32 modelId,
        bytes32 inputHash,
        IModelRegistry.Mode minMode,
        Finality finality,
        uint96 maxFee,
        uint32 callbackGasLimit,
        uint40 ttl
    ) external returns (bytes32 requestId) {
        IModelRegistry.Refusal refusal = models.refusalOf(modelId, minMode);
        if (refusal == IModelRegistry.Refusal.UnknownModel || refusal == IModelRegistry.Refusal.Deprecated) {
            revert InferenceRequestsUnknownModel(modelId);
        }
        uint256 quote = quoteFee(modelId);
        if (maxFee < quote) revert InferenceRequestsFeeBelowQuote(maxFee, quote);
        if (callbackGasLimit > MAX_CALLBACK_GAS) {
            revert InferenceRequestsCallbackGasOutOfBounds(callbackGasLimit, MAX_CALLBACK_GAS);
        }
        if (ttl < MIN_TTL || ttl > MAX_TTL) revert InferenceRequestsTtlOutOfBounds(ttl);

        requestId = bytes32(++requestCount);
        uint40 expiresAt = uint40(block.timestamp) + ttl;
        Request storage request = _requests[requestId];
        request.consumer = msg.sender;
        request.expiresAt = expiresAt;
        request.callbackGasLimit = callbackGasLimit;
        request.minMode = minMode;
        request.finality = finality;
        request.state = State.Open;
        request.termsHash = _termsHash(modelId, inputHash);
        request.maxFee = maxFee;
        emit RequestOpened(
            requestId, msg.sender, modelId, inputHash, minMode, finality, maxFee, callbackGasLimit, expiresAt
        );
        if (maxFee != 0) {
            token.safeTransferFrom(msg.sender, address(this), maxFee);
            settlement.deposit(maxFee);
        }
    }

    /// @inheritdoc IInferenceRequests
    function fulfill(
        bytes32 requestId,
        IInferenceSettlement.Receipt calldata receipt,
        bytes calldata evidence,
        bytes calldata output
    ) external nonReentrant {
        Request storage request = _open(requestId);
        if (block.timestamp > request.expiresAt) revert InferenceRequestsExpired(requestId, request.expiresAt);
        _requireAnswers(requestId, request, receipt, output);
        settlement.settle(receipt, evidence);
        _answer(requestId, request, receipt, output);
    }

    /// @inheritdoc IInferenceRequests
    function deliver(bytes32 requestId, IInferenceSettlement.Receipt calldata receipt, bytes calldata output)
        external
        nonReentrant
    {
        Request storage request = _open(requestId);
        _requireAnswers(requestId, request, receipt, output);
        settlement.requireVerifiedReceipt(receipt, request.minMode, true);
        // A batched answer's payment may still be held; release it so the node is paid with the callback.
        if (settlement.custodyOf(address(this), receipt.requestId).held != 0) settlement.releaseBatchPayment(receipt);
        _answer(requestId, request, receipt, output);
    }

    /// @inheritdoc IInferenceRequests
    function retryCallback(bytes32 requestId, bytes calldata output) external nonReentrant {
        Request storage request = _requests[requestId];
        if (request.state != State.CallbackFailed) revert InferenceRequestsCallbackNotFailed(requestId, request.state);
        if (keccak256(output) != request.outputHash) revert InferenceRequestsWrongOutput(requestId);
        _callBack(requestId, request, request.answeredMode, request.outputHash, output);
    }

    /// @inheritdoc IInferenceRequests
    function refund(bytes32 requestId) external nonReentrant {
        Request storage request = _open(requestId);
        IInferenceSettlement.Status status = _settledStatus(requestId, request);
        if (status == IInferenceSettlement.Status.Pending || status == IInferenceSettlement.Status.Final) {
            revert InferenceRequestsStillAnswering(requestId, status);
        }
        if (block.timestamp <= request.expiresAt) revert InferenceRequestsNotExpired(requestId, request.expiresAt);
        _requireNothingHeld(requestId, request, status);

        request.state = State.Refunded;
        uint256 amount = request.maxFee;
        emit RequestRefunded(requestId, request.consumer, amount);
        _payOut(request.consumer, amount);
    }

    /// @inheritdoc IInferenceRequests
    function closeWithheld(bytes32 requestId, IInferenceSettlement.Receipt calldata receipt) external nonReentrant {
        Request storage request = _open(requestId);
        if (block.timestamp <= request.expiresAt) revert InferenceRequestsNotExpired(requestId, request.expiresAt);
        if (receipt.payer != address(this) || receipt.requestId != _settlementId(requestId, request.attempt)) {
            revert InferenceRequestsWrongRequest(requestId);
        }
        // Exactly the receipt settlement holds as final for this attempt, so its price is what was charged.
        uint256 settledAt = settlement.requireVerifiedReceipt(receipt, request.minMode, true);
        // An answer that became final near or after expiry still has a day to be delivered: nobody can close
        // the request just ahead of its delivery.
        uint256 latest = settledAt > request.expiresAt ? settledAt : request.expiresAt;
        if (block.timestamp <= latest + WITHHELD_GRACE) {
            revert InferenceRequestsDeliveryStillOpen(requestId, latest + WITHHELD_GRACE);
        }
        request.state = State.Refunded;
        uint256 rest = request.maxFee - receipt.price;
        emit RequestClosedWithheld(requestId, request.consumer, rest);
        _payOut(request.consumer, rest);
    }

    /// @inheritdoc IInferenceRequests
    function reopen(bytes32 requestId) external {
        Request storage request = _open(requestId);
        IInferenceSettlement.Status status = _settledStatus(requestId, request);
        if (status != IInferenceSettlement.Status.Failed) revert InferenceRequestsAttemptNotFailed(requestId, status);
        _requireNothingHeld(requestId, request, status);
        uint32 attempt = ++request.attempt;
        emit RequestReopened(requestId, attempt, settlementIdOf(requestId));
    }

    /// @notice ERC-1271: this contract's consent, as payer, to a `PaymentAuthorization` passed as
    /// `abi.encode(authorization)`: it must hash to `digest` under settlement's domain and answer an open,
    /// unexpired `Delayed` request on its model and input, at its minimum mode or stronger, for at most its fee.
    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        if (msg.sender != address(settlement) || signature.length != 9 * 32) return bytes4(0xffffffff);
        IInferenceSettlement.PaymentAuthorization memory authorization =
            abi.decode(signature, (IInferenceSettlement.PaymentAuthorization));
        bytes32 requestId = bytes32(uint256(uint128(uint256(authorization.requestId))));
        Request storage request = _requests[requestId];
        bool consents = authorization.requestId == _settlementId(requestId, request.attempt) && request.state == State.Open && request.finality == Finality.Delayed
            && block.timestamp <= request.expiresAt && authorization.payer == address(this)
            && request.termsHash == _termsHash(authorization.modelId, authorization.inputHash)
            && authorization.mode >= request.minMode && authorization.maxAmount <= request.maxFee
            && settlement.paymentDigest(authorization) == digest;
        if (!consents) return bytes4(0xffffffff);
        return IERC1271.isValidSignature.selector;
    }

    /// @inheritdoc IInferenceRequests
    function quoteFee(bytes32 modelId) public view returns (uint256) {
        return models.model(modelId).price;
    }

    /// @inheritdoc IInferenceRequests
    function settlementIdOf(bytes32 requestId) public view returns (bytes32) {
        return _settlementId(requestId, _requests[requestId].attempt);
    }

    /// @inheritdoc IInferenceRequests
    function requestOf(bytes32 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    function _settlementId(bytes32 requestId, uint32 attempt) private pure returns (bytes32) {
        return bytes32((uint256(attempt) << 128) | uint256(requestId));
    }

    /// @dev Where the current attempt of `request` stands in settlement.
    function _settledStatus(bytes32 requestId, Request storage request)
        private
        view
        returns (IInferenceSettlement.Status)
    {
        return settlement.recordOf(address(this), _settlementId(requestId, request.attempt)).status;
    }

    /// @dev A payment held for the current attempt comes back to this contract before the request moves on: by
    /// `releaseBatchPayment` for a rejected batch, by `reportMissedProof` for an overdue proof (anyone may call
    /// either).
    function _requireNothingHeld(bytes32 requestId, Request storage request, IInferenceSettlement.Status status)
        private
        view
    {
        if (settlement.custodyOf(address(this), _settlementId(requestId, request.attempt)).held != 0) {
            if (status == IInferenceSettlement.Status.Failed) revert InferenceRequestsMissedProofUnreported(requestId);
            revert InferenceRequestsPaymentHeld(requestId);
        }
    }

    function _open(bytes32 requestId) private view returns (Request storage request) {
        request = _requests[requestId];
        if (request.state != State.Open) revert InferenceRequestsNotOpen(requestId, request.state);
    }

    /// @dev `receipt` answers `request` on its terms, and `output` is what it settles.
    function _requireAnswers(
        bytes32 requestId,
        Request storage request,
        IInferenceSettlement.Receipt calldata receipt,
        bytes calldata output
    ) private view {
        if (receipt.payer != address(this) || receipt.requestId != _settlementId(requestId, request.attempt)) {
            revert InferenceRequestsWrongRequest(requestId);
        }
        if (_termsHash(receipt.modelId, receipt.inputHash) != request.termsHash) {
            revert InferenceRequestsWrongTerms(requestId);
        }
        if (receipt.mode < request.minMode) revert InferenceRequestsModeTooWeak(requestId, receipt.mode, request.minMode);
        if (receipt.price > request.maxFee) revert InferenceRequestsPriceAboveFee(requestId, receipt.price, request.maxFee);
        if (keccak256(output) != receipt.outputHash) revert InferenceRequestsWrongOutput(requestId);
    }

    /// @dev Close `request` on `receipt` (settled and final), return the unspent fee, then call back.
    function _answer(
        bytes32 requestId,
        Request storage request,
        IInferenceSettlement.Receipt calldata receipt,
        bytes calldata output
    ) private {
        uint256 rest = request.maxFee - receipt.price;
        request.state = State.Delivered;
        emit RequestAnswered(requestId, receipt.signer, receipt.mode, receipt.outputHash, receipt.price, rest);
        _payOut(request.consumer, rest);
        _callBack(requestId, request, receipt.mode, receipt.outputHash, output);
    }

    /// @dev The answer is stored only when the callback fails, for `retryCallback`: a delivered one is in the
    /// events.
    function _callBack(
        bytes32 requestId,
        Request storage request,
        IModelRegistry.Mode mode,
        bytes32 outputHash,
        bytes calldata output
    ) private {
        uint256 gasLimit = request.callbackGasLimit;
        address consumer = request.consumer;
        request.state = State.Delivered;
        bytes memory data = abi.encodeCall(IInferenceConsumer.onInferenceResult, (requestId, mode, output));
        // A call receives at most 63/64 of the gas left (EIP-150): ask for enough that the consumer gets its
        // whole limit, or a caller could make the callback fail on purpose.
        uint256 needed = gasLimit + gasLimit / 63 + CALLBACK_RESERVE;
        if (gasleft() < needed) revert InferenceRequestsInsufficientGas(gasleft(), needed);
        bool success;
        assembly ("memory-safe") {
            success := call(gasLimit, consumer, 0, add(data, 0x20), mload(data), 0, 0)
        }
        if (success) {
            if (request.outputHash != 0) (request.answeredMode, request.outputHash) = (IModelRegistry.Mode(0), 0);
            emit CallbackDelivered(requestId, consumer, msg.sender);
            return;
        }
        // Less than 1/63 of the limit left means the consumer was given less than its limit (the check above
        // cannot price every cost before the call): the failure is the caller's, so nothing happened.
        if (gasleft() < gasLimit / 63) revert InferenceRequestsInsufficientGas(gasleft(), needed);
        request.state = State.CallbackFailed;
        request.answeredMode = mode;
        request.outputHash = outputHash;
        emit CallbackFailed(requestId, consumer, msg.sender);
    }

    /// @dev Pay `amount` out of this contract's escrow in settlement, where every fee is kept: settlement charges
    /// a price from escrow or from the wallet, never from both, so one pool in one place always covers an
    /// answer, and refunds of rejected or failed answers land back in it.
    function _payOut(address to, uint256 amount) private {
        if (amount != 0) {
            settlement.withdrawEscrow(amount);
            token.safeTransfer(to, amount);
        }
    }

    function _termsHash(bytes32 modelId, bytes32 inputHash) private pure returns (bytes32) {
        return keccak256(abi.encode(modelId, inputHash));
    }
}
