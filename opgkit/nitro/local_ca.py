"""A Nitro-shaped certificate authority for development chains and tests.

AWS signs real attestation documents, and nobody holds the key of an enclave that produced one, so a real
document can register a TEE but never sign a receipt. ``LocalNitroCA`` issues documents of the same shape
(COSE_Sign1, ES384, a root → intermediate → leaf chain of P-384 certificates, PCRs, a secp256k1 public key,
user_data) for an enclave key the caller holds, so that an attested key really signs receipts end to end.
Its root is trusted only on development chains (``opgkit.nitro.roots.trusted_root``).
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha384
from datetime import datetime, timedelta

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from opgkit.nitro.document import ES384, P384_COORDINATE

LEAF_LIFETIME = timedelta(hours=3)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OPG local Nitro CA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                 issuer_key: ec.EllipticCurvePrivateKey, not_before: datetime, not_after: datetime,
                 ca: bool) -> x509.Certificate:
    public = key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer else _name(subject))
               .public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                            crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


@dataclass
class LocalNitroCA:
    """A root and an intermediate (P-384) that issue one short-lived leaf per document, as AWS's chain does."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    @classmethod
    def create(cls, valid_from: datetime, valid_for: timedelta = timedelta(days=3650)) -> "LocalNitroCA":
        root_key = ec.generate_private_key(ec.SECP384R1())
        root = _certificate("local.nitro-enclaves root", root_key, None, root_key, valid_from,
                            valid_from + valid_for, ca=True)
        intermediate_key = ec.generate_private_key(ec.SECP384R1())
        intermediate = _certificate("local.nitro-enclaves intermediate", intermediate_key, root, root_key,
                                    valid_from, valid_from + valid_for, ca=True)
        return cls(root_key, root, intermediate_key, intermediate)

    def root_pem(self) -> bytes:
        return self.root.public_bytes(Encoding.PEM)

    def issue(self, *, pcrs: dict[int, bytes], public_key: bytes | None, user_data: bytes | None, at: datetime,
              nonce: bytes | None = None, module_id: str = "i-local-enc-opg") -> bytes:
        """A COSE_Sign1 attestation document dated ``at``, signed by a fresh leaf valid from ``at``."""
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        leaf = _certificate(f"{module_id}.local.nitro-enclaves", leaf_key, self.intermediate, self.intermediate_key,
                            at - timedelta(seconds=3), at + LEAF_LIFETIME, ca=False)
        payload = {
            "module_id": module_id,
            "digest": "SHA384",
            "timestamp": int(at.timestamp() * 1000),
            "pcrs": pcrs,
            "certificate": leaf.public_bytes(Encoding.DER),
            "cabundle": [self.root.public_bytes(Encoding.DER), self.intermediate.public_bytes(Encoding.DER)],
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
        return sign_cose(cbor2.dumps({1: ES384}), cbor2.dumps(payload), leaf_key)


def sign_cose(protected: bytes, payload: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """An untagged COSE_Sign1 message: ES384 over ``["Signature1", protected, b"", payload]``, signature r ‖ s."""
    der = key.sign(cbor2.dumps(["Signature1", protected, b"", payload]), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(P384_COORDINATE, "big") + s.to_bytes(P384_COORDINATE, "big")
    return cbor2.dumps([protected, {}, payload, signature])


def pcrs_for(image: str) -> dict[int, bytes]:
    """Distinct, stable PCR0–2 (and zeroed PCR3–4) for a named local enclave image."""
    return {i: sha384(f"{image} PCR{i}".encode()).digest() for i in range(3)} | {3: bytes(48), 4: bytes(48)}
