// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IERC5805} from "@openzeppelin/contracts/interfaces/IERC5805.sol";

/// @title OPG token interface
/// @notice The OPG token: a fixed-supply ERC-20 with EIP-2612 permits and ERC-5805 vote delegation
/// on a timestamp clock (ERC-6372 `CLOCK_MODE() == "mode=timestamp"`).
interface IOPGToken is IERC20Metadata, IERC20Permit, IERC5805 {
    /// @notice The whole supply, minted once to the treasury at deployment: 1,000,000,000 OPG.
    function TOTAL_SUPPLY() external view returns (uint256);
}
