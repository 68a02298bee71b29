"""AWS Nitro Enclaves attestation: documents verified with cbor2 and cryptography, and what they bind."""

from opgkit.nitro.document import AttestationDocument, enclave_address, verify_document
from opgkit.nitro.errors import AttestationRefused, Refusal
from opgkit.nitro.registration import (
    NITRO_TEE_TYPE, Binding, check_binding, document_measurement, nitro_measurement,
)
from opgkit.nitro.roots import AWS_NITRO_ROOT_SHA256, aws_nitro_root, fingerprint, trusted_root

__all__ = [
    "AWS_NITRO_ROOT_SHA256", "NITRO_TEE_TYPE", "AttestationDocument", "AttestationRefused", "Binding", "Refusal",
    "aws_nitro_root", "check_binding", "document_measurement", "enclave_address", "fingerprint", "nitro_measurement",
    "trusted_root", "verify_document",
]
