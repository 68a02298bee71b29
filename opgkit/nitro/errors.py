"""Why an attestation document was refused: one named reason per check, so a refusal says which check failed."""

from __future__ import annotations

from enum import Enum


class Refusal(Enum):
    """The check an attestation document failed. The name is what scripts print; the value says what it checks."""

    DOCUMENT_SIZE = "the document's size"
    CBOR = "CBOR well-formedness"
    COSE_STRUCTURE = "the COSE_Sign1 structure"
    COSE_ALGORITHM = "the COSE algorithm (ES384)"
    PAYLOAD = "the payload's fields (AWS's attestation document syntax)"
    DIGEST = "the PCR digest algorithm (SHA384)"
    LEAF_CERTIFICATE = "the signing certificate"
    CERTIFICATE_CHAIN = "the certificate chain to the trusted root, each certificate valid at the checking time"
    SIGNATURE = "the ES384 signature over the COSE Sig_structure"
    TIMESTAMP = "the document's time (inside its certificate's validity, not in the future, not stale)"
    PCRS = "PCR0, PCR1 and PCR2"
    DEBUG_ENCLAVE = "a production enclave (a debug enclave reports all-zero PCRs)"
    PUBLIC_KEY = "the enclave's secp256k1 signing key"
    BINDING = "user_data binding the document to this registration (chain, registry, operator, nonce, TLS certificate)"
    TEE_KEY = "the enclave key not registered to another operator"
    MEASUREMENT = "the measurement approved on chain for AWS Nitro and not revoked"
    TRUSTED_ROOT = "the trusted root certificate"


class AttestationRefused(Exception):
    """A document failed ``refusal``; ``detail`` says how, in words a node operator can act on."""

    def __init__(self, refusal: Refusal, detail: str):
        super().__init__(f"{refusal.name}: {detail}")
        self.refusal = refusal
        self.detail = detail
