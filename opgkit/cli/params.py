"""Click parameter callbacks shared by the scripts (addresses), and what counts as a development chain."""

from __future__ import annotations

import math

import click
from eth_utils import is_address, to_checksum_address
from ape.utils import ZERO_ADDRESS


def nonzero_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a checksummed, non-zero address, or a usage error saying what is wrong."""
    if value is None:
        return None
    if not is_address(value):
        raise click.BadParameter(f"{value!r} is not a 20-byte hex address (0x followed by 40 hex digits)")
    address = to_checksum_address(value)
    if address == ZERO_ADDRESS:
        if param.name == "treasury":
            raise click.BadParameter("the zero address would burn the whole supply; give a real treasury address")
        if param.name == "payer":
            raise click.BadParameter("the zero address pays for no request: give the payer that asked for it")
        raise click.BadParameter("the zero address holds no contract; give the deployed contract's address")
    return address


def finite_number(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: refuse NaN and infinity, which FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


DEVELOPMENT_CHAIN_IDS = (31337, 1337)


def is_development_chain(provider) -> bool:
    """ape's local network, or anvil/hardhat's chain id behind a custom URI."""
    return provider.network.name == "local" or provider.chain_id in DEVELOPMENT_CHAIN_IDS
