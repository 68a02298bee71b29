"""Off-chain signatures the OPG token accepts: EIP-2612 permits and ERC-5805 vote delegations.

Messages are built with the ``eip712`` library from the domain the token reports on chain (ERC-5267),
so a wrong name, version, chain or address can never be signed by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

from eip712.common import create_permit_def
from eip712.messages import EIP712Domain, EIP712Message
from eth_account import Account
from eth_pydantic_types import abi


@dataclass(frozen=True)
class Signature:
    """An ECDSA signature split the way ``permit`` and ``delegateBySig`` take it."""

    v: int
    r: bytes
    s: bytes


class Delegation(EIP712Message):
    """ERC-5805 ``Delegation(address delegatee,uint256 nonce,uint256 expiry)``."""

    delegatee: abi.address
    nonce: abi.uint256
    expiry: abi.uint256


def token_domain(token) -> EIP712Domain:
    """The EIP-712 domain ``token`` (an ape contract instance) reports through ``eip712Domain()``."""
    _, name, version, chain_id, verifying_contract, _, _ = token.eip712Domain()
    return EIP712Domain(name=name, version=version, chainId=chain_id, verifyingContract=verifying_contract)


def build_permit(token, owner: str, spender: str, value: int, deadline: int, nonce: int | None = None) -> EIP712Message:
    """An EIP-2612 permit for ``token``; the nonce defaults to the owner's current one on chain."""
    permit_type = create_permit_def(eip=2612, **token_domain(token).model_dump(exclude_none=True))
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
        eip712_domain=token_domain(token),
    )


def sign(message: EIP712Message, private_key: bytes | str) -> Signature:
    """Sign a typed-data message with a raw private key."""
    signed = Account.sign_message(message.signable_message, private_key)
    return Signature(v=signed.v, r=signed.r.to_bytes(32, "big"), s=signed.s.to_bytes(32, "big"))
