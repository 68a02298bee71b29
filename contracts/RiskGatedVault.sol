// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";

/// @title Risk-gated vault (example consumer)
/// @notice Releases a payout only on a risk score that a given model produced for exactly this payout,
/// covered by TEE or a stronger mode, and settled for good.
///
/// Each application fixes the request id and input hash the model must answer under, so an answer about
/// anything else cannot be used. The model answers with the score as the whole text of its output manifest;
/// the vault rebuilds that manifest's canonical JSON (`opgkit.manifest`) from the score and the usage the
/// node reported, and checks it hashes to the settled output hash. The score is the digits between fixed
/// delimiters, so no other score can produce the same bytes.
contract RiskGatedVault is Ownable {
    using SafeERC20 for IERC20;

    struct Application {
        address recipient;
        uint96 amount;
        bool released;
    }

    IInferenceSettlement public immutable settlement;
    IERC20 public immutable token;
    bytes32 public immutable modelId;
    IModelRegistry.Mode public immutable minMode;
    uint256 public immutable maxRiskScore;

    uint256 public applicationCount;
    mapping(uint256 applicationId => Application) public applications;

    event ApplicationOpened(uint256 indexed applicationId, address indexed recipient, uint256 amount, bytes32 requestId);
    event Released(uint256 indexed applicationId, address indexed recipient, uint256 amount, uint256 riskScore);

    error RiskGatedVaultUnknownApplication(uint256 applicationId);
    error RiskGatedVaultAlreadyReleased(uint256 applicationId);
    error RiskGatedVaultWrongRequest(bytes32 requestId, bytes32 expected);
    error RiskGatedVaultWrongModel(bytes32 modelId, bytes32 expected);
    error RiskGatedVaultWrongInput(bytes32 inputHash, bytes32 expected);
    error RiskGatedVaultWrongOutput(bytes32 outputHash);
    error RiskGatedVaultRiskTooHigh(uint256 riskScore, uint256 maximum);

    constructor(
        IInferenceSettlement settlement_,
        IERC20 token_,
        bytes32 modelId_,
        IModelRegistry.Mode minMode_,
        uint256 maxRiskScore_,
        address owner_
    ) Ownable(owner_) {
        settlement = settlement_;
        token = token_;
        modelId = modelId_;
        minMode = minMode_;
        maxRiskScore = maxRiskScore_;
    }

    /// @notice Open an application to pay `amount` (held by the vault) to `recipient` once it is assessed.
    function open(address recipient, uint96 amount) external onlyOwner returns (uint256 applicationId) {
        applicationId = ++applicationCount;
        applications[applicationId] = Application({recipient: recipient, amount: amount, released: false});
        emit ApplicationOpened(applicationId, recipient, amount, requestIdOf(applicationId));
    }

    /// @notice Pay out application `applicationId` on the settled `receipt` whose output is `riskScore`.
    /// @param usageJson The manifest's `usage` object exactly as canonical JSON (e.g. `{}`).
    function release(
        uint256 applicationId,
        IInferenceSettlement.Receipt calldata receipt,
        uint256 riskScore,
        string calldata usageJson
    ) external {
        Application storage application = applications[applicationId];
        if (application.recipient == address(0)) revert RiskGatedVaultUnknownApplication(applicationId);
        if (application.released) revert RiskGatedVaultAlreadyReleased(applicationId);
        bytes32 expectedRequest = requestIdOf(applicationId);
        if (receipt.requestId != expectedRequest) revert RiskGatedVaultWrongRequest(receipt.requestId, expectedRequest);
        if (receipt.modelId != modelId) revert RiskGatedVaultWrongModel(receipt.modelId, modelId);
        bytes32 expectedInput = inputHashOf(applicationId);
        if (receipt.inputHash != expectedInput) revert RiskGatedVaultWrongInput(receipt.inputHash, expectedInput);

        settlement.requireVerifiedReceipt(receipt, minMode, true);
        if (receipt.outputHash != scoreOutputHash(riskScore, usageJson)) {
            revert RiskGatedVaultWrongOutput(receipt.outputHash);
        }
        if (riskScore > maxRiskScore) revert RiskGatedVaultRiskTooHigh(riskScore, maxRiskScore);

        application.released = true;
        emit Released(applicationId, application.recipient, application.amount, riskScore);
        token.safeTransfer(application.recipient, application.amount);
    }

    /// @notice The request id an assessment of `applicationId` must be made under.
    function requestIdOf(uint256 applicationId) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), applicationId));
    }

    /// @notice The input hash the model must have been asked: this vault, the application and its terms.
    function inputHashOf(uint256 applicationId) public view returns (bytes32) {
        Application storage application = applications[applicationId];
        return keccak256(abi.encode(address(this), applicationId, application.recipient, application.amount));
    }

    /// @notice keccak-256 of the canonical output manifest whose text is `riskScore` in decimal.
    function scoreOutputHash(uint256 riskScore, string calldata usageJson) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                '{"images":[],"text":"',
                bytes(Strings.toString(riskScore)),
                '","toolCalls":[],"usage":',
                bytes(usageJson),
                ',"version":1}'
            )
        );
    }
}
