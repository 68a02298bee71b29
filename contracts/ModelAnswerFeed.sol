// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IInferenceRequests} from "../interfaces/IInferenceRequests.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {InferenceConsumer} from "./InferenceConsumer.sol";

/// @title Model answer feed (example callback consumer)
/// @notice Asks one model questions and keeps its verified answers as they are pushed back: no one polls
/// settlement or submits the answer to this contract. What a fee does not spend, and the fee of a question that
/// expired unanswered, come back to the feed and pay toward the next question asked.
contract ModelAnswerFeed is InferenceConsumer {
    using SafeERC20 for IERC20;

    struct Answer {
        IModelRegistry.Mode mode;
        uint48 answeredAt;
        bytes32 outputHash;
    }

    IERC20 public immutable token;
    bytes32 public immutable modelId;
    IModelRegistry.Mode public immutable minMode;
    IInferenceRequests.Finality public immutable finality;
    uint32 public immutable callbackGasLimit;

    mapping(bytes32 requestId => address asker) public askerOf;
    mapping(bytes32 requestId => Answer) public answers;
    bytes32 public latestRequestId;

    event Asked(bytes32 indexed requestId, address indexed asker, bytes32 inputHash, uint256 fee);
    event Answered(bytes32 indexed requestId, IModelRegistry.Mode mode, bytes output);

    constructor(
        IInferenceRequests requests_,
        IERC20 token_,
        bytes32 modelId_,
        IModelRegistry.Mode minMode_,
        IInferenceRequests.Finality finality_,
        uint32 callbackGasLimit_
    ) InferenceConsumer(requests_) {
        token = token_;
        modelId = modelId_;
        minMode = minMode_;
        finality = finality_;
        callbackGasLimit = callbackGasLimit_;
        token_.forceApprove(address(requests_), type(uint256).max);
    }

    /// @notice Ask the model about `inputHash` for a fee of `fee` OPG, waiting at most `ttl` seconds for the
    /// answer. The feed's own balance (returned fees) pays first; the caller pays the rest.
    function ask(bytes32 inputHash, uint96 fee, uint40 ttl) external returns (bytes32 requestId) {
        uint256 balance = token.balanceOf(address(this));
        if (balance < fee) token.safeTransferFrom(msg.sender, address(this), fee - balance);
        requestId = requests.open(modelId, inputHash, minMode, finality, fee, callbackGasLimit, ttl);
        askerOf[requestId] = msg.sender;
        emit Asked(requestId, msg.sender, inputHash, fee);
    }

    function _onInferenceResult(bytes32 requestId, IModelRegistry.Mode mode, bytes calldata output) internal override {
        answers[requestId] = Answer(mode, uint48(block.timestamp), keccak256(output));
        // Ids grow with each question: a late answer to an older one does not replace the latest.
        if (uint256(requestId) > uint256(latestRequestId)) latestRequestId = requestId;
        emit Answered(requestId, mode, output);
    }
}
