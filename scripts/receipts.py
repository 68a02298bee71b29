"""Check an inference receipt the way an auditor would, and say what its verification mode covers.

    ape run receipts verify receipt.json --network ethereum:sepolia:node
    ape run receipts verify receipt.json --proof proof.json --network …            (a batched receipt)
    ape run receipts verify 0x<requestId> --payer 0x<payer> --network … --settlement 0x...

A request is recorded in its payer's namespace, so a bare requestId needs --payer (a receipt document names
its payer). Batch inclusion is checked against the BatchSettlement the settlement contract is connected to.
"""

import sys
from pathlib import Path

import click
from ape import project
from eth_utils import is_hex, to_bytes

from opgkit import PROJECT_ROOT
from opgkit.cli import GROUP_EXIT_CODES, ExitCode, NetworkCommand, contract_at, exit_codes_help, nonzero_address, read_json
from opgkit.deployments_record import record_path_for, recorded_address
from opgkit.receipt_verifier import (
    ReceiptDocumentError, document_json, load_document, parse_document, verify_document, verify_request,
)

MARK = {True: "ok  ", False: "FAIL", None: "--  "}


@click.group(short_help="Check inference receipts", epilog=GROUP_EXIT_CODES)
def cli():
    """Auditor tools for inference receipts."""


def _request_id(target: str) -> bytes | None:
    if target.startswith("0x") and is_hex(target) and len(target) == 66:
        return to_bytes(hexstr=target)
    return None


def _print(report) -> None:
    click.echo(f"{'request':<13} 0x{report.request_id.hex()}")
    click.echo(f"{'payer':<13} {report.payer}")
    if report.receipt is not None:
        r = report.receipt
        click.echo(f"{'model':<13} 0x{r.modelId.hex()}")
        click.echo(f"{'signer':<13} {r.signer}  at {r.timestamp}")
        if r.price:
            click.echo(f"{'price':<13} {r.price} OPG wei")
    if report.mode is not None:
        mode = f"{report.mode.name} (verified on chain)"
    elif report.claimed_mode is not None:
        mode = f"{report.claimed_mode.name} (claimed; not verified on chain)"
    else:
        mode = "—"
    click.echo(f"{'mode':<13} {mode}")
    click.echo(f"{'status':<13} {report.status.name}")
    for check in report.checks:
        click.echo(f"  {MARK[check.ok]} {check.name:<13} {check.detail}")
    coverage = report.covers()
    if coverage:
        once = "" if report.mode is not None else "(once verified) "
        click.echo(f"{'covers':<13} {once}{coverage[0]}")
        click.echo(f"{'not covered':<13} {coverage[1]}")
    if not report.passed:
        result = "NOT verified"
    elif report.verified:
        result = "verified"
    else:
        result = f"no check failed, but the chain has not verified it ({report.status.name})"
    click.echo(f"{'result':<13} {result}")


@cli.command(cls=NetworkCommand, short_help="Check one receipt against the chain",
             epilog=exit_codes_help("every check held", "a check failed"))
@click.argument("target")
@click.option("--payer", callback=nonzero_address,
              help="Whose namespace a requestId TARGET is looked up in (a document names its own payer).")
@click.option("--settlement", callback=nonzero_address,
              help="InferenceSettlement address (default: from the deployments record).")
@click.option("--proof", type=click.Path(path_type=Path),
              help='JSON {"batchId": n, "proof": ["0x…", …]} for a batched receipt (overrides the document\'s).')
def verify(provider, target, payer, settlement, proof):
    """TARGET is a receipt document (JSON) or a 0x-prefixed 32-byte requestId (with --payer)."""
    request_id = _request_id(target)
    if request_id is not None and payer is None:
        raise click.UsageError("a requestId is recorded in its payer's namespace: give --payer 0x… (the account "
                               "that asked for the inference)")
    if request_id is None and payer is not None:
        raise click.UsageError("--payer is for a requestId; a receipt document names its own payer")
    if request_id is not None and proof is not None:
        raise click.UsageError("--proof is for a receipt document; a requestId has no leaf to prove")
    document = None
    if request_id is None:
        if target.startswith("0x") and is_hex(target) and not Path(target).exists():
            raise ReceiptDocumentError(f"{target} is neither a 32-byte requestId nor a file")
        document = load_document(Path(target))
        if proof is not None:
            document = _with_proof(document, proof)
    if settlement is None:
        record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
        settlement = recorded_address(record, "InferenceSettlement")
    contract = contract_at(project.InferenceSettlement, settlement, "--settlement")
    if document is None:
        report = verify_request(contract, payer, request_id)
    else:
        report = verify_document(
            contract, project.TEERegistry.at(contract.teeRegistry()), project.NodeStaking.at(contract.staking()),
            project.ModelRegistry.at(contract.models()), document,
        )
    _print(report)
    sys.exit(int(ExitCode.OK if report.passed else ExitCode.CHECK_FAILED))


def _with_proof(document, path: Path):
    batch = read_json(path, "batch proof")
    data = document_json(document.receipt, document.signature, response=document.response, zkml=document.zkml)
    return parse_document(data | {"batch": batch})
