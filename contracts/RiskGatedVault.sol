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
/// Each application fixes the request id, the namespace it lives in (the owner that opened it, who consents
/// to and pays for its assessment) and the input hash the model must answer under, so an answer about anything
/// else cannot be used and no third party can occupy the request. An application whose assessment can never
/// complete (its proof failed, its node vanished) is cancelled by the owner, which frees its amount. The model answers with the score as the whole text of its output manifest;
/// the vault rebuilds that manifest's canonical JSON (`opgkit.manifest`) from the score and the usage the
/// node reported, and checks it hashes to the settled output hash. The score is the digits between fixed
/// delimiters, so no other score can produce the same bytes.
contract RiskGatedVault is Ownable {
    using SafeERC20 for IERC20;

    struct Application {
        address recipient;
        uint96 amount;
        bool closed;
        address requester;
    }

    IInferenceSettlement public immutable settlement;
    IERC20 public immutable token;
    bytes32 public immutable modelId;
    IModelRegistry.Mode public immutable minMode;
    uint256 public immutable maxRiskScore;

    uint256 public applicationCount;
    /// @notice Sum of the amounts of applications still open: the part of the balance the owner cannot withdraw.
    uint256 public committed;
    mapping(uint256 applicationId => Application) public applications;

    event ApplicationOpened(uint256 indexed applicationId, address indexed recipient, uint256 amount, bytes32 requestId);
    event Released(uint256 indexed applicationId, address indexed recipient, uint256 amount, uint256 riskScore);
    event Cancelled(uint256 indexed applicationId);
    event Withdrawn(address indexed to, uint256 amount);

    error RiskGatedVaultUnknownApplication(uint256 applicationId);
    error RiskGatedVaultClosed(uint256 applicationId);
    error RiskGatedVaultZeroRecipient();
    error RiskGatedVaultWrongRequester(address payer, address expected);
    error RiskGatedVaultUncommittedBalanceTooLow(uint256 available, uint256 requested);
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

    /// @notice Open an application to pay `amount` (held by the vault) to `recipient` once it is assessed. The
    /// caller's namespace holds its assessment request: the caller consents to it and pays for it.
    function open(address recipient, uint96 amount) external onlyOwner returns (uint256 applicationId) {
        if (recipient == address(0)) revert RiskGatedVaultZeroRecipient();
        applicationId = ++applicationCount;
        applications[applicationId] =
            Application({recipient: recipient, amount: amount, closed: false, requester: msg.sender});
        committed += amount;
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
        Application storage application = _open(applicationId);
        if (receipt.payer != application.requester) revert RiskGatedVaultWrongRequester(receipt.payer, application.requester);
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

        application.closed = true;
        committed -= application.amount;
        emit Released(applicationId, application.recipient, application.amount, riskScore);
        token.safeTransfer(application.recipient, application.amount);
    }

    /// @notice Close an open application without paying it, e.g. when its assessment can never complete; its
    /// amount becomes withdrawable.
    function cancel(uint256 applicationId) external onlyOwner {
        Application storage application = _open(applicationId);
        application.closed = true;
        committed -= application.amount;
        emit Cancelled(applicationId);
    }

    /// @notice Send `amount` of the vault's balance not committed to open applications to `to`.
    function withdraw(address to, uint256 amount) external onlyOwner {
        uint256 balance = token.balanceOf(address(this));
        uint256 available = balance > committed ? balance - committed : 0;
        if (amount > available) revert RiskGatedVaultUncommittedBalanceTooLow(available, amount);
        emit Withdrawn(to, amount);
        token.safeTransfer(to, amount);
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

    function _open(uint256 applicationId) private view returns (Application storage application) {
        application = applications[applicationId];
        if (application.recipient == address(0)) revert RiskGatedVaultUnknownApplication(applicationId);
        if (application.closed) revert RiskGatedVaultClosed(applicationId);
    }
}
