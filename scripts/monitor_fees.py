"""Watch a TwinMarket's fees and report every change, with alerts and an exact-restart checkpoint.

    ape run monitor_fees --network ethereum:sepolia:node --market 0x... --state fees.json --alert-above 8
    ape run monitor_fees --network ... --market 0x... --follow --json

Exit codes: 0 nothing alarming, 1 at least one alert, 2 error (bad input, RPC down, bad checkpoint).
"""

import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ApeException

from opgkit import PROJECT_ROOT
from opgkit.cli import nonzero_address
from opgkit.deploy import RecordError, record_path_for, recorded_address
from opgkit.fee_monitor import (
    AlertRules, Checkpoint, MonitorError, Snapshot, event_json, event_line, follow_heads, percent, report_new_events,
    snapshot_alerts, with_retries,
)

EXIT_QUIET, EXIT_ALERT, EXIT_ERROR = 0, 1, 2


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


@click.command(cls=ConnectedProviderCommand, short_help="Watch a TwinMarket's fees")
@click.option("--market", callback=nonzero_address, help="The TwinMarket address (default: from the deployments record).")
@click.option("--from-block", type=click.IntRange(min=0), default=0, show_default=True, help="First block to report (ignored when a checkpoint exists).")
@click.option("--follow", is_flag=True, help="Keep polling for new blocks until interrupted.")
@click.option("--poll", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Seconds between polls with --follow.")
@click.option("--alert-above", type=click.FloatRange(min=0, max=100), help="Alert when a fee is, or is scheduled to be, above this percentage.")
@click.option("--alert-step", type=click.FloatRange(min=0, max=100), help="Alert when a fee rises by more than this many percentage points.")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path), help="Checkpoint file: restarts report every event exactly once.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a readable table.")
def cli(provider, market, from_block, follow, poll, alert_above, alert_step, state, as_json):
    """Print the market's fees, then every fee, destination and owner change since the checkpoint."""
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    rules = AlertRules(above=_fraction(alert_above), step=_fraction(alert_step))
    emit = (lambda event, reasons: click.echo(event_json(event, reasons))) if as_json else (
        lambda event, reasons: click.echo(event_line(event, reasons)))
    try:
        if market is None:
            market = recorded_address(record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT), "TwinMarket")
        contract = with_retries(lambda: project.TwinMarket.at(market))
        checkpoint = Checkpoint.load(state, market, provider.chain_id, from_block)
        snapshot = with_retries(lambda: Snapshot.read(contract))
        reasons = snapshot_alerts(snapshot, rules)
        _print_snapshot(snapshot, reasons, as_json)
        alerted = bool(reasons)
        heads = follow_heads(lambda: chain.blocks.head.number, poll, lambda: stop["requested"]) if follow else [chain.blocks.head.number]
        for head in heads:
            alerted |= bool(report_new_events(contract, checkpoint, head, rules, emit, lambda: stop["requested"]))
    except (MonitorError, RecordError, ApeException) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_ALERT if alerted else EXIT_QUIET)
