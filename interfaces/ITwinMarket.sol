// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Twin market interface
/// @notice A bonding-curve shares market for digital twins (Twin.fun / friend.tech style) with owner-set
/// protocol and subject fees that are capped at deploy, raised only after an announced delay, and bounded
/// by every trade's own `maxFee`. Amounts are in wei; fees are fractions where 1e18 = 100%.
interface ITwinMarket {
    event TwinCreated(bytes16 indexed id, address indexed creator, string url);
    event TwinUrlChanged(bytes16 indexed id, string url);
    event TwinOwnershipTransferStarted(bytes16 indexed id, address indexed from, address indexed to, uint256 eta);
    event TwinOwnershipTransferCancelled(bytes16 indexed id);
    event TwinOwnershipTransferred(bytes16 indexed id, address indexed previousOwner, address indexed newOwner);
    /// @notice One trade; `supply` is the twin's supply after it. Fees are in wei.
    event Trade(
        address indexed trader,
        bytes16 indexed id,
        bool indexed isBuy,
        uint256 amount,
        uint256 price,
        uint256 protocolFee,
        uint256 subjectFee,
        uint256 supply
    );
    /// @notice A fee increase, effective from `eta` unless cancelled.
    event FeeChangeScheduled(uint256 protocolFeePercent, uint256 subjectFeePercent, uint256 eta);
    event FeeChangeCancelled(uint256 protocolFeePercent, uint256 subjectFeePercent);
    /// @notice The fees in force changed (a decrease at once, or a scheduled increase applied).
    event FeesChanged(
        uint256 previousProtocolFeePercent,
        uint256 previousSubjectFeePercent,
        uint256 protocolFeePercent,
        uint256 subjectFeePercent
    );
    event FeeDestinationProposed(address indexed current, address indexed proposed, uint256 eta);
    event FeeDestinationChanged(address indexed previous, address indexed current);
    event ClaimManagerChanged(address indexed previous, address indexed current);
    event ProtocolFeesClaimed(address indexed destination, uint256 amount);
    event SubjectFeesClaimed(bytes16 indexed id, address indexed owner, uint256 amount);

    function createTwin(bytes16 id, string calldata url, uint256 amount, uint256 maxCost, uint256 maxFeePercent, uint256 deadline)
        external
        payable;
    function buy(bytes16 id, uint256 amount, uint256 maxCost, uint256 maxFeePercent, uint256 deadline) external payable;
    function sell(bytes16 id, uint256 amount, uint256 minPayout, uint256 maxFeePercent, uint256 deadline) external;

    function claimProtocolFees() external;
    function claimSubjectFees(bytes16 id) external;
    function setFees(uint256 protocolFeePercent, uint256 subjectFeePercent) external;
    function applyFeeChange() external;
    function cancelFeeChange() external;
    function proposeFeeDestination(address destination) external;
    function acceptFeeDestination() external;
    function setClaimManager(address manager) external;
    function startTwinOwnershipTransfer(bytes16 id, address to) external;
    function cancelTwinOwnershipTransfer(bytes16 id) external;
    function completeTwinOwnershipTransfer(bytes16 id) external;
    function setTwinUrl(bytes16 id, string calldata url) external;

    /// @notice The fees in force (1e18 = 100%).
    function fees() external view returns (uint256 protocolFeePercent, uint256 subjectFeePercent);
    function protocolFeesAccrued() external view returns (uint256);
    function subjectFeesAccrued(bytes16 id) external view returns (uint256);
    function sharesSupply(bytes16 id) external view returns (uint256);

    /// @notice Price of shares `supply + 1` to `supply + amount`: Σ (k−1)² · (1 ether / D), exact.
    function getPrice(uint256 supply, uint256 amount) external view returns (uint256);
    function getBuyPrice(bytes16 id, uint256 amount) external view returns (uint256);
    function getSellPrice(bytes16 id, uint256 amount) external view returns (uint256);
    function getBuyPriceAfterFee(bytes16 id, uint256 amount) external view returns (uint256);
    function getSellPriceAfterFee(bytes16 id, uint256 amount) external view returns (uint256);
    /// @notice True when `holder` holds at least one share of twin `id`.
    function hasAccess(address holder, bytes16 id) external view returns (bool);
}
