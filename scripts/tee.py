"""Register a TEE with the evidence of its enclave: an AWS Nitro attestation document and a quorum of attestors.

    ape run tee measurement --pcr0 … --pcr1 … --pcr2 …          (the id governance approves for an enclave image)
    ape run tee binding --operator 0x… --network …              (the user_data the enclave attests, less its TLS hash)
    ape run tee register enclave.cbor --signature a.json --signature b.json --endpoint https://… \\
        --network ethereum:sepolia:node --account operator [--reattest 0xOLDKEY]

`register` checks the document again at the chain's time, rebuilds the statement the attestors signed, checks
each signature file against it (same statement, a current attestor, its signature), refuses if fewer distinct
attestors than the threshold signed, asks the verifier whether it accepts the quorum, and only then sends
registerTee (or reattest, to rotate a registered TEE to the new key).
"""

import sys
from pathlib import Path

import click
from ape import project
from eth_utils import is_hex, to_bytes

from opgkit.attestor import SignedStatement, first_difference, quorum_evidence_of, signer_of
from opgkit.cli import (
    GROUP_EXIT_CODES, ExitCode, NetworkCommand, ScriptCommand, UserError, contract_at, exit_codes_help, nonzero_address,
    prepare_signer, read_json, require_object, signing_options,
)
from opgkit.nitro import Binding, nitro_measurement
from opgkit.nitro.registration import BINDING_PREFIX_LENGTH
from opgkit.tee_registration import (
    bytes32, checked_statement, registry_option, request_of, request_options, root_option, tee_registry,
)


@click.group(short_help="Register TEEs with Nitro attestation evidence", epilog=GROUP_EXIT_CODES)
def cli():
    """TEE operator tools."""


def _pcr(ctx, param, value: str) -> bytes:
    text = value if value.startswith("0x") else "0x" + value
    if not (is_hex(text) and len(text) == 98):
        raise click.BadParameter("a PCR is 48 bytes: 96 hex digits, as `nitro-cli describe-eif` prints it")
    return to_bytes(hexstr=text)


@cli.command(cls=ScriptCommand, short_help="Print the measurement id of an enclave image",
             epilog=exit_codes_help("printed", None))
@click.option("--pcr0", required=True, callback=_pcr, help="PCR0 of the enclave image (hex).")
@click.option("--pcr1", required=True, callback=_pcr, help="PCR1 (hex).")
@click.option("--pcr2", required=True, callback=_pcr, help="PCR2 (hex).")
def measurement(pcr0, pcr1, pcr2):
    """keccak256(PCR0‖PCR1‖PCR2): what governance passes to TEERegistry.approveMeasurement (type 1, AWS Nitro)."""
    click.echo(f"0x{nitro_measurement(pcr0, pcr1, pcr2).hex()}")


@cli.command(cls=NetworkCommand, short_help="Print the user_data an enclave must attest for a registration",
             epilog=exit_codes_help("printed", None))
@click.option("--operator", required=True, callback=nonzero_address, help="The operator that will register.")
@click.option("--tls-cert-hash", callback=bytes32,
              help="To check an enclave's user_data: keccak256 of its TLS certificate (DER). Without it, the first "
                   "160 bytes are printed and the enclave appends the hash of its own certificate.")
@registry_option
def binding(provider, operator, tls_cert_hash, registry):
    """abi.encode(tag, chainId, registry, operator, nonce, tlsCertHash) for the operator's next registration.

    The enclave itself must supply tlsCertHash, of the certificate whose key it generated: give the enclave the
    160-byte prefix printed here, never a hash of your choosing."""
    registry = tee_registry(provider, registry)
    bound = Binding(provider.chain_id, registry.address, operator, registry.nonces(operator), tls_cert_hash or bytes(32))
    data = bound.user_data()
    click.echo(f"0x{(data if tls_cert_hash else data[:BINDING_PREFIX_LENGTH]).hex()}")
    tail = "" if tls_cert_hash else "; the enclave appends keccak256 of its own TLS certificate (32 bytes)"
    click.echo(f"(chain {bound.chain_id}, registry {bound.registry}, operator {operator}, nonce {bound.nonce}; valid "
               f"until that nonce is used{tail})", err=True)


