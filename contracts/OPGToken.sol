// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {Votes} from "@openzeppelin/contracts/governance/utils/Votes.sol";
import {IERC6372} from "@openzeppelin/contracts/interfaces/IERC6372.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";

import {IOPGToken} from "../interfaces/IOPGToken.sol";

/// @title OPG token
/// @notice OpenGradient's OPG: pays for inference, backs node operators with stake, and governs the
/// protocol. The whole supply is minted once, to the treasury, in the constructor; nothing can mint or
/// burn afterwards, so `totalSupply()` is constant for the life of the contract.
/// @dev Votes use a timestamp clock (ERC-6372) so that governance and staking checkpoints agree on time
/// across chains with different block times.
contract OPGToken is ERC20, ERC20Permit, ERC20Votes, IOPGToken {
    /// @inheritdoc IOPGToken
    uint256 public constant TOTAL_SUPPLY = 1_000_000_000 ether;

    /// @param treasury Receives the whole supply. Reverts with `ERC20InvalidReceiver(address(0))` if zero.
    constructor(address treasury) ERC20("OpenGradient", "OPG") ERC20Permit("OpenGradient") {
        _mint(treasury, TOTAL_SUPPLY);
    }

    /// @notice The current timestamp, as the clock for vote checkpoints (ERC-6372).
    function clock() public view override(IERC6372, Votes) returns (uint48) {
        return Time.timestamp();
    }

    /// @notice Declares the timestamp clock (ERC-6372).
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override(IERC6372, Votes) returns (string memory) {
        return "mode=timestamp";
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, IERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}
