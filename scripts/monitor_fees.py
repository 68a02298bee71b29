"""Watch a TwinMarket's fees and report every change, with alerts and an exact-restart checkpoint.

    ape run monitor_fees --network ethereum:sepolia:node --market 0x... --state fees.json --alert-above 8
    ape run monitor_fees --network ... --market 0x... --follow --json

Reads from the node are retried with exponential backoff (5 attempts; with --follow, until the node is back,
with a warning per retry), so a node restart does not end a follower.
"""

import json
import signal
import sys
import threading
from dataclasses import asdict
from functools import partial
from pathlib import Path

import click
from ape import chain, project

from opgkit import PROJECT_ROOT
from opgkit.cli import (
    ExitCode, NetworkCommand, contract_at, ensure_writable, exit_codes_help, finite_number, nonzero_address, with_backoff,
)
from opgkit.deployments_record import record_path_for, recorded_address
from opgkit.fee_monitor import (
    AlertRules, Checkpoint, Snapshot, event_json, event_line, follow_heads, percent, report_new_events, snapshot_alerts,
)


def _fraction(percent_value):
    return None if percent_value is None else int(round(percent_value * 10**16))


def _print_snapshot(snapshot: Snapshot, reasons, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"type": "snapshot", **asdict(snapshot), "alerts": reasons}))
        return
    click.echo(f"fees       protocol {percent(snapshot.protocol_fee)} (cap {percent(snapshot.protocol_fee_cap)}), "
               f"subject {percent(snapshot.subject_fee)} (cap {percent(snapshot.subject_fee_cap)})")
    if snapshot.pending_eta:
        click.echo(f"scheduled  protocol {percent(snapshot.pending_protocol_fee)}, subject {percent(snapshot.pending_subject_fee)}, "
                   f"applicable from timestamp {snapshot.pending_eta}")
    else:
        click.echo("scheduled  none")
    click.echo(f"fees to    {snapshot.fee_destination}")
    click.echo(f"owner      {snapshot.owner}")
    for reason in reasons:
        click.echo(f"ALERT: {reason}")


def _warn(reason: str, delay: float) -> None:
    click.echo(f"warning: {reason}; retrying in {delay:g} s", err=True)


@click.command(cls=NetworkCommand, short_help="Watch a TwinMarket's fees",
               epilog=exit_codes_help("nothing alarming", "at least one alert"))
@click.option("--market", callback=nonzero_address, help="The TwinMarket address (default: from the deployments record).")
@click.option("--from-block", type=click.IntRange(min=0), default=0, show_default=True, help="First block to report (ignored when a checkpoint exists).")
@click.option("--follow", is_flag=True, help="Keep polling for new blocks until interrupted; rides out node restarts.")
@click.option("--poll", type=click.FloatRange(min=0.1, max=3600), callback=finite_number, default=2.0, show_default=True,
              help="Seconds between polls with --follow.")
@click.option("--alert-above", type=click.FloatRange(min=0, max=100), callback=finite_number,
              help="Alert when a fee is, or is scheduled to be, above this percentage.")
@click.option("--alert-step", type=click.FloatRange(min=0, max=100), callback=finite_number,
              help="Alert when a fee rises by more than this many percentage points.")
@click.option("--state", type=click.Path(path_type=Path), help="Checkpoint file: restarts report every event exactly once.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a readable table.")
def cli(provider, market, from_block, follow, poll, alert_above, alert_step, state, as_json):
    """Print the market's fees, then every fee, destination and owner change since the checkpoint.

    SIGTERM stops a follower cleanly (exit 0, or 1 after an alert); Ctrl-C (SIGINT) exits 130.
    """
    stopped, received = threading.Event(), []

    def request_stop(signum, frame):
        received.append(signum)
        stopped.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    should_stop, sleep = stopped.is_set, stopped.wait  # a stop request cuts every wait short
    retry = partial(with_backoff, attempts=None if follow else 5, on_retry=_warn, should_stop=should_stop,
                    sleep=sleep)
    rules = AlertRules(above=_fraction(alert_above), step=_fraction(alert_step))
    emit = (lambda event, reasons: click.echo(event_json(event, reasons))) if as_json else (
        lambda event, reasons: click.echo(event_line(event, reasons)))

    if state is not None:
        ensure_writable(state, "checkpoint")
    if market is None:
        market = recorded_address(record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT),
                                  "TwinMarket")
    contract = retry(lambda: contract_at(project.TwinMarket, market, "--market"))
    checkpoint = Checkpoint.load(state, market, provider.chain_id, from_block)
    snapshot = retry(lambda: Snapshot.read(contract))
    reasons = snapshot_alerts(snapshot, rules)
    _print_snapshot(snapshot, reasons, as_json)
    alerted = bool(reasons)
    get_head = lambda: chain.blocks.head.number  # noqa: E731
    try:
        heads = follow_heads(get_head, poll, should_stop, sleep=sleep, retry=retry) if follow else [retry(get_head)]
        for head in heads:
            checkpoint.require_within(head)
            alerted |= bool(report_new_events(contract, checkpoint, head, rules, emit, should_stop, retry=retry))
    except KeyboardInterrupt:
        if signal.SIGTERM not in received:
            raise
    if signal.SIGINT in received:
        click.echo("interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(int(ExitCode.CHECK_FAILED if alerted else ExitCode.OK))
