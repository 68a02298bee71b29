// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title Gas-benchmark anchor: plain OpenZeppelin ERC20 + ERC20Permit
/// @notice Never deployed by the deploy script. `make gas` measures it beside OPGToken, with the same
/// compiler settings, so the table shows what vote checkpoints cost on top of a plain permit token.
contract ReferencePermitToken is ERC20, ERC20Permit {
    constructor(address holder) ERC20("Reference", "REF") ERC20Permit("Reference") {
        _mint(holder, 1_000_000_000 ether);
    }
}