def _signatures(paths: tuple[Path, ...]) -> list[SignedStatement]:
    signed = []
    for path in paths:
        data = require_object(read_json(path, "attestor signature"), "attestor signature", path)
        try:
            signed.append(SignedStatement.from_json(data, str(path)))
        except ValueError as error:
            raise UserError(str(error)) from error
    return signed


def _quorum(verifier, statement, endpoint: str, signed: list[SignedStatement]) -> list[SignedStatement]:
    """The usable signatures, one per attestor; a mismatch is an error that names the file's problem."""
    by_attestor: dict[str, SignedStatement] = {}
    for item in signed:
        difference = first_difference(item.statement, statement)
        if difference is not None or item.endpoint != endpoint:
            field = difference or "endpoint"
            raise UserError(f"attestor {item.attestor} signed a different statement ({field} differs from this "
                            "registration's): ask it to sign again with the same document and options")
        if not verifier.isAttestor(item.attestor):
            raise UserError(f"{item.attestor} is not an attestor of {verifier.address} (removed, or never added)")
        recovered = signer_of(verifier, statement, item.signature)
        if recovered != item.attestor and not verifier.provider.get_code(item.attestor):  # ERC-1271: the verifier judges
            raise UserError(f"the signature in the file of attestor {item.attestor} is not its signature over this "
                            "statement")
        by_attestor[item.attestor] = item
    return list(by_attestor.values())


@cli.command(cls=NetworkCommand, short_help="Register (or rotate) a TEE with a document and attestor signatures",
             epilog=exit_codes_help("registered", "the document was refused (the check is named)"))
@signing_options
@click.argument("document", type=click.Path(path_type=Path))
@click.option("--signature", "signature_files", multiple=True, required=True, type=click.Path(path_type=Path),
              help="An attestor's signature file from `ape run attestor sign` (repeat for each attestor).")
@request_options
@click.option("--reattest", "current_key", callback=nonzero_address,
              help="Rotate this registered TEE key of yours to the document's key (TEERegistry.reattest).")
@registry_option
@root_option
def register(provider, account, autosign, document, signature_files, endpoint, payment_address, current_key,
             registry, trusted_root):
    """Register the enclave of DOCUMENT under the signing account, the operator."""
    registry = tee_registry(provider, registry)
    verifier = contract_at(project.AttestorQuorumVerifier, registry.verifier(), "the registry's verifier")
    facts, statement = checked_statement(provider, registry, document, trusted_root,
                                         request_of(account.address, endpoint, payment_address))
    quorum = _quorum(verifier, statement, endpoint, _signatures(signature_files))
    threshold = verifier.threshold()
    if len(quorum) < threshold:
        raise UserError(f"{len(quorum)} distinct attestor(s) signed; the verifier needs {threshold}: gather more "
                        "signature files")
    evidence = quorum_evidence_of(quorum)
    if not verifier.verifyAttestation(statement.as_args(), evidence):
        raise UserError(f"the verifier {verifier.address} does not accept these signatures for this statement")
    prepare_signer(account, autosign)
    if current_key is None:
        receipt = registry.registerTee(statement.as_args(), endpoint, evidence, sender=account)
    else:
        receipt = registry.reattest(current_key, statement.as_args(), endpoint, evidence, sender=account)
    click.echo(f"{'attestors':<13} {', '.join(s.attestor for s in quorum)} (threshold {threshold})")
    click.echo(f"{'registered':<13} TEE {facts.tee_key} for operator {account.address}, measurement "
               f"0x{statement.measurement.hex()}, endpoint {endpoint}")
    click.echo(f"{'transaction':<13} {receipt.txn_hash}")
    sys.exit(int(ExitCode.OK))
