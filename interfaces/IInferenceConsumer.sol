// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IModelRegistry} from "./IModelRegistry.sol";

/// @title Inference consumer interface
/// @notice What a contract implements to have the answers to its requests pushed to it by `InferenceRequests`.
interface IInferenceConsumer {
    /// @notice Called by `InferenceRequests`, and only by it, once the answer to `requestId` is verified and
    /// final. Runs under the request's callback gas limit; a revert is recorded and the call may be retried,
    /// settlement and payment are never undone.
    /// @param requestId The id `InferenceRequests.open` returned.
    /// @param mode The verification mode the answer was settled in (at least the request's minimum).
    /// @param output The answer: the bytes whose keccak-256 is the settled receipt's `outputHash` (for ZKML,
    /// `abi.encode(outputInstances)`; otherwise the output manifest's canonical JSON).
    function onInferenceResult(bytes32 requestId, IModelRegistry.Mode mode, bytes calldata output) external;
}
