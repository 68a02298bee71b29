// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";
import {IInferenceRequests} from "../interfaces/IInferenceRequests.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";

/// @title Inference consumer base
/// @notice Inherit to receive answers from `InferenceRequests`: implement `_onInferenceResult`. Only the
/// requests contract given at construction can call it back, so a caller cannot hand the consumer an answer
/// that was never settled.
abstract contract InferenceConsumer is IInferenceConsumer {
    IInferenceRequests public immutable requests;

    error InferenceConsumerNotRequests(address caller);

    constructor(IInferenceRequests requests_) {
        requests = requests_;
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(bytes32 requestId, IModelRegistry.Mode mode, bytes calldata output) external {
        if (msg.sender != address(requests)) revert InferenceConsumerNotRequests(msg.sender);
        _onInferenceResult(requestId, mode, output);
    }

    /// @dev The verified, final answer to `requestId`, which this contract opened.
    function _onInferenceResult(bytes32 requestId, IModelRegistry.Mode mode, bytes calldata output) internal virtual;
}
