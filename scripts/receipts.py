"""Check an inference receipt the way an auditor would, and say what its verification mode covers.

    ape run receipts verify receipt.json --network ethereum:sepolia:node
    ape run receipts verify 0x<requestId> --network ethereum:local:foundry --settlement 0x...

Exit codes: 0 every check held, 1 a check failed, 2 error (unreadable input, no contract, RPC down).
"""

import json
from pathlib import Path

import click
from ape import project
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ApeException
from eth_utils import is_hex, to_bytes

from opgkit import PROJECT_ROOT
from opgkit.cli import nonzero_address
from opgkit.deploy import RecordError, record_path_for, recorded_address
from opgkit.receipt_verifier import (
    ReceiptDocumentError, document_json, load_document, parse_document, verify_document, verify_request,
)

MARK = {True: "ok  ", False: "FAIL", None: "--  "}


@click.group(short_help="Check inference receipts")
def cli():
    """Auditor tools for inference receipts."""


def _request_id(target: str) -> bytes | None:
    if target.startswith("0x") and is_hex(target) and len(target) == 66:
        return to_bytes(hexstr=target)
    return None


def _print(report) -> None:
    click.echo(f"{'request':<13} 0x{report.request_id.hex()}")
    if report.receipt is not None:
        r = report.receipt
        click.echo(f"{'model':<13} 0x{r.modelId.hex()}")
        click.echo(f"{'signer':<13} {r.signer}  at {r.timestamp}")
        if r.price:
            click.echo(f"{'price':<13} {r.price} OPG wei, paid by {r.payer}")
    click.echo(f"{'mode':<13} {report.mode.name if report.mode is not None else '—'}")
    click.echo(f"{'status':<13} {report.status.name}")
    for check in report.checks:
        click.echo(f"  {MARK[check.ok]} {check.name:<13} {check.detail}")
    coverage = report.covers()
    if coverage:
        click.echo(f"{'covers':<13} {coverage[0]}")
        click.echo(f"{'not covered':<13} {coverage[1]}")
    click.echo(f"{'result':<13} {'verified' if report.passed else 'NOT verified'}")


@cli.command(cls=ConnectedProviderCommand, short_help="Check one receipt against the chain")
@click.argument("target")
@click.option("--settlement", callback=nonzero_address,
              help="InferenceSettlement address (default: from the deployments record).")
@click.option("--proof", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSON {"batchId": n, "proof": ["0x…", …]} for a batched receipt (overrides the document\'s).')
def verify(provider, target, settlement, proof):
    """TARGET is a receipt document (JSON) or a 0x-prefixed 32-byte requestId."""
    try:
        if settlement is None:
            record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
            settlement = recorded_address(record, "InferenceSettlement")
        contract = project.InferenceSettlement.at(settlement)
        request_id = _request_id(target)
        if request_id is not None:
            report = verify_request(contract, request_id)
        else:
            document = load_document(Path(target))
            if proof is not None:
                document = _with_proof(document, proof)
            report = verify_document(
                contract, project.TEERegistry.at(contract.teeRegistry()), project.NodeStaking.at(contract.staking()),
                project.ModelRegistry.at(contract.models()), document,
            )
    except (ReceiptDocumentError, RecordError) as error:
        raise click.UsageError(str(error)) from error
    except ApeException as error:
        click.echo(f"Error: could not read the settlement contract at {settlement}: {error}", err=True)
        raise SystemExit(2) from error
    _print(report)
    raise SystemExit(0 if report.passed else 1)


def _with_proof(document, path: Path):
    try:
        batch = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ReceiptDocumentError(f"{path} is not JSON: {error}") from error
    data = document_json(document.receipt, document.signature, response=document.response)
    return parse_document(data | {"batch": batch})
