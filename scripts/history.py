"""Index the protocol's events into the execution history, then print a node's or a model's record.

    ape run history --network ethereum:local:foundry --node 0x...
    ape run history --network ethereum:sepolia:node --settlement 0x... --requests 0x... --model 0x<64 hex> --json

The history (SQLite, --db) is read incrementally: each run reads only the blocks since the last, and a run
stopped at any point resumes with no duplicate. A node's record comes with its reputation score (the formula
is in opgkit/history/reputation.py). Contract addresses: --settlement, else the deployments record's
InferenceSettlement; the batch, staking and TEE contracts are read from the settlement. --requests is optional
(else the record's InferenceRequests, only when the settlement also came from the record).
"""

import json
import re
from pathlib import Path

import click
from ape import project

from opgkit import PROJECT_ROOT
from opgkit.cli import NetworkCommand, contract_at, ensure_writable, exit_codes_help, nonzero_address, with_backoff
from opgkit.deployments_record import load_record, record_path_for, recorded_address
from opgkit.history.index import CHUNK_BLOCKS, Indexer, Sources, default_database, open_database
from opgkit.history.record import model_record, node_record
from opgkit.history.reputation import reputation


def _model_id(ctx, param, value):
    if value is None:
        return None
    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", value):
        raise click.BadParameter(f"{value!r} is not a model id (0x followed by 64 hex digits)")
    return value.lower()


def _warn(reason: str, delay: float) -> None:
    click.echo(f"warning: {reason}; retrying in {delay:g} s", err=True)


def _addresses(provider, settlement, requests):
    if settlement is not None:
        return settlement, requests
    record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
    settlement = recorded_address(record, "InferenceSettlement")
    if requests is None:
        requests = load_record(record)["contracts"].get("InferenceRequests", {}).get("address")
    return settlement, requests


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {count}" for key, count in value.items()) or "0"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return "-" if value is None else str(value)


def _table(title: str, rows: dict) -> None:
    click.echo(title)
    for label, value in rows.items():
        click.echo(f"  {label:<24} {_show(value)}")


def _print_node(record, score) -> None:
    receipts = record.receipts
    _table(f"node {record.node} (through block {record.through_block})", {
        "tee keys": record.tee_keys,
        "receipts individual": receipts.individual,
        "receipts async": receipts.async_,
        "receipts batched": receipts.batched,
        "batched, rejected": receipts.batched_rejected,
        "self-paid (not counted)": record.self_paid,
        "proofs requested": record.proofs_requested,
        "proofs delivered": record.proofs_delivered,
        "proofs missed": record.proofs_missed,
        "batches posted": record.batches_posted,
        "batches rejected": record.batches_rejected,
        "slashes": record.slashes,
        "slashed fraction": record.slashed_fraction,
        "jails": record.jails,
        "jailed until": record.jailed_until,
        "heartbeats": record.heartbeats,
        "uptime": record.uptime,
        "requests answered": record.requests_answered,
        "median latency (s)": record.median_latency,
    })
    _table("reputation", {"success": score.success, "uptime": score.uptime, "latency": score.latency,
                          "score": f"{score.score:.1f} / 100"})


def _print_model(record) -> None:
    receipts = record.receipts
    _table(f"model {record.model_id} (through block {record.through_block})", {
        "receipts individual": receipts.individual,
        "receipts async": receipts.async_,
        "receipts batched": receipts.batched,
        "batched, rejected": receipts.batched_rejected,
        "requests opened": record.requests_opened,
        "requests answered": record.requests_answered,
        "median latency (s)": record.median_latency,
        "nodes": record.nodes,
    })


@click.command(cls=NetworkCommand, short_help="Index the execution history; print a node's or model's record",
               epilog=exit_codes_help("indexed and printed", None))
@click.option("--settlement", callback=nonzero_address,
              help="InferenceSettlement address (default: from the deployments record).")
@click.option("--requests", callback=nonzero_address,
              help="InferenceRequests address, for request counts and latency (optional).")
@click.option("--db", type=click.Path(path_type=Path),
              help="SQLite file of the history (default: .history/<chain id>.sqlite in the working directory).")
@click.option("--confirmations", type=click.IntRange(min=0, max=1_000), default=0, show_default=True,
              help="Blocks below the head left unread (events that may still be reorganised away).")
@click.option("--from-block", type=click.IntRange(min=0), default=0, show_default=True,
              help="First block read when the database is new (the deployment block saves time).")
@click.option("--chunk", type=click.IntRange(min=1, max=100_000), default=CHUNK_BLOCKS, show_default=True,
              help="Blocks read and committed at a time.")
@click.option("--node", callback=nonzero_address, help="Print this node's (operator's) record and reputation.")
@click.option("--model", callback=_model_id, help="Print this model's record (its id, 0x + 64 hex digits).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of readable tables.")
def cli(provider, settlement, requests, db, confirmations, from_block, chunk, node, model, as_json):
    """Bring the history database up to the head (minus --confirmations), then print the records asked for."""
    retry = lambda call: with_backoff(call, attempts=5, on_retry=_warn)  # noqa: E731
    settlement, requests = _addresses(provider, settlement, requests)
    settlement = retry(lambda: contract_at(project.InferenceSettlement, settlement, "--settlement"))
    requests = None if requests is None else retry(lambda: contract_at(project.InferenceRequests, requests,
                                                                       "--requests"))
    sources = Sources.from_settlement(settlement, requests, retry)
    path = db or default_database(retry(lambda: provider.chain_id), Path.cwd())
    ensure_writable(path, "history database")
    store = open_database(path, provider, sources, retry)
    try:
        report = Indexer(store, sources, provider, confirmations, chunk, from_block, retry).run()
        output = {"database": str(path), "through_block": report.through_block, "added": report.added,
                  "removed": report.removed}
        if not as_json:
            if report.removed:
                click.echo(f"history {path}: the chain was reorganised; {sum(report.removed.values())} events "
                           "of the replaced blocks forgotten and read again")
            click.echo(f"history {path}: {report.total} new events, read through block {report.through_block}")
        if node is not None:
            record = node_record(store.db, node)
            score = reputation(record)
            output["node"] = record.as_dict() | {"reputation": score.as_dict()}
            if not as_json:
                _print_node(record, score)
        if model is not None:
            record = model_record(store.db, model)
            output["model"] = record.as_dict()
            if not as_json:
                _print_model(record)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(output))
