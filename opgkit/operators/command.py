"""The command-line surface the three operators share: options, and connecting everything before the loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
from ape import project

from opgkit import PROJECT_ROOT
from opgkit.cli import contract_at, ensure_writable, finite_number, nonzero_address, prepare_signer, signing_options
from opgkit.deployments_record import record_path_for, recorded_address
from opgkit.operators.metrics import OperatorMetrics
from opgkit.operators.runtime import Runtime
from opgkit.operators.sending import SENDS_SCHEMA, Sender
from opgkit.operators.store import Store
from opgkit.quiet import stdout_to_stderr


def operator_options(role: str, default_state: str):
    """--settlement, --state, --follow, --poll, --metrics, --rpc-attempts, --json and the signing account."""

    def decorate(command):
        for option in reversed([
            click.option("--settlement", callback=nonzero_address,
                         help="InferenceSettlement address (default: from the deployments record)."),
            click.option("--state", type=click.Path(path_type=Path), default=f"build/operators/{default_state}",
                         show_default=True, help=f"SQLite file of the {role}'s durable state (one per chain)."),
            click.option("--follow", is_flag=True, help="Keep running, polling for new blocks, until stopped."),
            click.option("--poll", type=click.FloatRange(min=0.05, max=3600), callback=finite_number, default=2.0,
                         show_default=True, help="Seconds between polls with --follow."),
            click.option("--metrics", "metrics_address", metavar="HOST:PORT",
                         help="Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free port)."),
            click.option("--rpc-attempts", type=click.IntRange(min=1, max=100), default=10, show_default=True,
                         help="Attempts at each node call before giving up (exit 2); waits double from 0.5 s to 30 s."),
            click.option("--json", "as_json", is_flag=True, help="JSON lines instead of readable lines."),
        ]):
            command = option(command)
        return signing_options(command)

    return decorate


@dataclass
class Operator:
    """Everything a running operator holds: its runtime, state, signer and the contracts it works on."""

    runtime: Runtime
    store: Store
    sender: Sender
    account: object
    provider: object
    settlement: object
    chain_id: int


def chain_identity(provider, runtime: Runtime | None = None) -> str:
    """``<chain id>:<genesis block hash>``: a reset local chain has the same id and addresses, not the same genesis."""
    read = runtime.retry if runtime is not None else (lambda call: call())
    genesis = read(lambda: provider.get_block(0).hash)
    return f"{read(lambda: provider.chain_id)}:0x{bytes(genesis).hex()}"


def start_operator(role: str, schema: str, provider, settlement, state: Path, account, autosign: bool, as_json: bool,
                   metrics_address: str | None, rpc_attempts: int) -> Operator:
    """Check every input, open the state, start metrics and signal handling; nothing is sent yet."""
    metrics = OperatorMetrics(role)
    runtime = Runtime(role, as_json, metrics, rpc_attempts)
    ensure_writable(state, "state")
    if settlement is None:
        record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
        settlement = recorded_address(record, "InferenceSettlement")
    contract = runtime.retry(lambda: contract_at(project.InferenceSettlement, settlement, "--settlement"))
    chain_id = runtime.retry(lambda: provider.chain_id)
    store = Store(state, role, chain_identity(provider, runtime), str(contract.address), schema + SENDS_SCHEMA)
    with stdout_to_stderr():  # ape warns on stdout when autosign is enabled: keep --json output JSON only
        line = prepare_signer(account, autosign)
    if line:
        runtime.log("account", line)
    if metrics_address:
        runtime.log("metrics", f"serving Prometheus metrics at http://{metrics.serve(metrics_address)}/metrics")
    runtime.install_signals()
    return Operator(runtime, store, Sender(store, account, provider), account, provider, contract, chain_id)
