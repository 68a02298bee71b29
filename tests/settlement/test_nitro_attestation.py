"""Attestors vouch for an enclave only on its evidence: Nitro-shaped documents from a local CA, on anvil.

End to end: the enclave's document → `ape run attestor sign` by a quorum → `ape run tee register` → a TEE
receipt signed by the attested key settles and pays. A key from an unapproved image never gets that far.
The attestors are ape test accounts TEST::0–2 (deployer, treasury, alice), two of which must sign.
"""

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit import PROJECT_ROOT
from opgkit.attestor import (
    RegistrationRequest, SignedStatement, chain_time, quorum_evidence_of, registration_statement, sign_statement,
)
from opgkit.nitro import AttestationRefused, Binding, Refusal, nitro_measurement, verify_document
from opgkit.nitro.local_ca import LocalNitroCA, pcrs_for
from opgkit.receipts import Status
from opgkit.testing import reverts
from settlement_helpers import NITRO, PRICE, TLS_CERT_HASH, Mode, receipt

APPROVED_IMAGE, ROGUE_IMAGE = "approved enclave image", "unapproved enclave image"
ENDPOINT = "https://tee.example:8443"
ATTESTOR_ACCOUNTS = ("TEST::0", "TEST::1", "TEST::2")


def measurement_of(image: str) -> bytes:
    pcrs = pcrs_for(image)
    return nitro_measurement(pcrs[0], pcrs[1], pcrs[2])


def public_key(account) -> bytes:
    return b"\x04" + account._key_obj.public_key.to_bytes()


@pytest.fixture(scope="module")
def attestors(accounts):
    return [accounts[0], accounts[1], accounts[2]]


@pytest.fixture(scope="module")
def tees(project, deployer, gov, staking, attestors):
    """A registry with no TEE yet, a 2-of-3 quorum of ape test accounts, and the approved image's measurement."""
    verifier = deployer.deploy(project.AttestorQuorumVerifier, gov, [a.address for a in attestors], 2)
    registry = deployer.deploy(project.TEERegistry, staking, verifier, gov, 3_600)
    registry.addTeeType(NITRO, "AWS Nitro", sender=gov)
    registry.approveMeasurement(measurement_of(APPROVED_IMAGE), NITRO, 1, sender=gov)
    return registry


@pytest.fixture(scope="module")
def verifier(project, tees):
    return project.AttestorQuorumVerifier.at(tees.verifier())


@pytest.fixture(scope="module")
def ca(chain):
    return LocalNitroCA.create(datetime.fromtimestamp(chain.blocks.head.timestamp, UTC) - timedelta(days=1))


