"""An attestation service: check an AWS Nitro attestation document, and vouch for the enclave only if it passes.

    ape run attestor verify enclave.cbor [--at 1732990000]                    (offline: what the document proves)
    ape run attestor sign enclave.cbor --operator 0x… --endpoint https://… \\
        --network ethereum:sepolia:node --account attestor-1 [--out signature.json]

`sign` verifies the document at the chain's time (COSE ES384 signature, certificate chain to AWS's pinned Nitro
root, PCRs, enclave key), checks that its user_data binds this registration (chain, TEERegistry, operator, the
operator's registration nonce, the enclave's TLS certificate hash: `ape run tee binding`), that the key is not
another operator's TEE, and that keccak256(PCR0‖PCR1‖PCR2) is approved on chain,
then signs the registration statement the AttestorQuorumVerifier accepts and writes it to a file the operator
passes to `ape run tee register`. A refused document prints the failed check's name and exits 1.
"""

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from ape import project

from opgkit.attestor import SignedStatement, sign_statement
from opgkit.cli import (
    GROUP_EXIT_CODES, ExitCode, NetworkCommand, ScriptCommand, UserError, contract_at, ensure_writable, exit_codes_help,
    nonzero_address, prepare_signer, signing_options, write_atomically,
)
from opgkit.nitro import AttestationRefused, document_measurement, verify_document
from opgkit.nitro.document import MAX_TIMESTAMP_MS
from opgkit.tee_registration import (
    checked_statement, print_checked, print_document, read_document, refused, registry_option, request_of,
    request_options, root_for, root_option, tee_registry,
)


@click.group(short_help="Check Nitro attestation documents and vouch for enclaves", epilog=GROUP_EXIT_CODES)
def cli():
    """An attestation service of the AttestorQuorumVerifier."""


@cli.command(cls=ScriptCommand, short_help="Check a document offline and print what it proves",
             epilog=exit_codes_help("every check passed", "the document was refused (the check is named)"))
@click.argument("document", type=click.Path(path_type=Path))
@click.option("--at", type=click.IntRange(min=1, max=MAX_TIMESTAMP_MS // 1000 - 86_400),
              help="Check at this UNIX time instead of now (an old document).")
@root_option
def verify(document, at, trusted_root):
    """Verify DOCUMENT's signature, certificate chain and PCRs; print its measurement id and enclave key.

    Without a chain there is no registration to bind or measurement to look up; `sign` checks those."""
    when = datetime.fromtimestamp(at, UTC) if at else datetime.now(UTC)
    try:
        root = root_for(trusted_root, development_chain=True)
        facts = verify_document(read_document(document), root=root, at=when)
    except AttestationRefused as error:
        refused(error)
    print_checked(root, when)
    print_document(facts)
    click.echo(f"{'measurement':<13} 0x{document_measurement(facts).hex()} (keccak256 of PCR0‖PCR1‖PCR2)")
    bound = "none" if not facts.user_data else f"0x{facts.user_data.hex()}"
    click.echo(f"{'user_data':<13} {bound}")


@cli.command(cls=NetworkCommand, short_help="Vouch for an enclave: verify, then sign its registration statement",
             epilog=exit_codes_help("signed; the signature file is written", "the document was refused (the check is named)"))
@signing_options
@click.argument("document", type=click.Path(path_type=Path))
@click.option("--operator", required=True, callback=nonzero_address, help="The staked operator registering the TEE.")
@request_options
@registry_option
@root_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the signature (default: <document>.<attestor>.json next to the document).")
def sign(provider, account, autosign, document, operator, endpoint, payment_address, registry, trusted_root, out):
    """Sign the registration statement for DOCUMENT if, and only if, every check passes."""
    registry = tee_registry(provider, registry)
    verifier = contract_at(project.AttestorQuorumVerifier, registry.verifier(), "the registry's verifier")
    if not verifier.isAttestor(account.address):
        raise UserError(f"{account.address} is not an attestor of {verifier.address}; governance adds attestors with "
                        "addAttestor, or sign with an attestor's account")
    out = out or document.with_name(f"{document.name}.{account.address}.json")
    ensure_writable(out, "--out")
    facts, statement = checked_statement(provider, registry, document, trusted_root,
                                         request_of(operator, endpoint, payment_address))
    click.echo(f"{'bound to':<13} operator {operator}, registry {registry.address}, chain {provider.chain_id}, "
               f"nonce {statement.nonce}, TLS certificate 0x{statement.tlsCertHash.hex()}")
    click.echo(f"{'measurement':<13} 0x{statement.measurement.hex()} (approved on chain, AWS Nitro)")
    prepare_signer(account, autosign)
    signed = SignedStatement(attestor=account.address, signature=sign_statement(verifier, statement, account),
                             statement=statement, endpoint=endpoint, document_sha256=facts.sha256)
    write_atomically(out, json.dumps(signed.to_json(), indent=2) + "\n")
    click.echo(f"{'signed':<13} by attestor {account.address}, statement expires "
               f"{datetime.fromtimestamp(statement.expiry, UTC):%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"{'written':<13} {out}")
    sys.exit(int(ExitCode.OK))
