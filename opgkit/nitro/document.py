"""AWS Nitro Enclaves attestation documents, verified with cbor2 and cryptography.

A document is an untagged (or tag 18) COSE_Sign1 array ``[protected, unprotected, payload, signature]``.
``verify_document`` checks, in order, and refuses with the first failing ``Refusal``:

1. size and CBOR, the COSE_Sign1 shape, the protected header naming ES384 and nothing it does not understand;
2. the payload's fields against AWS's syntax (module_id, digest, timestamp, pcrs, certificate, cabundle and the
   optional public_key, user_data, nonce), digest SHA384;
3. the leaf certificate's chain through ``cabundle`` to the trusted root, every certificate valid at ``at``
   (cryptography's X.509 path validation, CA certificates under the Web PKI profile);
4. the ES384 signature of the leaf's P-384 key over ``["Signature1", protected, b"", payload]``;
5. the document's time: within its leaf certificate's validity, not after ``at`` (beyond a small clock skew),
   and no older than ``max_age``;
6. PCR0–2 present and not a debug enclave's zeros; the public key a valid secp256k1 point (the TEE's address).

What the document is then used for (the registration it binds, the measurement governance approved) is for
``opgkit.nitro.registration`` to check.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError
from eth_utils import keccak, to_checksum_address

from opgkit.nitro.errors import AttestationRefused, Refusal

MAX_DOCUMENT_BYTES = 16 * 1024
"""A real document is about 4.5 KiB; anything far larger is refused before it is decoded."""
MAX_CABUNDLE = 8
"""AWS chains have four CA certificates (root, regional, zonal, instance)."""
MAX_CBOR_DEPTH = 8
"""A document nests four levels (message, payload map, pcrs map or cabundle array, their items)."""
ES384 = -35
COSE_SIGN1_TAG_BYTE = 0xD2
"""CBOR major type 6 (tag) with the value 18 in its initial byte: how COSE_Sign1's tag is encoded."""
COSE_ALGORITHM_LABEL = 1
P384_COORDINATE = 48
MEASURED_PCRS = (0, 1, 2)
DEFAULT_MAX_AGE = timedelta(hours=3)
"""A Nitro leaf certificate lives three hours; a document older than that is refused whatever its chain says."""
CLOCK_SKEW = timedelta(minutes=5)
MAX_TIMESTAMP_MS = 253_402_300_799_999
"""9999-12-31 23:59:59.999 UTC, the last instant Python's datetime holds."""

_USER_BYTES_LIMIT = 1024  # AWS: public_key, user_data and nonce are at most 1024 bytes (512 for the last two in practice)
_CERT_LIMIT = 1024
_PCR_LENGTHS = (32, 48, 64)


@dataclass(frozen=True)
class AttestationDocument:
    """The facts of a document that verified: what ran (PCRs), its key, what it was bound to, and when."""

    module_id: str
    timestamp: datetime
    pcrs: dict[int, bytes]
    public_key: bytes
    tee_key: str
    user_data: bytes | None
    nonce: bytes | None
    certificate_expiry: datetime
    sha256: str

    @property
    def measured_pcrs(self) -> tuple[bytes, bytes, bytes]:
        return tuple(self.pcrs[i] for i in MEASURED_PCRS)


def brief(error: Exception, limit: int = 160) -> str:
    """A library's message about hostile input, cut to one short line."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _refuse(refusal: Refusal, detail: str) -> AttestationRefused:
    return AttestationRefused(refusal, detail)


class _NoTags(Mapping):
    """cbor2's semantic decoders, one for every tag number, each refusing it: a Nitro document has no tags
    inside (shared references, tags 28/29, could otherwise expand a few KiB into more than memory holds)."""

    @staticmethod
    def _refuse_tag(value, immutable):
        raise cbor2.CBORDecodeError("a CBOR tag inside the document; Nitro documents use none")

    def __getitem__(self, tag):
        return self._refuse_tag

    def get(self, tag, default=None):
        return self._refuse_tag

    def __contains__(self, tag):
        return True

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


_NO_TAGS = _NoTags()


_CBOR_REASONS = (("Duplicate map key", "a duplicate map key"), ("nesting depth", "nested more than 8 deep"),
                 ("indefinite", "an indefinite length"), ("tag", "a CBOR tag"))


def _cbor_reason(error: Exception) -> str:
    """What was wrong, in fixed words: cbor2's own message may quote the hostile input."""
    text = str(error)
    return next((reason for marker, reason in _CBOR_REASONS if marker in text), "malformed or truncated")


