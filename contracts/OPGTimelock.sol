// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title OPG timelock
/// @notice OpenZeppelin's `TimelockController` under the project's name, so deploy scripts can build it.
/// In production the governor is its only proposer and canceller, anyone may execute, and it holds every
/// admin role of the protocol.
contract OPGTimelock is TimelockController {
    /// @param minDelay Seconds between queueing and executing an operation.
    /// @param proposers Accounts that may schedule (and cancel) operations: the governor.
    /// @param executors Accounts that may execute ready operations; `address(0)` lets anyone execute.
    /// @param admin Optional bootstrap admin; `address(0)` for none. Renounce it once roles are set.
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
