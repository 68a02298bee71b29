// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceSettlement} from "./IInferenceSettlement.sol";
import {IModelRegistry} from "./IModelRegistry.sol";

/// @title Inference requests interface
/// @notice Requests opened on chain and answered by callback. A consumer opens a request (model, input hash,
/// minimum mode, finality, fee, callback gas); the fee is escrowed here; once a receipt answering it is final
/// in `InferenceSettlement`, the consumer's `onInferenceResult` is called with the verified output.
///
/// Every request lives in this contract's namespace of `InferenceSettlement` under an id this contract issues,
/// and this contract consents (as payer) only to receipts that answer an open request on its terms, so no one
/// can occupy or answer a request with anything else.
interface IInferenceRequests {
    /// @notice Which settlement paths may answer. `Immediate`: only `fulfill`, which settles and calls back in
    /// one transaction. `Delayed`: also a batch (the callback waits for its challenge window) or an
    /// asynchronous proof (the callback waits for the proof), answered by anyone under this contract's consent.
    enum Finality {
        Immediate,
        Delayed
    }

    /// @notice `Open`: waiting for an answer. `Delivered`: answered, callback succeeded. `CallbackFailed`:
    /// answered and paid, the callback reverted or ran out of gas (retry with `retryCallback`). `Refunded`:
    /// expired unanswered (the fee returned), or expired with its answer's output withheld (the unspent fee
    /// returned).
    enum State {
        None,
        Open,
        Delivered,
        CallbackFailed,
        Refunded
    }

    /// @notice A request as stored. The model and input are kept as one hash (`termsHash`); `RequestOpened`
    /// carries them in full. `answeredMode` and `outputHash` are kept only while a callback has failed (for
    /// `retryCallback`); a delivered answer is in `RequestAnswered` and the consumer's own state.
    struct Request {
        address consumer;
        uint40 expiresAt;
        uint32 callbackGasLimit;
        IModelRegistry.Mode minMode;
        Finality finality;
        State state;
        bytes32 termsHash;
        uint96 maxFee;
        IModelRegistry.Mode answeredMode;
        uint32 attempt;
        bytes32 outputHash;
    }

    event RequestOpened(
        bytes32 indexed requestId,
        address indexed consumer,
        bytes32 indexed modelId,
        bytes32 inputHash,
        IModelRegistry.Mode minMode,
        Finality finality,
        uint256 maxFee,
        uint32 callbackGasLimit,
        uint40 expiresAt
    );
    /// @notice The answer was taken: `price` went to settlement, `refund` back to the consumer.
    event RequestAnswered(
        bytes32 indexed requestId, address indexed signer, IModelRegistry.Mode mode, bytes32 outputHash, uint256 price, uint256 refund
    );
    event CallbackDelivered(bytes32 indexed requestId, address indexed consumer, address deliveredBy);
    event CallbackFailed(bytes32 indexed requestId, address indexed consumer, address deliveredBy);
    event RequestRefunded(bytes32 indexed requestId, address indexed consumer, uint256 amount);
    /// @notice An expired request answered (and paid) without its output ever being delivered was closed.
    event RequestClosedWithheld(bytes32 indexed requestId, address indexed consumer, uint256 refund);
    /// @notice The request's previous attempt failed (an asynchronous proof never came); answers now go under
    /// `settlementId`.
    event RequestReopened(bytes32 indexed requestId, uint32 attempt, bytes32 settlementId);

    /// @notice Open a request for `modelId` on `inputHash`, escrowing `maxFee` OPG (pulled from the caller, who
    /// is the consumer called back). Returns the request's id.
    function open(
        bytes32 modelId,
        bytes32 inputHash,
        IModelRegistry.Mode minMode,
        Finality finality,
        uint96 maxFee,
        uint32 callbackGasLimit,
        uint40 ttl
    ) external returns (bytes32 requestId);

    /// @notice Settle `receipt` for open request `requestId` now (this contract is its payer) and call back
    /// with `output`. Anyone may call; the receipt's signer or TEE operator is paid.
    function fulfill(bytes32 requestId, IInferenceSettlement.Receipt calldata receipt, bytes calldata evidence, bytes calldata output)
        external;

    /// @notice Call back with the answer of a `Delayed` request whose receipt is now final in settlement (a
    /// batch past its window, a delivered proof, or a settlement under this contract's consent). Anyone may call.
    function deliver(bytes32 requestId, IInferenceSettlement.Receipt calldata receipt, bytes calldata output) external;

    /// @notice Call back again after a failed callback. Anyone may call.
    function retryCallback(bytes32 requestId, bytes calldata output) external;

    /// @notice Return the fee of a request that expired unanswered to its consumer. Anyone may call.
    function refund(bytes32 requestId) external;

    /// @notice Close an expired request whose answer is final in settlement but was never delivered, its output
    /// withheld (`deliver` needs the output), a day after it expired or its answer became final, whichever is
    /// later: the unspent part of the fee goes back to the consumer. The
    /// `receipt` is the one settlement recorded (it is in the calldata of the transaction that recorded it).
    /// Anyone may call.
    function closeWithheld(bytes32 requestId, IInferenceSettlement.Receipt calldata receipt) external;

    /// @notice Move an open request whose current attempt failed in settlement (its asynchronous proof was
    /// missed and reported) to its next attempt, answerable again until it expires. Anyone may call.
    function reopen(bytes32 requestId) external;

    /// @notice The request id an answer to `requestId` must carry in settlement now: `requestId` with its
    /// attempt number in the upper 128 bits (the first attempt is `requestId` itself).
    function settlementIdOf(bytes32 requestId) external view returns (bytes32);

    /// @notice The least `maxFee` a request for `modelId` may escrow now: the model's registered price.
    function quoteFee(bytes32 modelId) external view returns (uint256);

    function requestOf(bytes32 requestId) external view returns (Request memory);
}