def _decode(data: bytes, what: str, refusal: Refusal = Refusal.CBOR):
    """One CBOR item filling ``data`` exactly: no tags, definite lengths, no duplicate map keys, shallow nesting."""
    stream = io.BytesIO(data)
    try:
        # read_size=1: the decoder reads no further than the item, so trailing bytes are seen.
        value = cbor2.CBORDecoder(stream, read_size=1, max_depth=MAX_CBOR_DEPTH, allow_indefinite=False,
                                  allow_duplicate_keys=False, semantic_decoders=_NO_TAGS).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as error:
        raise _refuse(refusal, f"{what} is not well-formed CBOR ({_cbor_reason(error)})") from error
    if stream.tell() != len(data):
        raise _refuse(refusal, f"{what} has {len(data) - stream.tell()} byte(s) after its CBOR item")
    return value


def _cose_sign1(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(protected, payload, signature) of a COSE_Sign1 message using ES384, each checked for shape."""
    if not 0 < len(raw) <= MAX_DOCUMENT_BYTES:
        raise _refuse(Refusal.DOCUMENT_SIZE, f"{len(raw)} bytes; a Nitro attestation document is 1 to "
                      f"{MAX_DOCUMENT_BYTES} bytes")
    # COSE_Sign1 may carry its tag (18, one byte 0xd2); no other tag is accepted anywhere.
    message = _decode(raw[1:] if raw[0] == COSE_SIGN1_TAG_BYTE else raw, "the document")
    if not (isinstance(message, (list, tuple)) and len(message) == 4):
        raise _refuse(Refusal.COSE_STRUCTURE, "a COSE_Sign1 message is an array of 4 items (protected, unprotected, "
                      "payload, signature)")
    protected, unprotected, payload, signature = message
    if type(protected) is not bytes or not isinstance(unprotected, Mapping) or type(payload) is not bytes \
            or type(signature) is not bytes:
        raise _refuse(Refusal.COSE_STRUCTURE, "expected byte strings for the protected header, payload and "
                      "signature and a map for the unprotected header")
    header = _decode(protected, "the protected header", Refusal.COSE_STRUCTURE)
    entries = list(header.items()) if isinstance(header, Mapping) else None
    if entries != [(COSE_ALGORITHM_LABEL, ES384)] or any(type(x) is not int for x in entries[0]):
        raise _refuse(Refusal.COSE_ALGORITHM, "the protected header is not exactly {1: -35} (algorithm ES384), "
                      "which Nitro documents carry")
    if len(signature) != 2 * P384_COORDINATE:
        raise _refuse(Refusal.SIGNATURE, f"{len(signature)}-byte signature; ES384 is r ‖ s, 96 bytes")
    return protected, payload, signature


def _bytes_field(payload: dict, name: str, low: int, high: int, *, optional: bool = False) -> bytes | None:
    value = payload.get(name)
    if value is None and optional:
        return None
    if type(value) is not bytes or not low <= len(value) <= high:
        raise _refuse(Refusal.PAYLOAD, f"{name} must be a byte string of {low} to {high} bytes")
    return value


def _payload_fields(payload_bytes: bytes) -> dict:
    payload = _decode(payload_bytes, "the payload", Refusal.PAYLOAD)
    if not isinstance(payload, Mapping):
        raise _refuse(Refusal.PAYLOAD, "the payload is not a CBOR map")
    module_id = payload.get("module_id")
    if type(module_id) is not str or not module_id:
        raise _refuse(Refusal.PAYLOAD, "module_id must be a non-empty text string")
    digest = payload.get("digest")
    if type(digest) is not str or digest != "SHA384":
        shown = repr(digest) if type(digest) is str and len(digest) <= 16 else f"a {type(digest).__name__}"
        raise _refuse(Refusal.DIGEST, f"digest is {shown}; Nitro PCRs are SHA384")
    timestamp = payload.get("timestamp")
    if type(timestamp) is not int or not 0 < timestamp <= MAX_TIMESTAMP_MS:
        raise _refuse(Refusal.PAYLOAD, "timestamp must be a positive count of milliseconds before the year 10000")
    pcrs = payload.get("pcrs")
    if not isinstance(pcrs, Mapping) or not 1 <= len(pcrs) <= 32 or any(
            type(k) is not int or not 0 <= k < 32 or type(v) is not bytes or len(v) not in _PCR_LENGTHS
            for k, v in pcrs.items()):
        raise _refuse(Refusal.PAYLOAD, "pcrs must map 1 to 32 indices 0–31 to 32-, 48- or 64-byte values")
    cabundle = payload.get("cabundle")
    if not isinstance(cabundle, (list, tuple)) or not 1 <= len(cabundle) <= MAX_CABUNDLE or any(
            type(c) is not bytes or not 1 <= len(c) <= _CERT_LIMIT for c in cabundle):
        raise _refuse(Refusal.PAYLOAD, f"cabundle must list 1 to {MAX_CABUNDLE} DER certificates of at most "
                      f"{_CERT_LIMIT} bytes")
    return {
        "module_id": module_id,
        "timestamp": timestamp,
        "pcrs": dict(pcrs),
        "certificate": _bytes_field(payload, "certificate", 1, _CERT_LIMIT),
        "cabundle": list(cabundle),
        "public_key": _bytes_field(payload, "public_key", 1, _USER_BYTES_LIMIT, optional=True),
        "user_data": _bytes_field(payload, "user_data", 0, _USER_BYTES_LIMIT, optional=True),
        "nonce": _bytes_field(payload, "nonce", 0, _USER_BYTES_LIMIT, optional=True),
    }


def _certificate(der: bytes, refusal: Refusal, what: str) -> x509.Certificate:
    try:
        with warnings.catch_warnings():  # cryptography warns of RFC 5280 slips it still parses; the chain judges
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as error:
        raise _refuse(refusal, f"{what} is not a DER X.509 certificate") from error


def _verify_chain(leaf: x509.Certificate, bundle: list[x509.Certificate], root: x509.Certificate,
                  at: datetime) -> None:
    # The leaf is AWS's signing certificate, not a TLS client: any extensions are allowed on it. The CA
    # certificates must meet the Web PKI profile (CA basic constraint, key usage), as AWS's do.
    for what, certificate in [("the signing certificate", leaf)] + [(f"cabundle[{i}]", c) for i, c in enumerate(bundle)]:
        if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
            raise _refuse(Refusal.CERTIFICATE_CHAIN, f"{what} is valid from "
                          f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
                          f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC, not at the checking time "
                          f"{at:%Y-%m-%d %H:%M:%S} UTC")
    verifier = (PolicyBuilder().store(Store([root])).time(at).max_chain_depth(MAX_CABUNDLE)
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=ExtensionPolicy.permit_all())
                .build_client_verifier())
    try:
        verifier.verify(leaf, bundle)
    except (VerificationError, ValueError) as error:
        raise _refuse(Refusal.CERTIFICATE_CHAIN, f"the signing certificate does not chain to the trusted root at "
                      f"{at:%Y-%m-%d %H:%M:%S} UTC ({brief(error)})") from error


def _verify_signature(leaf: x509.Certificate, protected: bytes, payload: bytes, signature: bytes) -> None:
    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as error:
        raise _refuse(Refusal.LEAF_CERTIFICATE, "the signing certificate's key cannot be read") from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise _refuse(Refusal.LEAF_CERTIFICATE, "the signing certificate's key is not ECDSA P-384, which ES384 needs")
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    except ValueError as error:
        raise _refuse(Refusal.LEAF_CERTIFICATE, "the signing certificate's extensions cannot be read") \
            from error
    if is_ca:
        raise _refuse(Refusal.LEAF_CERTIFICATE, "the signing certificate is a CA certificate; AWS signs documents "
                      "with an end-entity certificate")
    r = int.from_bytes(signature[:P384_COORDINATE], "big")
    s = int.from_bytes(signature[P384_COORDINATE:], "big")
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    try:
        key.verify(encode_dss_signature(r, s), to_be_signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as error:
        raise _refuse(Refusal.SIGNATURE, "the ES384 signature does not verify against the signing certificate; "
                      "the document was changed or not signed by it") from error


def _check_time(timestamp: datetime, leaf: x509.Certificate, at: datetime, max_age: timedelta) -> None:
    if not leaf.not_valid_before_utc <= timestamp <= leaf.not_valid_after_utc:
        raise _refuse(Refusal.TIMESTAMP, f"the document is dated {timestamp:%Y-%m-%d %H:%M:%S} UTC, outside its "
                      "signing certificate's validity")
    if timestamp - CLOCK_SKEW > at:
        raise _refuse(Refusal.TIMESTAMP, f"the document is dated {timestamp:%Y-%m-%d %H:%M:%S} UTC, after the "
                      f"checking time {at:%Y-%m-%d %H:%M:%S} UTC")
    if at - timestamp > max_age:
        raise _refuse(Refusal.TIMESTAMP, f"the document is {at - timestamp} old; at most {max_age} is accepted: ask "
                      "the enclave for a fresh one")


def _measured(pcrs: dict[int, bytes]) -> None:
    missing = [i for i in MEASURED_PCRS if i not in pcrs]
    if missing:
        raise _refuse(Refusal.PCRS, f"PCR{missing[0]} is missing; the measurement needs PCR0, PCR1 and PCR2")
    if any(len(pcrs[i]) != P384_COORDINATE for i in MEASURED_PCRS):
        raise _refuse(Refusal.PCRS, "PCR0–2 must be 48-byte SHA384 values")
    if all(not any(pcrs[i]) for i in MEASURED_PCRS):
        raise _refuse(Refusal.DEBUG_ENCLAVE, "PCR0–2 are all zeros: a debug-mode enclave, whose memory its host "
                      "can read; run the enclave without --debug-mode")


def enclave_address(public_key: bytes | None) -> str:
    """The Ethereum address of the enclave's secp256k1 key: an uncompressed or compressed SEC1 point, or DER."""
    if public_key is None:
        raise _refuse(Refusal.PUBLIC_KEY, "the document names no public_key; the enclave must put its secp256k1 "
                      "signing key there")
    try:
        if public_key[:1] in (b"\x02", b"\x03", b"\x04"):
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
        else:
            key = load_der_public_key(public_key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise _refuse(Refusal.PUBLIC_KEY, "public_key is not a secp256k1 key (an uncompressed or compressed point, "
                      "or DER)") from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256K1):
        raise _refuse(Refusal.PUBLIC_KEY, "public_key is not on secp256k1, the curve Ethereum signatures use")
    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return to_checksum_address(keccak(point[1:])[12:])


def _stage(refusal: Refusal, check, *args):
    """Run one check; a library error on hostile input (cryptography meeting an odd certificate, say) is that
    check's refusal, never a crash, and its message quotes nothing of the input."""
    try:
        return check(*args)
    except AttestationRefused:
        raise
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm, x509.InvalidVersion) as error:
        raise _refuse(refusal, f"{refusal.value} could not be checked ({type(error).__name__})") from error


