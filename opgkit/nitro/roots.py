"""The root certificate attestation documents must chain to: AWS's Nitro Enclaves root, pinned by fingerprint.

The AWS root ships with this package and is checked against its published SHA-256 fingerprint every time it
is loaded, so a swapped file is refused rather than trusted. Another root (the local CA of development chains
and tests) is accepted only where the caller says the chain is a development chain.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from opgkit.nitro.errors import AttestationRefused, Refusal

AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
"""SHA-256 of the DER of AWS's Nitro Enclaves root certificate (CN=aws.nitro-enclaves), as AWS publishes it."""


def fingerprint(certificate: x509.Certificate) -> str:
    """The hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def aws_nitro_root() -> x509.Certificate:
    """AWS's Nitro Enclaves root, after checking the shipped copy against the pinned fingerprint."""
    pem = resources.files("opgkit.nitro").joinpath("aws_nitro_root.pem").read_bytes()
    root = x509.load_pem_x509_certificate(pem)
    if fingerprint(root) != AWS_NITRO_ROOT_SHA256:
        raise AttestationRefused(Refusal.TRUSTED_ROOT, "the packaged AWS Nitro root does not match its pinned "
                                 "fingerprint; reinstall opgkit")
    return root


MAX_ROOT_BYTES = 64 * 1024


def load_root(path: Path) -> x509.Certificate:
    """A root certificate from a PEM file (the local CA's, for development chains and tests)."""
    if not path.is_file() or path.stat().st_size > MAX_ROOT_BYTES:
        raise AttestationRefused(Refusal.TRUSTED_ROOT, f"{path} is not a regular file of at most {MAX_ROOT_BYTES} "
                                 "bytes; give the root certificate's PEM file")
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (ValueError, x509.InvalidVersion) as error:
        raise AttestationRefused(Refusal.TRUSTED_ROOT, f"{path} is not a PEM X.509 certificate") from error


def trusted_root(path: Path | None, *, development_chain: bool) -> x509.Certificate:
    """The root to verify against: AWS's unless ``path`` names another, which only a development chain accepts."""
    if path is None:
        return aws_nitro_root()
    root = load_root(path)
    if fingerprint(root) == AWS_NITRO_ROOT_SHA256 or development_chain:
        return root
    raise AttestationRefused(Refusal.TRUSTED_ROOT, f"{path} is not AWS's Nitro root, and only a development chain "
                             "(local, chain id 31337 or 1337) may trust another root; drop the root option")
