"""Off-chain signatures the OPG token accepts: EIP-2612 permits and ERC-5805 vote delegations.

Messages are built with the ``eip712`` library from the domain the token reports on chain (ERC-5267),
so a wrong name, version, chain or address can never be signed by mistake.
"""

from __future__ import annotations

from functools import lru_cache

from eip712.common import create_permit_def
from eip712.messages import EIP712Message
from eth_pydantic_types import abi

from opgkit.typed_data import Signature, domain_of, sign

__all__ = ["Delegation", "Signature", "build_delegation", "build_permit", "sign"]


class Delegation(EIP712Message):
    """ERC-5805 ``Delegation(address delegatee,uint256 nonce,uint256 expiry)``."""

    delegatee: abi.address
    nonce: abi.uint256
    expiry: abi.uint256


@lru_cache(maxsize=64)
def _permit_type(domain: tuple) -> type[EIP712Message]:
    """The permit message class of one domain (building it defines a pydantic model: done once per domain)."""
    return create_permit_def(eip=2612, **dict(domain))


def build_permit(token, owner: str, spender: str, value: int, deadline: int, nonce: int | None = None) -> EIP712Message:
    """An EIP-2612 permit for ``token``; the nonce defaults to the owner's current one on chain."""
    permit_type = _permit_type(tuple(domain_of(token).model_dump(exclude_none=True).items()))
    return permit_type(
        owner=owner,
        spender=spender,
        value=value,
        nonce=token.nonces(owner) if nonce is None else nonce,
        deadline=deadline,
    )


def build_delegation(token, delegator: str, delegatee: str, expiry: int, nonce: int | None = None) -> Delegation:
    """A vote delegation for ``token``; the nonce defaults to the delegator's current one on chain."""
    return Delegation(
        delegatee=delegatee,
        nonce=token.nonces(delegator) if nonce is None else nonce,
        expiry=expiry,
        eip712_domain=domain_of(token),
    )
