"""TEE attestation statements, attestor-quorum evidence, and TEE heartbeats, built and signed off chain.

An attestation service checks an enclave's hardware attestation, then signs an ``Attestation`` statement
under the ``AttestorQuorumVerifier``'s EIP-712 domain. The operator submits the statement with the
signatures of at least ``threshold`` attestors as evidence. A running TEE signs ``Heartbeat`` messages with
its own key under the ``TEERegistry``'s domain; anyone may relay them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from eip712.messages import EIP712Message
from eth_abi import encode
from eth_pydantic_types import abi
from eth_utils import keccak, to_checksum_address

from opgkit.typed_data import domain_of, sign


class Attestation(EIP712Message):
    """Mirrors ``IAttestationVerifier.AttestationStatement``, field for field."""

    operator: abi.address
    teeKey: abi.address
    teeType: abi.uint8
    measurement: abi.bytes32
    tlsCertHash: abi.bytes32
    paymentAddress: abi.address
    endpointHash: abi.bytes32
    chainId: abi.uint256
    registry: abi.address
    nonce: abi.uint256
    expiry: abi.uint64


class Heartbeat(EIP712Message):
    """``Heartbeat(address teeKey,uint64 timestamp)`` under the TEE registry's domain."""

    teeKey: abi.address
    timestamp: abi.uint64


@dataclass(frozen=True)
class Statement:
    """The fields an attestation binds; ``as_args`` gives the tuple contracts take."""

    operator: str
    teeKey: str
    teeType: int
    measurement: bytes
    tlsCertHash: bytes
    paymentAddress: str
    endpointHash: bytes
    chainId: int
    registry: str
    nonce: int
    expiry: int

    def as_args(self) -> tuple:
        return tuple(asdict(self).values())


def endpoint_hash(endpoint: str) -> bytes:
    return keccak(text=endpoint)


def build_statement(registry, *, operator: str, tee_key: str, tee_type: int, measurement: bytes, tls_cert_hash: bytes,
                    payment_address: str, endpoint: str, expiry: int, nonce: int | None = None,
                    chain_id: int | None = None) -> Statement:
    """A statement for ``registry`` (an ape contract); nonce and chain id default to the live values."""
    return Statement(
        operator=to_checksum_address(operator),
        teeKey=to_checksum_address(tee_key),
        teeType=tee_type,
        measurement=measurement,
        tlsCertHash=tls_cert_hash,
        paymentAddress=to_checksum_address(payment_address),
        endpointHash=endpoint_hash(endpoint),
        chainId=registry.provider.chain_id if chain_id is None else chain_id,
        registry=registry.address,
        nonce=registry.nonces(operator) if nonce is None else nonce,
        expiry=expiry,
    )


def quorum_evidence(verifier, statement: Statement, attestor_keys) -> bytes:
    """``abi.encode(signers, signatures)``: each attestor (a LocalAccount) signs; signers sorted ascending."""
    message = Attestation(**asdict(statement), eip712_domain=domain_of(verifier))
    signed = sorted(((int(key.address, 16), key.address, sign(message, key.key).packed) for key in attestor_keys))
    return encode(["address[]", "bytes[]"], [[s[1] for s in signed], [s[2] for s in signed]])


def sign_heartbeat(registry, tee_key, timestamp: int) -> bytes:
    """The TEE key (a LocalAccount) signs a heartbeat at ``timestamp`` for ``registry``."""
    message = Heartbeat(teeKey=tee_key.address, timestamp=timestamp, eip712_domain=domain_of(registry))
    return sign(message, tee_key.key).packed