def verify_document(raw: bytes, *, root: x509.Certificate, at: datetime,
                    max_age: timedelta = DEFAULT_MAX_AGE) -> AttestationDocument:
    """The facts of ``raw`` once every check passes at time ``at`` against ``root``; else ``AttestationRefused``."""
    protected, payload_bytes, signature = _stage(Refusal.COSE_STRUCTURE, _cose_sign1, raw)
    fields = _stage(Refusal.PAYLOAD, _payload_fields, payload_bytes)
    leaf = _stage(Refusal.LEAF_CERTIFICATE, _certificate, fields["certificate"], Refusal.LEAF_CERTIFICATE,
                  "certificate")
    bundle = [_stage(Refusal.CERTIFICATE_CHAIN, _certificate, der, Refusal.CERTIFICATE_CHAIN, f"cabundle[{i}]")
              for i, der in enumerate(fields["cabundle"])]
    _stage(Refusal.CERTIFICATE_CHAIN, _verify_chain, leaf, bundle, root, at)
    _stage(Refusal.SIGNATURE, _verify_signature, leaf, protected, payload_bytes, signature)
    timestamp = datetime.fromtimestamp(fields["timestamp"] / 1000, UTC)
    _stage(Refusal.TIMESTAMP, _check_time, timestamp, leaf, at, max_age)
    _measured(fields["pcrs"])
    return AttestationDocument(
        module_id=fields["module_id"],
        timestamp=timestamp,
        pcrs=fields["pcrs"],
        public_key=fields["public_key"] or b"",
        tee_key=_stage(Refusal.PUBLIC_KEY, enclave_address, fields["public_key"]),
        user_data=fields["user_data"],
        nonce=fields["nonce"],
        certificate_expiry=leaf.not_valid_after_utc,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
