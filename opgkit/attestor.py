"""The attestation service: from a verified Nitro document to a signed registration statement, and back.

An attestor signs the ``Attestation`` statement that ``AttestorQuorumVerifier`` accepts only after the
document passed every check of ``opgkit.nitro`` at the chain's time, it binds this registration (chain,
registry, operator, the operator's current registration nonce), its key is not another operator's TEE, and its
measurement is approved on chain for AWS Nitro and not revoked. Every field of the statement is derived from
the document (key, measurement, TLS certificate hash, expiry) and the chain, except what the operator asks
for (endpoint, payment address), so independent attestors sign
the same statement and the operator can assemble a quorum. The statement expires when the document's signing
certificate does (AWS issues it for three hours): a document cannot be used after its evidence lapsed.

``SignedStatement`` is the file an attestor hands back (format ``opg-attestor-signature/1``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from eth_abi import encode
from eth_account import Account
from eth_utils import to_checksum_address

from opgkit.attestation import Attestation, Statement, build_statement
from opgkit.nitro import (
    NITRO_TEE_TYPE, AttestationDocument, AttestationRefused, Refusal, check_binding, document_measurement,
)
from opgkit.cli.errors import UserError
from opgkit.typed_data import domain_of

SIGNATURE_FORMAT = "opg-attestor-signature/1"


@dataclass(frozen=True)
class RegistrationRequest:
    """What the operator asks the attestors to record, beyond what the document proves (the key, the image, the
    TLS certificate and the registration it is for)."""

    operator: str
    endpoint: str
    payment_address: str


def chain_time(registry) -> datetime:
    """The time attestors check documents at: the chain's, which is what the registry checks expiry against."""
    return datetime.fromtimestamp(registry.provider.get_block("latest").timestamp, UTC)


def registration_statement(document: AttestationDocument, request: RegistrationRequest, registry) -> Statement:
    """The statement for ``document`` on ``registry``, or ``AttestationRefused`` (BINDING, MEASUREMENT)."""
    chain_id = registry.provider.chain_id
    nonce = registry.nonces(request.operator)
    bound = check_binding(document, chain_id=chain_id, registry=registry.address, operator=request.operator,
                          nonce=nonce)
    holder = registry.tee(document.tee_key).operator
    if int(holder, 16) and holder != to_checksum_address(request.operator):
        raise AttestationRefused(Refusal.TEE_KEY, f"TEE key {document.tee_key} is registered to operator {holder}; "
                                 "an enclave key belongs to one operator")
    measurement = document_measurement(document)
    approved = registry.measurement(measurement)
    shown = f"0x{measurement.hex()}"
    if approved.approvedAt == 0:
        raise AttestationRefused(Refusal.MEASUREMENT, f"measurement {shown} (keccak256 of PCR0‖PCR1‖PCR2) is not "
                                 "approved on this registry; governance approves it with approveMeasurement")
    if approved.revokedAt != 0:
        raise AttestationRefused(Refusal.MEASUREMENT, f"measurement {shown} was revoked; rebuild the enclave from an "
                                 "approved image")
    if approved.teeType != NITRO_TEE_TYPE:
        raise AttestationRefused(Refusal.MEASUREMENT, f"measurement {shown} is approved for TEE type "
                                 f"{approved.teeType}, not AWS Nitro ({NITRO_TEE_TYPE})")
    return build_statement(
        registry, operator=request.operator, tee_key=document.tee_key, tee_type=NITRO_TEE_TYPE,
        measurement=measurement, tls_cert_hash=bound.tls_cert_hash, payment_address=request.payment_address,
        endpoint=request.endpoint, expiry=int(document.certificate_expiry.timestamp()), nonce=nonce,
        chain_id=chain_id,
    )


def statement_digest_message(verifier, statement: Statement) -> Attestation:
    return Attestation(**asdict(statement), eip712_domain=domain_of(verifier))


def sign_statement(verifier, statement: Statement, account) -> bytes:
    """``account`` (an ape account) signs the statement under the verifier's EIP-712 domain; r ‖ s ‖ v."""
    signature = account.sign_message(statement_digest_message(verifier, statement))
    if signature is None:
        raise UserError("the attestor account declined to sign; nothing was written")
    return signature.r + signature.s + bytes([signature.v])


def signer_of(verifier, statement: Statement, signature: bytes) -> str | None:
    """The EOA that produced ``signature`` over ``statement``, or None if it is not a 65-byte ECDSA signature."""
    if len(signature) != 65:
        return None
    try:
        return Account.recover_message(statement_digest_message(verifier, statement).signable_message,
                                       signature=signature)
    except Exception:  # noqa: BLE001 - any malformed signature means "no EOA signed this"
        return None


@dataclass(frozen=True)
class SignedStatement:
    """One attestor's signature over a statement, with what it checked, as written to and read from a file."""

    attestor: str
    signature: bytes
    statement: Statement
    endpoint: str
    document_sha256: str

    def to_json(self) -> dict:
        return {
            "format": SIGNATURE_FORMAT,
            "attestor": self.attestor,
            "signature": "0x" + self.signature.hex(),
            "endpoint": self.endpoint,
            "document_sha256": self.document_sha256,
            "statement": {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in asdict(self.statement).items()},
        }

    @classmethod
    def from_json(cls, data: dict, source: str) -> "SignedStatement":
        if data.get("format") != SIGNATURE_FORMAT:
            raise ValueError(f"{source} is not an attestor signature (format {SIGNATURE_FORMAT!r})")
        try:
            raw = data["statement"]
            values = {}
            for field in fields(Statement):
                value = raw[field.name]
                if field.type in ("bytes", bytes):
                    value = bytes.fromhex(value.removeprefix("0x"))
                    if len(value) != 32:
                        raise ValueError(f"{field.name} is not 32 bytes")
                elif field.type in ("int", int):
                    if type(value) is not int or value < 0:
                        raise ValueError(f"{field.name} is not a non-negative integer")
                else:
                    value = to_checksum_address(value)
                values[field.name] = value
            return cls(
                attestor=to_checksum_address(data["attestor"]),
                signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")),
                statement=Statement(**values),
                endpoint=str(data["endpoint"]),
                document_sha256=str(data["document_sha256"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{source}: not a well-formed attestor signature ({error})") from error


def first_difference(a: Statement, b: Statement) -> str | None:
    """The first field in which two statements differ, or None."""
    for field in fields(Statement):
        if getattr(a, field.name) != getattr(b, field.name):
            return field.name
    return None


def quorum_evidence_of(signed: list[SignedStatement]) -> bytes:
    """``abi.encode(signers, signatures)`` with signers strictly ascending, as the verifier requires."""
    ordered = sorted(signed, key=lambda s: int(s.attestor, 16))
    return encode(["address[]", "bytes[]"], [[s.attestor for s in ordered], [s.signature for s in ordered]])