@pytest.fixture(scope="module")
def root_pem(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("nitro") / "local-root.pem"
    path.write_bytes(ca.root_pem())
    return path


@pytest.fixture
def issue(ca, tees):
    """Factory: the enclave of ``key`` running ``image`` attests, bound to ``operator``'s next registration."""

    def issue(key, operator, image=APPROVED_IMAGE, binding=None):
        binding = binding or Binding(tees.provider.chain_id, tees.address, operator.address, tees.nonces(operator),
                                     TLS_CERT_HASH)
        return ca.issue(pcrs=pcrs_for(image), public_key=public_key(key), user_data=binding.user_data(),
                        at=chain_time(tees))

    return issue


def ape_run(uri, *args):
    return subprocess.run(["ape", "run", *args, "--network", uri], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def request_options(operator):
    return ["--endpoint", ENDPOINT, "--operator", operator.address]


def request_for(operator) -> RegistrationRequest:
    return RegistrationRequest(operator=operator.address, endpoint=ENDPOINT, payment_address=operator.address)


def attest(tees, verifier, ca, raw, operator, attestor):
    """What `ape run attestor sign` does, in process: verify at the chain's time, build, sign."""
    document = verify_document(raw, root=ca.root, at=chain_time(tees))
    statement = registration_statement(document, request_for(operator), tees)
    return SignedStatement(attestor.address, sign_statement(verifier, statement, attestor), statement, ENDPOINT,
                           document.sha256)


# ---------------------------------------------------------------- end to end, as operators run it


def test_end_to_end__document_attestor_quorum_registration_receipt__settles_and_pays(
        uri, tees, verifier, issue, root_pem, tmp_path, tee_key, operator, settlement, token, open_model, alice,
        sign, heartbeat):
    document = tmp_path / "enclave.cbor"
    document.write_bytes(issue(tee_key, operator))
    signatures = []
    for index, attestor in enumerate(ATTESTOR_ACCOUNTS[:2]):
        out = tmp_path / f"attestor-{index}.json"
        signed = ape_run(uri, "attestor", "sign", str(document), *request_options(operator), "--registry",
                         tees.address, "--trusted-root", str(root_pem), "--account", attestor, "--out", str(out))
        assert signed.returncode == 0, signed.stdout + signed.stderr
        assert "measurement" in signed.stdout and "approved on chain" in signed.stdout
        signatures += ["--signature", str(out)]
    assert json.loads(out.read_text())["statement"]["teeKey"] == tee_key.address

    registered = ape_run(uri, "tee", "register", str(document), *signatures, *request_options(operator)[:2],
                         "--registry", tees.address, "--trusted-root", str(root_pem), "--account", "TEST::7")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert f"registered    TEE {tee_key.address}" in registered.stdout
    record = tees.tee(tee_key.address)
    assert record.operator == operator.address and record.measurement == measurement_of(APPROVED_IMAGE)

    r = receipt("nitro-attested", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address,
                price=PRICE)
    wallet = token.balanceOf(alice)
    settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert token.balanceOf(alice) == wallet - PRICE
    assert settlement.proceedsOf(operator) > 0


def test_end_to_end__unapproved_image__attestor_refuses_and_its_receipt_is_refused(
        uri, tees, issue, root_pem, tmp_path, operator, settlement, open_model, alice, sign, chain):
    rogue = Account.from_key(keccak(text="key of an enclave running unapproved code"))
    document = tmp_path / "rogue.cbor"
    document.write_bytes(issue(rogue, operator, image=ROGUE_IMAGE))
    out = tmp_path / "rogue-signature.json"
    refused = ape_run(uri, "attestor", "sign", str(document), *request_options(operator), "--registry", tees.address,
                      "--trusted-root", str(root_pem), "--account", "TEST::0", "--out", str(out))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused       MEASUREMENT" in refused.stdout and "not approved" in refused.stdout
    assert not out.exists()
    assert tees.tee(rogue.address).operator == "0x" + "00" * 20

    r = receipt("rogue-signed", open_model, rogue.address, chain.blocks.head.timestamp, mode=Mode.TEE,
                payer=alice.address, price=PRICE)
    with reverts(settlement.InferenceSettlementSignerInactive):
        settlement.settle(r.as_args(), sign(r, rogue), sender=alice)


def test_attestor_cli__aws_root_by_default__local_document_refused_by_chain(uri, tees, issue, tmp_path, operator):
    document = tmp_path / "local.cbor"
    document.write_bytes(issue(Account.create(), operator))
    result = ape_run(uri, "attestor", "sign", str(document), *request_options(operator), "--registry", tees.address,
                     "--account", "TEST::0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused       CERTIFICATE_CHAIN" in result.stdout


def test_tee_register__fewer_attestors_than_threshold__nothing_sent(uri, tees, verifier, ca, issue, root_pem,
                                                                   tmp_path, operator, attestors, chain):
    key = Account.create()
    raw = issue(key, operator)
    document = tmp_path / "one.cbor"
    document.write_bytes(raw)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(attest(tees, verifier, ca, raw, operator, attestors[0]).to_json()))
    nonce = tees.nonces(operator)
    result = ape_run(uri, "tee", "register", str(document), "--signature", str(one), "--signature", str(one),
                     *request_options(operator)[:2], "--registry", tees.address, "--trusted-root", str(root_pem),
                     "--account", "TEST::7")
    assert result.returncode == 2 and "1 distinct attestor(s) signed; the verifier needs 2" in result.stderr
    assert tees.nonces(operator) == nonce


def test_tee_register__a_signature_over_another_endpoint__named_and_nothing_sent(uri, tees, verifier, ca, issue,
                                                                                 root_pem, tmp_path, operator,
                                                                                 attestors):
    raw = issue(Account.create(), operator)
    document = tmp_path / "doc.cbor"
    document.write_bytes(raw)
    files = []
    for attestor in attestors[:2]:
        signed = attest(tees, verifier, ca, raw, operator, attestor)
        path = tmp_path / f"{attestor.address}.json"
        path.write_text(json.dumps(signed.to_json()))
        files += ["--signature", str(path)]
    result = ape_run(uri, "tee", "register", str(document), *files, "--endpoint", "https://elsewhere.example",
                     "--registry", tees.address, "--trusted-root", str(root_pem), "--account", "TEST::7")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "signed a different statement (endpointHash differs" in result.stderr


# ---------------------------------------------------------------- the attestor's checks against the chain, in process


def test_attestor__document_bound_to_another_operator__refused(tees, verifier, ca, issue, operator, operator2,
                                                               attestors):
    """An operator cannot have attestors vouch for another operator's enclave document (front-run, copy)."""
    raw = issue(Account.create(), operator)
    with pytest.raises(AttestationRefused) as caught:
        attest(tees, verifier, ca, raw, operator2, attestors[0])
    assert caught.value.refusal is Refusal.BINDING and "operator" in caught.value.detail


@pytest.mark.parametrize("field", ["chain_id", "registry"])
def test_attestor__document_bound_to_another_chain_or_registry__refused(tees, verifier, ca, issue, operator,
                                                                        attestors, field):
    honest = Binding(tees.provider.chain_id, tees.address, operator.address, tees.nonces(operator), TLS_CERT_HASH)
    other = Binding(**(honest.__dict__ | {field: 10 if field == "chain_id" else "0x" + "ab" * 20}))
    raw = issue(Account.create(), operator, binding=other)
    with pytest.raises(AttestationRefused) as caught:
        attest(tees, verifier, ca, raw, operator, attestors[0])
    assert caught.value.refusal is Refusal.BINDING


def test_attestor__document_replayed_after_its_registration__refused_by_the_used_nonce(tees, verifier, ca, issue,
                                                                                       operator, attestors):
    key = Account.create()
    raw = issue(key, operator)
    quorum = [attest(tees, verifier, ca, raw, operator, a) for a in attestors[:2]]
    statement = quorum[0].statement
    tees.registerTee(statement.as_args(), ENDPOINT, quorum_evidence_of(quorum), sender=operator)
    with pytest.raises(AttestationRefused) as caught:
        attest(tees, verifier, ca, raw, operator, attestors[2])
    assert caught.value.refusal is Refusal.BINDING and "registration nonce" in caught.value.detail
    with reverts(tees.InvalidAccountNonce):
        tees.registerTee(statement.as_args(), ENDPOINT, quorum_evidence_of(quorum), sender=operator)


def test_attestor__enclave_key_registered_to_another_operator__refused(tees, verifier, ca, issue, operator, operator2,
                                                                      attestors):
    """A host that can make a victim's enclave attest for it (an image serving user_data to anyone) must not get
    the victim's registered key vouched for: the key would pay the squatter for the victim's receipts."""
    victim_key = Account.create()
    raw = issue(victim_key, operator)
    quorum = [attest(tees, verifier, ca, raw, operator, a) for a in attestors[:2]]
    tees.registerTee(quorum[0].statement.as_args(), ENDPOINT, quorum_evidence_of(quorum), sender=operator)
    squatter_document = issue(victim_key, operator2)
    with pytest.raises(AttestationRefused) as caught:
        attest(tees, verifier, ca, squatter_document, operator2, attestors[0])
    assert caught.value.refusal is Refusal.TEE_KEY and operator.address in caught.value.detail
    # the victim itself may still re-attest the same key (a new endpoint, say)
    assert attest(tees, verifier, ca, issue(victim_key, operator), operator, attestors[0]).statement.teeKey \
        == victim_key.address


def test_attestor__tls_certificate_hash__is_the_enclaves_not_the_operators(tees, verifier, ca, issue, operator,
                                                                          attestors):
    enclave_certificate = keccak(text="the certificate whose key the enclave generated")
    binding = Binding(tees.provider.chain_id, tees.address, operator.address, tees.nonces(operator),
                      enclave_certificate)
    signed = attest(tees, verifier, ca, issue(Account.create(), operator, binding=binding), operator, attestors[0])
    assert signed.statement.tlsCertHash == enclave_certificate


def test_attestor__revoked_measurement__refused(project, deployer, gov, staking, attestors, ca, operator):
    registry = deployer.deploy(project.TEERegistry, staking,
                               deployer.deploy(project.AttestorQuorumVerifier, gov, [attestors[0]], 1), gov, 3_600)
    registry.addTeeType(NITRO, "AWS Nitro", sender=gov)
    registry.approveMeasurement(measurement_of(APPROVED_IMAGE), NITRO, 1, sender=gov)
    registry.revokeMeasurement(measurement_of(APPROVED_IMAGE), sender=gov)
    binding = Binding(registry.provider.chain_id, registry.address, operator.address, 0, TLS_CERT_HASH)
    raw = ca.issue(pcrs=pcrs_for(APPROVED_IMAGE), public_key=public_key(Account.create()),
                   user_data=binding.user_data(), at=chain_time(registry))
    document = verify_document(raw, root=ca.root, at=chain_time(registry))
    with pytest.raises(AttestationRefused) as caught:
        registration_statement(document, request_for(operator), registry)
    assert caught.value.refusal is Refusal.MEASUREMENT and "revoked" in caught.value.detail


def test_attestor__measurement_approved_for_another_tee_type__refused(project, deployer, gov, staking, attestors, ca,
                                                                      operator):
    registry = deployer.deploy(project.TEERegistry, staking,
                               deployer.deploy(project.AttestorQuorumVerifier, gov, [attestors[0]], 1), gov, 3_600)
    registry.addTeeType(2, "Intel TDX", sender=gov)
    registry.approveMeasurement(measurement_of(APPROVED_IMAGE), 2, 1, sender=gov)
    binding = Binding(registry.provider.chain_id, registry.address, operator.address, 0, TLS_CERT_HASH)
    raw = ca.issue(pcrs=pcrs_for(APPROVED_IMAGE), public_key=public_key(Account.create()),
                   user_data=binding.user_data(), at=chain_time(registry))
    with pytest.raises(AttestationRefused) as caught:
        registration_statement(verify_document(raw, root=ca.root, at=chain_time(registry)), request_for(operator),
                               registry)
    assert caught.value.refusal is Refusal.MEASUREMENT and "TEE type 2" in caught.value.detail


def test_attestors__sign_independently__the_same_statement_which_the_verifier_accepts(tees, verifier, ca, issue,
                                                                                      operator, attestors):
    raw = issue(Account.create(), operator)
    signed = [attest(tees, verifier, ca, raw, operator, a) for a in attestors]
    assert len({s.statement for s in signed}) == 1
    assert signed[0].statement.expiry == int(verify_document(raw, root=ca.root, at=chain_time(tees))
                                             .certificate_expiry.timestamp())
    assert verifier.verifyAttestation(signed[0].statement.as_args(), quorum_evidence_of(signed[1:]))
    assert not verifier.verifyAttestation(signed[0].statement.as_args(), quorum_evidence_of(signed[:1]))


# ---------------------------------------------------------------- user mistakes: one named line, nothing sent


@pytest.mark.parametrize("content", [b"", b"\xff\xfe garbage", b"[1, 2]", b'{"format": "opg-attestor-signature/1"}',
                                     json.dumps({"format": "opg-attestor-signature/1", "attestor": "0x12",
                                                 "signature": "0x", "endpoint": ENDPOINT, "document_sha256": "",
                                                 "statement": {}}).encode()])
def test_tee_register__malformed_signature_file__error_line_and_nothing_sent(uri, tees, issue, root_pem, tmp_path,
                                                                            operator, content):
    document = tmp_path / "doc.cbor"
    document.write_bytes(issue(Account.create(), operator))
    signature = tmp_path / "signature.json"
    signature.write_bytes(content)
    nonce = tees.nonces(operator)
    result = ape_run(uri, "tee", "register", str(document), "--signature", str(signature),
                     *request_options(operator)[:2], "--registry", tees.address, "--trusted-root", str(root_pem),
                     "--account", "TEST::7")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert tees.nonces(operator) == nonce


@pytest.mark.parametrize("make_document, code, message", [
    (lambda path: path, 2, "is not a file"),
    (lambda path: path.mkdir() or path, 2, "is not a file"),
    (lambda path: (path.write_bytes(b"not cbor at all \xff"), path)[1], 1, "refused       CBOR"),
])
def test_attestor_sign__document_missing_or_not_cbor__named(uri, tees, root_pem, tmp_path, operator, make_document,
                                                            code, message):
    document = make_document(tmp_path / "enclave.cbor")
    result = ape_run(uri, "attestor", "sign", str(document), *request_options(operator), "--registry", tees.address,
                     "--trusted-root", str(root_pem), "--account", "TEST::0")
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_attestor_sign__account_not_an_attestor__refused_before_signing(uri, tees, issue, root_pem, tmp_path,
                                                                        operator):
    document = tmp_path / "doc.cbor"
    document.write_bytes(issue(Account.create(), operator))
    result = ape_run(uri, "attestor", "sign", str(document), *request_options(operator), "--registry", tees.address,
                     "--trusted-root", str(root_pem), "--account", "TEST::5")
    assert result.returncode == 2 and "is not an attestor of" in result.stderr


# ---------------------------------------------------------------- the helper commands


def test_tee_binding__prints_the_user_data_attestors_expect(uri, tees, operator):
    result = ape_run(uri, "tee", "binding", "--operator", operator.address, "--tls-cert-hash",
                     "0x" + TLS_CERT_HASH.hex(), "--registry", tees.address)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = Binding(tees.provider.chain_id, tees.address, operator.address, tees.nonces(operator), TLS_CERT_HASH)
    assert f"0x{expected.user_data().hex()}" in result.stdout.splitlines()
    prefix = ape_run(uri, "tee", "binding", "--operator", operator.address, "--registry", tees.address)
    assert prefix.returncode == 0 and f"0x{expected.user_data()[:160].hex()}" in prefix.stdout.splitlines()
    assert "the enclave appends keccak256 of its own TLS certificate" in prefix.stderr


def test_tee_measurement_and_attestor_verify__the_real_aws_document(nitro_fixtures):
    fixture = nitro_fixtures / "attestation-2024-11-30.cbor"
    verified = subprocess.run(["ape", "run", "attestor", "verify", str(fixture), "--at", "1732990000"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "tee key       0x3c32C4Ad111a12D7d3Af032cfFAff7789dfa555f" in verified.stdout
    lines = dict(line.split(None, 1) for line in verified.stdout.splitlines() if line.startswith("PCR"))
    measured = subprocess.run(["ape", "run", "tee", "measurement", "--pcr0", lines["PCR0"], "--pcr1", lines["PCR1"],
                               "--pcr2", lines["PCR2"]], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert measured.returncode == 0 and f"measurement   {measured.stdout.strip()}" in verified.stdout
    today = subprocess.run(["ape", "run", "attestor", "verify", str(fixture)], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert today.returncode == 1 and "refused       CERTIFICATE_CHAIN" in today.stdout


def test_attestor_verify__unreadable_root_or_impossible_time__named_never_a_traceback(nitro_fixtures, tmp_path):
    fixture = str(nitro_fixtures / "attestation-2024-11-30.cbor")
    empty = tmp_path / "root.pem"
    empty.write_bytes(b"")
    for args, code, message in (
            (["--trusted-root", str(empty)], 1, "refused       TRUSTED_ROOT"),
            (["--at", "999999999999999"], 2, "is not in the range"),
    ):
        result = subprocess.run(["ape", "run", "attestor", "verify", fixture, *args], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == code and message in result.stdout + result.stderr, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
