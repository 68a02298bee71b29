"""Model specs and hashes for the registry tests."""

import hashlib

VANILLA, TEE, ZKML = 0, 1, 2
BIT = {VANILLA: 1, TEE: 2, ZKML: 4}
OPG = 10**18


def content_hash(label: str) -> bytes:
    """sha256 of a stand-in model blob."""
    return hashlib.sha256(f"model blob: {label}".encode()).digest()


def spec(label="base", **overrides):
    """A ModelSpec as a dict; defaults to a root model accepting every mode except ZKML."""
    values = dict(
        contentHash=content_hash(label),
        uri=f"ipfs://{label}",
        price=2 * OPG,
        allowedModes=BIT[VANILLA] | BIT[TEE],
        minimumMode=VANILLA,
        parent=b"\x00" * 32,
        sameFamily=False,
        royaltyBps=0,
        zkVerifier="0x0000000000000000000000000000000000000000",
        verifyingKeyDigest=b"\x00" * 32,
    )
    values.update(overrides)
    return values

NITRO = 1
PCR_V1 = hashlib.sha256(b"enclave image v1").digest()
PCR_V2 = hashlib.sha256(b"enclave image v2").digest()
TLS_CERT_HASH = hashlib.sha256(b"tls certificate").digest()
TEE_MINIMUM_STAKE = 20_000 * OPG
MAX_HEARTBEAT_AGE = 3_600
HOUR = 3_600
