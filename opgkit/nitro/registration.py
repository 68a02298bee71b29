"""What a verified Nitro document means for a TEE registration: its measurement id and the registration it binds.

Measurement id. Governance approves ``measurement = keccak256(PCR0 ‖ PCR1 ‖ PCR2)`` (three 48-byte SHA-384
values, 144 bytes) under TEE type 1 (AWS Nitro). PCR0 measures the enclave image file, PCR1 the Linux kernel
and boot ramfs, PCR2 the application; together they name one enclave image (EIF) built reproducibly, whatever
instance runs it. PCR3 (the parent's IAM role), PCR4 (the parent instance) and PCR8 (the EIF's signing
certificate) are left out, so one approval covers the image on any operator's instance.

Binding. The enclave puts ``abi.encode(REGISTRATION_TAG, chainId, registry, operator, nonce, tlsCertHash)``
(192 bytes) in the document's ``user_data``, where ``nonce`` is ``TEERegistry.nonces(operator)``, the
registration nonce the statement will consume, and ``tlsCertHash`` the keccak256 of the TLS certificate whose
key the enclave holds. A document so bound cannot be replayed for another operator, chain or registry, nor for
a second registration of the same operator (the nonce is used once), and the TLS certificate the registry
records is the enclave's, not one its host chose. The ``nonce`` field of the document is left to the
enclave's own freshness protocol and not read here.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address

from opgkit.nitro.document import AttestationDocument, brief
from opgkit.nitro.errors import AttestationRefused, Refusal

NITRO_TEE_TYPE = 1
"""The TEERegistry type id of AWS Nitro Enclaves."""
REGISTRATION_TAG = keccak(text="OPG TEE registration, AWS Nitro, v1")
_BINDING_TYPES = ["bytes32", "uint256", "address", "address", "uint256", "bytes32"]
BINDING_LENGTH = 32 * len(_BINDING_TYPES)
BINDING_PREFIX_LENGTH = BINDING_LENGTH - 32
"""What the operator gives the enclave: everything but the TLS certificate hash, which the enclave appends."""


def nitro_measurement(pcr0: bytes, pcr1: bytes, pcr2: bytes) -> bytes:
    """The measurement id governance approves for an enclave image with these PCRs."""
    if any(len(pcr) != 48 for pcr in (pcr0, pcr1, pcr2)):
        raise ValueError("PCR0, PCR1 and PCR2 are 48-byte SHA-384 values")
    return keccak(pcr0 + pcr1 + pcr2)


def document_measurement(document: AttestationDocument) -> bytes:
    return nitro_measurement(*document.measured_pcrs)


@dataclass(frozen=True)
class Binding:
    """The registration a document is for, and the TLS certificate the enclave vouches for."""

    chain_id: int
    registry: str
    operator: str
    nonce: int
    tls_cert_hash: bytes

    def user_data(self) -> bytes:
        """What the enclave must put in the document's ``user_data``."""
        return encode(_BINDING_TYPES, [REGISTRATION_TAG, self.chain_id, self.registry, self.operator, self.nonce,
                                       self.tls_cert_hash])

    @classmethod
    def from_user_data(cls, user_data: bytes | None) -> "Binding":
        if not user_data:
            raise AttestationRefused(Refusal.BINDING, "user_data is empty: the document is bound to no registration; "
                                     "the enclave must put the registration binding there (`ape run tee binding`)")
        try:
            if len(user_data) != BINDING_LENGTH:
                raise DecodingError(f"{len(user_data)} bytes, not {BINDING_LENGTH}")
            tag, chain_id, registry, operator, nonce, tls_cert_hash = decode(_BINDING_TYPES, user_data, strict=True)
        except DecodingError as error:
            raise AttestationRefused(Refusal.BINDING, f"user_data is not a registration binding ({brief(error)})") from error
        if tag != REGISTRATION_TAG:
            raise AttestationRefused(Refusal.BINDING, "user_data does not carry the OPG registration tag; the document "
                                     "was made for another purpose")
        return cls(chain_id, to_checksum_address(registry), to_checksum_address(operator), nonce, tls_cert_hash)


def check_binding(document: AttestationDocument, *, chain_id: int, registry: str, operator: str,
                  nonce: int) -> Binding:
    """The document's binding if it is for exactly this registration, else BINDING naming the first field that
    differs. The TLS certificate hash is the enclave's to say: it is returned, not compared."""
    bound = Binding.from_user_data(document.user_data)
    expected = {"chain_id": chain_id, "registry": to_checksum_address(registry),
                "operator": to_checksum_address(operator), "nonce": nonce}
    for field, what in (("chain_id", "chain"), ("registry", "registry"), ("operator", "operator"),
                        ("nonce", "registration nonce")):
        got, want = getattr(bound, field), expected[field]
        if got != want:
            hint = " (already used, or not yet reached: ask the enclave for a document with the current nonce)" \
                if field == "nonce" else ""
            raise AttestationRefused(Refusal.BINDING, f"the document is bound to {what} {got}, this registration is "
                                     f"for {what} {want}{hint}")
    return bound
