// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";

/// @title Liquidation guard (example ZKML consumer)
/// @notice Holds the collateral of loan positions and lets anyone liquidate a position, taking its
/// collateral, only on a ZKML-proven and final risk score for exactly that position's current features.
///
/// A liquidation is the kind of high-consequence call that should not rest on a node's word or on
/// hardware: the risk model is an EZKL circuit whose public instances are the features and the scores,
/// and a ZKML receipt commits to `keccak256(abi.encode(features))` and `keccak256(abi.encode(scores))`.
/// The guard records each position's feature hash, so a proof about any other features cannot be used, and
/// reads the score straight from the proven output instances.
contract LiquidationGuard is Ownable {
    using SafeERC20 for IERC20;

    struct Position {
        address borrower;
        uint96 collateral;
        bytes32 featuresHash;
        bool liquidated;
    }

    /// @notice Field elements above this encode negative numbers.
    uint256 public constant HALF_FIELD =
        10944121435919637611123202872628637544274182200208017171849102093287904247808;

    IInferenceSettlement public immutable settlement;
    IERC20 public immutable token;
    bytes32 public immutable modelId;
    /// @notice Which output instance is the liquidation risk score.
    uint256 public immutable riskOutputIndex;
    /// @notice The score at or above which a position may be liquidated, in the model's output fixed point.
    uint256 public immutable liquidationThreshold;

    uint256 public positionCount;
    mapping(uint256 positionId => Position) public positions;

    event PositionOpened(uint256 indexed positionId, address indexed borrower, uint256 collateral, bytes32 featuresHash);
    event FeaturesUpdated(uint256 indexed positionId, bytes32 featuresHash);
    event Liquidated(uint256 indexed positionId, address indexed liquidator, uint256 collateral, uint256 riskScore);

    error LiquidationGuardZeroBorrower();
    error LiquidationGuardUnknownPosition(uint256 positionId);
    error LiquidationGuardAlreadyLiquidated(uint256 positionId);
    error LiquidationGuardWrongModel(bytes32 modelId, bytes32 expected);
    error LiquidationGuardWrongInput(bytes32 inputHash, bytes32 expected);
    error LiquidationGuardWrongOutput(bytes32 outputHash);
    error LiquidationGuardNoRiskScore(uint256 outputs, uint256 riskOutputIndex);
    error LiquidationGuardRiskBelowThreshold(uint256 riskScore, uint256 threshold);

    constructor(
        IInferenceSettlement settlement_,
        IERC20 token_,
        bytes32 modelId_,
        uint256 riskOutputIndex_,
        uint256 liquidationThreshold_,
        address owner_
    ) Ownable(owner_) {
        settlement = settlement_;
        token = token_;
        modelId = modelId_;
        riskOutputIndex = riskOutputIndex_;
        liquidationThreshold = liquidationThreshold_;
    }

    /// @notice Open a position for `borrower`, taking `collateral` from the caller, with the model's input
    /// `features` (public instances, fixed point at the model's input scale) as reported by the caller.
    function openPosition(address borrower, uint96 collateral, uint256[] calldata features)
        external
        onlyOwner
        returns (uint256 positionId)
    {
        if (borrower == address(0)) revert LiquidationGuardZeroBorrower();
        positionId = ++positionCount;
        bytes32 featuresHash = keccak256(abi.encode(features));
        positions[positionId] =
            Position({borrower: borrower, collateral: collateral, featuresHash: featuresHash, liquidated: false});
        emit PositionOpened(positionId, borrower, collateral, featuresHash);
        token.safeTransferFrom(msg.sender, address(this), collateral);
    }

    /// @notice Replace a position's features (the owner acts as the position's oracle).
    function updateFeatures(uint256 positionId, uint256[] calldata features) external onlyOwner {
        Position storage position = _live(positionId);
        position.featuresHash = keccak256(abi.encode(features));
        emit FeaturesUpdated(positionId, position.featuresHash);
    }

    /// @notice Liquidate `positionId` on the settled ZKML `receipt` whose proven outputs are `scores`; the
    /// caller receives the collateral.
    function liquidate(uint256 positionId, IInferenceSettlement.Receipt calldata receipt, uint256[] calldata scores)
        external
    {
        Position storage position = _live(positionId);
        if (receipt.modelId != modelId) revert LiquidationGuardWrongModel(receipt.modelId, modelId);
        if (receipt.inputHash != position.featuresHash) {
            revert LiquidationGuardWrongInput(receipt.inputHash, position.featuresHash);
        }
        settlement.requireVerifiedReceipt(receipt, IModelRegistry.Mode.Zkml, true);
        if (keccak256(abi.encode(scores)) != receipt.outputHash) revert LiquidationGuardWrongOutput(receipt.outputHash);
        if (scores.length <= riskOutputIndex) revert LiquidationGuardNoRiskScore(scores.length, riskOutputIndex);
        uint256 riskScore = scores[riskOutputIndex];
        if (riskScore < liquidationThreshold || riskScore > HALF_FIELD) {
            revert LiquidationGuardRiskBelowThreshold(riskScore, liquidationThreshold);
        }

        position.liquidated = true;
        uint256 collateral = position.collateral;
        emit Liquidated(positionId, msg.sender, collateral, riskScore);
        token.safeTransfer(msg.sender, collateral);
    }

    function _live(uint256 positionId) private view returns (Position storage position) {
        position = positions[positionId];
        if (position.borrower == address(0)) revert LiquidationGuardUnknownPosition(positionId);
        if (position.liquidated) revert LiquidationGuardAlreadyLiquidated(positionId);
    }
}
