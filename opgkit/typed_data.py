"""EIP-712 helpers shared by every signed message: the signing domain a contract reports, and signing."""

from __future__ import annotations

from dataclasses import dataclass

from eip712.messages import EIP712Domain, EIP712Message
from eth_account import Account


@dataclass(frozen=True)
class Signature:
    """An ECDSA signature, split for functions that take (v, r, s) and joined for those that take bytes."""

    v: int
    r: bytes
    s: bytes

    @property
    def packed(self) -> bytes:
        return self.r + self.s + bytes([self.v])


def domain_of(contract) -> EIP712Domain:
    """The EIP-712 domain ``contract`` (an ape contract instance) reports through ``eip712Domain()`` (ERC-5267)."""
    _, name, version, chain_id, verifying_contract, _, _ = contract.eip712Domain()
    return EIP712Domain(name=name, version=version, chainId=chain_id, verifyingContract=verifying_contract)


def sign(message: EIP712Message, private_key: bytes | str) -> Signature:
    """Sign a typed-data message with a raw private key."""
    signed = Account.sign_message(message.signable_message, private_key)
    return Signature(v=signed.v, r=signed.r.to_bytes(32, "big"), s=signed.s.to_bytes(32, "big"))
