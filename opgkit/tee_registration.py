"""What the `attestor` and `tee` scripts share: the registration request options, reading a document, the root.

A refused document ends a command with one ``refused`` line naming the failed check and exit code 1.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from ape import project
from eth_utils import is_hex, to_bytes

from opgkit import PROJECT_ROOT
from opgkit.attestation import Statement
from opgkit.attestor import RegistrationRequest, chain_time, registration_statement
from opgkit.cli import ExitCode, UserError, contract_at, is_development_chain, nonzero_address
from opgkit.deployments_record import record_path_for, recorded_address
from opgkit.nitro import AttestationDocument, AttestationRefused, fingerprint, trusted_root, verify_document
from opgkit.nitro.document import MAX_DOCUMENT_BYTES
from opgkit.nitro.roots import AWS_NITRO_ROOT_SHA256


def bytes32(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
    """Click callback: 0x followed by 64 hex digits."""
    if value is None:
        return None
    if not (value.startswith("0x") and is_hex(value) and len(value) == 66):
        raise click.BadParameter(f"must be 0x followed by 64 hex digits, got {value!r}")
    return to_bytes(hexstr=value)


def request_options(command):
    """--endpoint and --payment-address: what the operator asks attestors to record beside the document's facts."""
    command = click.option("--payment-address", callback=nonzero_address,
                           help="Who is paid for the TEE's receipts (default: the operator).")(command)
    return click.option("--endpoint", required=True,
                        help="The enclave's HTTPS endpoint, as it will be registered.")(command)


def root_option(command):
    return click.option(
        "--trusted-root", type=click.Path(dir_okay=False, path_type=Path),
        help="PEM root to trust instead of AWS's Nitro root (pinned by fingerprint). Development chains only: "
             "the local CA of the demo and the tests.")(command)


def registry_option(command):
    return click.option("--registry", callback=nonzero_address,
                        help="TEERegistry address (default: from the deployments record).")(command)


def request_of(operator: str, endpoint: str, payment_address: str | None) -> RegistrationRequest:
    return RegistrationRequest(operator=operator, endpoint=endpoint, payment_address=payment_address or operator)


def tee_registry(provider, address: str | None):
    record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
    return contract_at(project.TEERegistry, address or recorded_address(record, "TEERegistry"), "--registry")


def read_document(path: Path) -> bytes:
    """The document's bytes, refusing anything that is not a regular file of plausible size before reading it."""
    try:
        if not path.is_file():
            raise UserError(f"{path} is not a file; give the attestation document (CBOR) the enclave produced")
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise UserError(f"{path} is {path.stat().st_size} bytes; an attestation document is at most "
                            f"{MAX_DOCUMENT_BYTES}")
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from error


def root_for(path: Path | None, *, development_chain: bool):
    try:
        return trusted_root(path, development_chain=development_chain)
    except OSError as error:
        raise UserError(f"cannot read --trusted-root {path}: {error.strerror or error}") from error


def print_checked(root, at: datetime) -> None:
    click.echo(f"{'checked':<13} COSE_Sign1 ES384 signature, chain to the {describe_root(root)} at "
               f"{at:%Y-%m-%d %H:%M:%S} UTC, PCR0–2, enclave key")


def checked_statement(provider, registry, document: Path, root_path: Path | None,
                      request: RegistrationRequest) -> tuple[AttestationDocument, Statement]:
    """The document at ``document`` verified at the chain's time (AWS's root, or a development chain's), and the
    registration statement it supports on ``registry``; printed. A refusal ends the command (exit 1)."""
    at = chain_time(registry)
    try:
        root = root_for(root_path, development_chain=is_development_chain(provider))
        facts = verify_document(read_document(document), root=root, at=at)
        print_checked(root, at)
        statement = registration_statement(facts, request, registry)
    except AttestationRefused as error:
        refused(error)
    print_document(facts)
    return facts, statement


def describe_root(root) -> str:
    digest = fingerprint(root)
    return f"AWS Nitro root {digest[:16]}…" if digest == AWS_NITRO_ROOT_SHA256 else f"local root {digest[:16]}… " \
        "(development chains only)"


def print_document(document: AttestationDocument) -> None:
    click.echo(f"{'document':<13} sha256 {document.sha256}")
    click.echo(f"{'module':<13} {document.module_id}, dated {document.timestamp:%Y-%m-%d %H:%M:%S} UTC")
    for i, pcr in enumerate(document.measured_pcrs):
        click.echo(f"{f'PCR{i}':<13} {pcr.hex()}")
    click.echo(f"{'tee key':<13} {document.tee_key}")
    click.echo(f"{'valid until':<13} {document.certificate_expiry:%Y-%m-%d %H:%M:%S} UTC (its signing certificate)")


def refused(error: AttestationRefused) -> None:
    """Print the refusal and exit 1: the command worked, the document did not pass."""
    click.echo(f"{'refused':<13} {error.refusal.name}: {error.detail}")
    sys.exit(int(ExitCode.CHECK_FAILED))
