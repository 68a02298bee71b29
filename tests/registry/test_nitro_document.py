"""AWS Nitro attestation documents: the real one from AWS, and Nitro-shaped ones from a local CA.

No chain is involved: these are the checks an attestor runs before it looks at the registry.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings, strategies as st

from opgkit.nitro import (
    AWS_NITRO_ROOT_SHA256, AttestationRefused, Binding, Refusal, aws_nitro_root, check_binding, document_measurement,
    enclave_address, fingerprint, nitro_measurement, trusted_root, verify_document,
)
from opgkit.nitro.document import MAX_DOCUMENT_BYTES
from opgkit.nitro.local_ca import LocalNitroCA, _certificate, pcrs_for, sign_cose
from opgkit.nitro.registration import REGISTRATION_TAG

VALID_AT = datetime.fromtimestamp(1732990000, UTC)  # the instant the fixture's README gives
REAL_TEE_KEY = "0x3c32C4Ad111a12D7d3Af032cfFAff7789dfa555f"
REAL_PCR0 = "ec74bfbe7f7445a6c7610e152935e028276f638042b74797b119648e13f7a3675796b721034c320f140ea001b41aeae2"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ENCLAVE = Account.from_key(keccak(text="nitro document test enclave"))
REGISTRATION = Binding(31337, "0x" + "11" * 20, "0x" + "22" * 20, 0, keccak(text="enclave TLS certificate"))
EXPECTED = dict(chain_id=REGISTRATION.chain_id, registry=REGISTRATION.registry, operator=REGISTRATION.operator,
                nonce=REGISTRATION.nonce)


def uncompressed(account) -> bytes:
    return b"\x04" + account._key_obj.public_key.to_bytes()


@pytest.fixture(scope="module")
def real(nitro_fixtures) -> bytes:
    return (nitro_fixtures / "attestation-2024-11-30.cbor").read_bytes()


@pytest.fixture(scope="module")
def ca() -> LocalNitroCA:
    return LocalNitroCA.create(NOW - timedelta(days=30))


@pytest.fixture(scope="module")
def local_document(ca):
    def issue(*, pcrs=None, public_key=None, user_data=None, at=NOW, **kwargs):
        return ca.issue(pcrs=pcrs or pcrs_for("test image"), public_key=public_key or uncompressed(ENCLAVE),
                        user_data=REGISTRATION.user_data() if user_data is None else user_data, at=at, **kwargs)

    return issue


def refusal_of(raw: bytes, root, at=NOW, **kwargs) -> Refusal:
    with pytest.raises(AttestationRefused) as caught:
        verify_document(raw, root=root, at=at, **kwargs)
    return caught.value.refusal


def cose_parts(raw: bytes) -> list:
    return cbor2.loads(raw)


def rebuilt(parts) -> bytes:
    return cbor2.dumps(parts)


def with_payload(raw: bytes, key: ec.EllipticCurvePrivateKey | None = None, **changes) -> bytes:
    """The document with payload fields changed; re-signed with ``key`` if given, else with the old signature."""
    protected, unprotected, payload, signature = cose_parts(raw)
    fields = cbor2.loads(payload) | changes
    fields = {k: v for k, v in fields.items() if v is not ...}
    if key is not None:
        return sign_cose(protected, cbor2.dumps(fields), key)
    return rebuilt([protected, unprotected, cbor2.dumps(fields), signature])


# ---------------------------------------------------------------- the real AWS document


def test_real_document__at_its_valid_instant__verifies_with_the_readme_facts(real):
    document = verify_document(real, root=aws_nitro_root(), at=VALID_AT)
    assert document.sha256 == "69d51f984229a1bc4009ac2029b1a7f5d255ada7239004b8cda5d06dcdbd365f"
    assert document.module_id == "i-0de38b2b6853cc9e8-enc0193685e7fee7d85"
    assert document.timestamp == datetime.fromtimestamp(1732983768.387, UTC)
    assert document.pcrs[0].hex() == REAL_PCR0
    assert document.tee_key == REAL_TEE_KEY
    assert document.user_data is None and document.nonce is None
    assert document.certificate_expiry == datetime(2024, 11, 30, 19, 22, 48, tzinfo=UTC)
    assert document_measurement(document) == keccak(b"".join(document.pcrs[i] for i in range(3)))


def test_real_document__today__refused_because_its_leaf_expired(real):
    with pytest.raises(AttestationRefused) as caught:
        verify_document(real, root=aws_nitro_root(), at=datetime.now(UTC))
    assert caught.value.refusal is Refusal.CERTIFICATE_CHAIN
    assert caught.value.detail.startswith("the signing certificate is valid from 2024-11-30 16:22:45 to "
                                          "2024-11-30 19:22:48 UTC")  # the leaf, and when it was valid


def test_real_document__just_after_its_leaf_expired__refused(real):
    assert refusal_of(real, aws_nitro_root(), at=datetime(2024, 11, 30, 19, 22, 49, tzinfo=UTC)) \
        is Refusal.CERTIFICATE_CHAIN


def test_real_document__is_bound_to_no_registration__refused_by_binding(real):
    document = verify_document(real, root=aws_nitro_root(), at=VALID_AT)
    with pytest.raises(AttestationRefused) as caught:
        check_binding(document, **EXPECTED)
    assert caught.value.refusal is Refusal.BINDING and "empty" in caught.value.detail


def test_real_document__one_byte_of_the_payload_changed__signature_refused(real):
    protected, unprotected, payload, signature = cose_parts(real)
    position = payload.index(bytes.fromhex(REAL_PCR0)) + 7  # inside PCR0: still well-formed CBOR
    changed = payload[:position] + bytes([payload[position] ^ 1]) + payload[position + 1:]
    assert refusal_of(rebuilt([protected, unprotected, changed, signature]), aws_nitro_root(), VALID_AT) \
        is Refusal.SIGNATURE


def test_real_document__enclave_key_swapped_for_the_attackers__signature_refused(real):
    """An attacker keeps AWS's signature and chain and puts its own key where the enclave's was."""
    attacker = Account.from_key(keccak(text="attacker's key"))
    assert refusal_of(with_payload(real, public_key=uncompressed(attacker)), aws_nitro_root(), VALID_AT) \
        is Refusal.SIGNATURE


def test_real_document__one_byte_of_the_signature_changed__refused(real):
    protected, unprotected, payload, signature = cose_parts(real)
    changed = signature[:10] + bytes([signature[10] ^ 0x80]) + signature[11:]
    assert refusal_of(rebuilt([protected, unprotected, payload, changed]), aws_nitro_root(), VALID_AT) \
        is Refusal.SIGNATURE


@pytest.mark.parametrize("which", ["certificate", "cabundle[1]", "cabundle[3]"])
def test_real_document__one_byte_of_a_certificate_changed__refused(real, which):
    fields = cbor2.loads(cose_parts(real)[2])
    der = fields["certificate"] if which == "certificate" else fields["cabundle"][int(which[-2])]
    position = len(der) - 20  # inside the certificate's signature: still parseable DER
    changed = der[:position] + bytes([der[position] ^ 1]) + der[position + 1:]
    if which == "certificate":
        raw = with_payload(real, certificate=changed)
    else:
        bundle = list(fields["cabundle"])
        bundle[int(which[-2])] = changed
        raw = with_payload(real, cabundle=bundle)
    # The chain is checked before the COSE signature (which a changed payload also fails): the refusal must
    # come from the chain check itself.
    assert refusal_of(raw, aws_nitro_root(), VALID_AT) is Refusal.CERTIFICATE_CHAIN


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_real_document__any_single_byte_changed__refused(real, data):
    position = data.draw(st.integers(0, len(real) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = real[:position] + bytes([real[position] ^ flip]) + real[position + 1:]
    with pytest.raises(AttestationRefused):
        verify_document(changed, root=aws_nitro_root(), at=VALID_AT)


def test_real_document__against_another_root__chain_refused(real, ca):
    assert refusal_of(real, ca.root, VALID_AT) is Refusal.CERTIFICATE_CHAIN


def test_aws_root__packaged_copy__matches_the_pinned_fingerprint():
    assert fingerprint(aws_nitro_root()) == AWS_NITRO_ROOT_SHA256
    assert fingerprint(aws_nitro_root()) == "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"


def test_trusted_root__another_root_on_a_public_chain__refused(ca, tmp_path, nitro_fixtures):
    pem = tmp_path / "root.pem"
    pem.write_bytes(ca.root_pem())
    with pytest.raises(AttestationRefused) as caught:
        trusted_root(pem, development_chain=False)
    assert caught.value.refusal is Refusal.TRUSTED_ROOT
    assert fingerprint(trusted_root(pem, development_chain=True)) == fingerprint(ca.root)
    aws = tmp_path / "aws.pem"
    aws.write_bytes((nitro_fixtures / "aws-nitro-root.pem").read_bytes())
    assert fingerprint(trusted_root(aws, development_chain=False)) == AWS_NITRO_ROOT_SHA256


# ---------------------------------------------------------------- local CA documents: each check on its own


def test_local_document__verifies_and_names_the_enclave_key(local_document, ca):
    document = verify_document(local_document(), root=ca.root, at=NOW)
    assert document.tee_key == ENCLAVE.address
    check_binding(document, **EXPECTED)
    assert document_measurement(document) == nitro_measurement(*(pcrs_for("test image")[i] for i in range(3)))


def test_local_document__against_the_aws_root__chain_refused(local_document):
    assert refusal_of(local_document(), aws_nitro_root()) is Refusal.CERTIFICATE_CHAIN


def test_local_document__tag_18__accepted(local_document, ca):
    tagged = cbor2.dumps(cbor2.CBORTag(18, cose_parts(local_document())))
    assert verify_document(tagged, root=ca.root, at=NOW).tee_key == ENCLAVE.address


@pytest.mark.parametrize("user_data, field", [
    (replace(REGISTRATION, operator="0x" + "33" * 20).user_data(), "operator"),
    (replace(REGISTRATION, chain_id=1).user_data(), "chain"),
    (replace(REGISTRATION, registry="0x" + "44" * 20).user_data(), "registry"),
    (replace(REGISTRATION, nonce=1).user_data(), "registration nonce"),
])
def test_binding__document_for_another_registration__refused_naming_the_field(local_document, ca, user_data, field):
    document = verify_document(local_document(user_data=user_data), root=ca.root, at=NOW)
    with pytest.raises(AttestationRefused) as caught:
        check_binding(document, **EXPECTED)
    assert caught.value.refusal is Refusal.BINDING
    assert f"bound to {field}" in caught.value.detail


@pytest.mark.parametrize("user_data", [b"\x01" * 32, REGISTRATION.user_data()[:-1],
                                       keccak(b"other") + REGISTRATION.user_data()[32:]])
def test_binding__not_a_registration_binding__refused(local_document, ca, user_data):
    document = verify_document(local_document(user_data=user_data), root=ca.root, at=NOW)
    with pytest.raises(AttestationRefused) as caught:
        check_binding(document, **EXPECTED)
    assert caught.value.refusal is Refusal.BINDING
    assert REGISTRATION.user_data()[:32] == REGISTRATION_TAG


def test_debug_enclave__all_zero_pcrs__refused(local_document, ca):
    zeros = {i: bytes(48) for i in range(5)}
    assert refusal_of(local_document(pcrs=zeros), ca.root) is Refusal.DEBUG_ENCLAVE


def test_pcrs__pcr2_missing__refused(local_document, ca):
    pcrs = pcrs_for("test image")
    del pcrs[2]
    assert refusal_of(local_document(pcrs=pcrs), ca.root) is Refusal.PCRS


@pytest.mark.parametrize("public_key", [b"\x04" + bytes(64), b"\x05" + bytes(64), b"\x04" + b"\x01" * 10])
def test_public_key__not_a_secp256k1_point__refused(local_document, ca, public_key):
    assert refusal_of(local_document(public_key=public_key), ca.root) is Refusal.PUBLIC_KEY


def test_public_key__compressed_point__same_address():
    point = ENCLAVE._key_obj.public_key.to_compressed_bytes()
    assert enclave_address(point) == ENCLAVE.address


def test_public_key__missing__refused(ca):
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    raw = _signed_by_fresh_leaf(ca, leaf_key, public_key=...)
    assert refusal_of(raw, ca.root) is Refusal.PUBLIC_KEY


def _signed_by_fresh_leaf(ca, leaf_key, protected=None, issuer=None, issuer_key=None, ca_leaf=False, **changes):
    """A document whose payload is changed as asked, signed by a fresh leaf of ``issuer`` (the intermediate)."""
    leaf = _certificate("fresh leaf", leaf_key, issuer or ca.intermediate, issuer_key or ca.intermediate_key,
                        NOW - timedelta(minutes=1), NOW + timedelta(hours=3), ca=ca_leaf)
    base = ca.issue(pcrs=pcrs_for("test image"), public_key=uncompressed(ENCLAVE), user_data=REGISTRATION.user_data(),
                    at=NOW)
    protected_bytes, _, payload, _ = cose_parts(base)
    fields = cbor2.loads(payload) | {"certificate": leaf.public_bytes(Encoding.DER)} | changes
    fields = {k: v for k, v in fields.items() if v is not ...}
    return sign_cose(protected if protected is not None else protected_bytes, cbor2.dumps(fields), leaf_key)


def test_algorithm__protected_header_not_es384__refused(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    assert refusal_of(_signed_by_fresh_leaf(ca, key, protected=cbor2.dumps({1: -7})), ca.root) is Refusal.COSE_ALGORITHM
    assert refusal_of(_signed_by_fresh_leaf(ca, key, protected=cbor2.dumps({1: -35, 4: b"kid"})), ca.root) \
        is Refusal.COSE_ALGORITHM


def test_digest__not_sha384__refused(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    assert refusal_of(_signed_by_fresh_leaf(ca, key, digest="SHA256"), ca.root) is Refusal.DIGEST


def test_leaf__p256_key__refused(ca):
    assert refusal_of(_signed_by_fresh_leaf(ca, ec.generate_private_key(ec.SECP256R1())), ca.root) \
        is Refusal.LEAF_CERTIFICATE


def test_chain__leaf_issued_by_a_non_ca_certificate__refused(ca):
    """An attacker holding any leaf of the chain (not a CA) cannot issue a signing certificate of its own."""
    stolen_leaf_key = ec.generate_private_key(ec.SECP384R1())
    stolen_leaf = _certificate("an enclave's leaf", stolen_leaf_key, ca.intermediate, ca.intermediate_key,
                               NOW - timedelta(minutes=5), NOW + timedelta(hours=3), ca=False)
    forged_key = ec.generate_private_key(ec.SECP384R1())
    bundle = [ca.root.public_bytes(Encoding.DER), ca.intermediate.public_bytes(Encoding.DER),
              stolen_leaf.public_bytes(Encoding.DER)]
    raw = _signed_by_fresh_leaf(ca, forged_key, issuer=stolen_leaf, issuer_key=stolen_leaf_key, cabundle=bundle)
    assert refusal_of(raw, ca.root) is Refusal.CERTIFICATE_CHAIN


def test_chain__attackers_own_ca_with_the_aws_bundle__refused(real):
    """The real AWS bundle, and a leaf from the attacker's own CA signing a payload with the attacker's key."""
    attacker_ca = LocalNitroCA.create(VALID_AT - timedelta(days=1))
    fields = cbor2.loads(cose_parts(real)[2])
    forged = attacker_ca.issue(pcrs=fields["pcrs"], public_key=uncompressed(ENCLAVE), user_data=None,
                               at=VALID_AT - timedelta(minutes=1))
    forged_fields = cbor2.loads(cose_parts(forged)[2]) | {"cabundle": fields["cabundle"]}
    protected, unprotected, _, signature = cose_parts(forged)
    raw = rebuilt([protected, unprotected, cbor2.dumps(forged_fields), signature])
    assert refusal_of(raw, aws_nitro_root(), VALID_AT) is Refusal.CERTIFICATE_CHAIN


def test_time__document_older_than_max_age__refused(local_document, ca):
    assert refusal_of(local_document(at=NOW - timedelta(minutes=30)), ca.root, max_age=timedelta(minutes=10)) \
        is Refusal.TIMESTAMP


def test_time__document_dated_after_the_checking_time__refused(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    future = int((NOW + timedelta(minutes=30)).timestamp() * 1000)
    assert refusal_of(_signed_by_fresh_leaf(ca, key, timestamp=future), ca.root) is Refusal.TIMESTAMP


def test_time__document_dated_before_its_leaf__refused(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    before = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    assert refusal_of(_signed_by_fresh_leaf(ca, key, timestamp=before), ca.root) is Refusal.TIMESTAMP


@pytest.mark.parametrize("raw, refusal", [
    (b"", Refusal.DOCUMENT_SIZE),
    (b"\x00" * (MAX_DOCUMENT_BYTES + 1), Refusal.DOCUMENT_SIZE),
    (b"\xff\xff", Refusal.CBOR),
    (cbor2.dumps([1, 2, 3]), Refusal.COSE_STRUCTURE),
    (cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", b""])), Refusal.CBOR),
    (cbor2.dumps([cbor2.dumps({1: -35}), {}, cbor2.dumps({}), bytes(96)]), Refusal.PAYLOAD),
    (cbor2.dumps([cbor2.dumps({1: -35}), {}, cbor2.dumps({}), bytes(64)]), Refusal.SIGNATURE),
    (cbor2.dumps([cbor2.dumps({1: -35}), {}, b"\xff", bytes(96)]), Refusal.PAYLOAD),
    (cbor2.dumps([b"\xff", {}, b"", bytes(96)]), Refusal.COSE_STRUCTURE),
])
def test_malformed__named_refusal(ca, raw, refusal):
    assert refusal_of(raw, ca.root) is refusal


@pytest.mark.parametrize("field, value", [
    ("module_id", ""), ("timestamp", -1), ("pcrs", {0: b"short"}), ("cabundle", []), ("certificate", "text"),
    ("user_data", b"\x00" * 1025), ("pcrs", {40: bytes(48)}),
])
def test_payload__field_outside_aws_syntax__refused(local_document, ca, field, value):
    assert refusal_of(with_payload(local_document(), **{field: value}), ca.root) is Refusal.PAYLOAD


@pytest.mark.parametrize("mangle", [
    lambda raw: raw + b"\x00",  # a trailing byte
    lambda raw: b"\x9f" + raw[1:] + b"\xff",  # the message as an indefinite-length array
])
def test_cbor__trailing_bytes_or_indefinite_lengths__refused(local_document, ca, mangle):
    raw = local_document()
    assert verify_document(raw, root=ca.root, at=NOW)
    assert refusal_of(mangle(raw), ca.root) is Refusal.CBOR


def test_cbor__payload_with_a_duplicate_key__refused(local_document, ca):
    """Two `public_key` entries: a reader keeping the first and one keeping the last would see different keys."""
    protected, unprotected, payload, _ = cose_parts(local_document())
    first_entry = cbor2.dumps({"public_key": uncompressed(ENCLAVE)})[1:]
    doubled = bytes([payload[0] + 1]) + payload[1:] + first_entry  # one more entry in the map header
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(AttestationRefused) as caught:
        verify_document(sign_cose(protected, doubled, key), root=ca.root, at=NOW)
    assert caught.value.refusal is Refusal.PAYLOAD and "a duplicate map key" in caught.value.detail


# ---------------------------------------------------------------- hostile encodings (second review)


def _shared_reference_bomb(levels: int, width: int) -> bytes:
    """CBOR whose shared references (tags 28/29) expand ``width ** levels`` fold: a few KiB, more than memory."""
    header = cbor2.dumps([0] * width)[:-width]  # an array header announcing `width` items

    def level(depth: int) -> bytes:  # the value marked shareable at `depth` gets index `depth`
        if depth == levels:
            return b"\xd8\x1c" + cbor2.dumps([0] * width)
        return b"\xd8\x1c" + header + level(depth + 1) + (b"\xd8\x1d" + cbor2.dumps(depth + 1)) * (width - 1)

    return level(0)


@pytest.mark.parametrize("where", ["protected", "digest", "document"])
def test_cbor__shared_reference_bomb__refused_at_once(local_document, ca, where):
    bomb = _shared_reference_bomb(1, 2000)  # 2000**2 leaves, shallow enough for the depth limit to let it by
    protected, unprotected, payload, signature = cose_parts(local_document())
    if where == "protected":
        raw = rebuilt([bomb_wrapped(bomb), unprotected, payload, signature])
    elif where == "digest":
        fields = cbor2.loads(payload)
        raw = _with_raw_field(protected, unprotected, fields, "digest", bomb, signature)
    else:
        raw = bomb
    assert len(raw) < MAX_DOCUMENT_BYTES
    with pytest.raises(AttestationRefused) as caught:
        verify_document(raw, root=ca.root, at=NOW)
    assert caught.value.refusal in (Refusal.CBOR, Refusal.COSE_STRUCTURE, Refusal.PAYLOAD)
    assert "tag" in caught.value.detail


def bomb_wrapped(bomb: bytes) -> bytes:
    return bytes.fromhex("a101") + bomb  # {1: <bomb>}


def _with_raw_field(protected, unprotected, fields: dict, name: str, raw_value: bytes, signature) -> bytes:
    """The payload map with ``name`` replaced by an already-encoded CBOR value."""
    others = {k: v for k, v in fields.items() if k != name}
    encoded = cbor2.dumps(others)
    payload = bytes([encoded[0] + 1]) + encoded[1:] + cbor2.dumps(name) + raw_value
    return rebuilt([protected, unprotected, payload, signature])


def test_cose_header__bignum_or_float_algorithm__refused_without_printing_it(local_document, ca):
    protected, unprotected, payload, signature = cose_parts(local_document())
    for header, refusal in (({1: 10**5000}, Refusal.COSE_STRUCTURE),  # a bignum is a tagged value: refused
                            ({1: -(2**63)}, Refusal.COSE_ALGORITHM), ({1: -35.0}, Refusal.COSE_ALGORITHM),
                            ({True: -35}, Refusal.COSE_ALGORITHM)):
        raw = rebuilt([cbor2.dumps(header), unprotected, payload, signature])
        with pytest.raises(AttestationRefused) as caught:
            verify_document(raw, root=ca.root, at=NOW)
        assert caught.value.refusal is refusal and len(str(caught.value)) < 300


@pytest.mark.parametrize("digest", ["A" * 5000, 2**63, [0] * 1000])
def test_digest__long_or_odd__refused_without_printing_it(local_document, ca, digest):
    protected, unprotected, payload, signature = cose_parts(local_document())
    raw = rebuilt([protected, unprotected, cbor2.dumps(cbor2.loads(payload) | {"digest": digest}), signature])
    with pytest.raises(AttestationRefused) as caught:
        verify_document(raw, root=ca.root, at=NOW)
    assert caught.value.refusal is Refusal.DIGEST and len(str(caught.value)) < 300


def test_timestamp__beyond_the_year_9999__refused(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    assert refusal_of(_signed_by_fresh_leaf(ca, key, timestamp=2**64 - 1), ca.root) is Refusal.PAYLOAD


def test_leaf__a_ca_certificate__refused(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    assert refusal_of(_signed_by_fresh_leaf(ca, key, ca_leaf=True), ca.root) is Refusal.LEAF_CERTIFICATE


# ---------------------------------------------------------------- odd inputs from the second review: refusals, not crashes


def test_certificate__subject_with_invalid_utf8__refused_not_a_crash(ca):
    key = ec.generate_private_key(ec.SECP384R1())
    expired = _certificate("ZZZZ", key, ca.intermediate, ca.intermediate_key, NOW - timedelta(days=10),
                           NOW - timedelta(days=5), ca=False)
    der = bytearray(expired.public_bytes(Encoding.DER))
    position = der.find(b"ZZZZ")
    der[position:position + 2] = b"\xff\xfe"
    raw = _signed_by_fresh_leaf(ca, key, cabundle=[ca.root.public_bytes(Encoding.DER), bytes(der)])
    assert refusal_of(raw, ca.root) in (Refusal.CERTIFICATE_CHAIN, Refusal.LEAF_CERTIFICATE)


def test_public_key__der_of_an_unknown_algorithm__refused(local_document, ca):
    unknown = bytes.fromhex("300d" "3005" "06032a0304" "030400010203")  # SubjectPublicKeyInfo of OID 1.2.3.4
    assert refusal_of(local_document(public_key=unknown), ca.root) is Refusal.PUBLIC_KEY


def test_trusted_root__version_2_certificate_or_not_a_file__refused(ca, tmp_path):
    der = bytearray(ca.root.public_bytes(Encoding.DER))
    position = der.find(bytes.fromhex("a003020102"))  # [0] EXPLICIT version v3
    der[position + 4] = 1  # v2
    from base64 import encodebytes

    pem = tmp_path / "v2.pem"
    pem.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + encodebytes(bytes(der)) + b"-----END CERTIFICATE-----\n")
    for path in (pem, tmp_path):
        with pytest.raises(AttestationRefused) as caught:
            trusted_root(path, development_chain=True)
        assert caught.value.refusal is Refusal.TRUSTED_ROOT


def test_cbor__duplicate_key_message__quotes_nothing_of_the_input(local_document, ca):
    protected, unprotected, payload, signature = cose_parts(local_document())
    hostile = "\x1b[31mFAKE\nrefused " + "A" * 4000
    doubled = cbor2.dumps({hostile: 1})[:-1] + b"\x01"
    raw = rebuilt([protected, unprotected, bytes([0xA2]) + doubled[1:] + doubled[1:], signature])
    with pytest.raises(AttestationRefused) as caught:
        verify_document(raw, root=ca.root, at=NOW)
    assert "FAKE" not in str(caught.value) and len(str(caught.value)) < 200
