"""The fee monitor: reports every change once, even across interruptions; alerts; CLI exit codes."""

import json
import subprocess

import pytest

from opgkit import PROJECT_ROOT
from opgkit.fee_monitor import AlertRules, Checkpoint, FeeEvent, report_new_events
from opgkit.testing import LineReader, advance
from twin_constants import FEE_DELAY, PERCENT

# The fee monitor reads logs over JSON-RPC and runs as a subprocess.
pytestmark = pytest.mark.anvil_only

EXPECTED_SEQUENCE = [
    "OwnershipTransferred", "FeesChanged", "FeeDestinationChanged", "ClaimManagerChanged",  # deployment
    "FeesChanged",  # decrease, at once
    "FeeChangeScheduled", "FeeChangeCancelled",
    "FeeChangeScheduled", "FeesChanged",  # increase, applied after the delay
    "FeeDestinationProposed", "FeeDestinationChanged",
    "OwnershipTransferStarted",
]


@pytest.fixture(scope="module")
def changed_market(chain, deploy_market, gov, treasury, reporter, carol, alice):
    """A market put through a scripted series of fee, destination and owner changes."""
    market = deploy_market(gov, treasury, reporter)
    market.setFees(4 * PERCENT, 4 * PERCENT, sender=gov)
    market.setFees(9 * PERCENT, 4 * PERCENT, sender=gov)
    market.cancelFeeChange(sender=gov)
    market.setFees(9 * PERCENT, 6 * PERCENT, sender=gov)
    advance(chain, FEE_DELAY)
    market.applyFeeChange(sender=gov)
    market.proposeFeeDestination(carol, sender=gov)
    advance(chain, FEE_DELAY)
    market.acceptFeeDestination(sender=carol)
    market.transferOwnership(alice, sender=gov)
    return market


def run(market, chain, checkpoint, stop_after=None, rules=AlertRules()):
    seen = []

    def emit(event, reasons):
        seen.append(event)

    report_new_events(market, checkpoint, chain.blocks.head.number, rules, emit,
                      should_stop=lambda: stop_after is not None and len(seen) >= stop_after)
    return seen


def test_report__from_deployment__lists_every_change_in_order(chain, changed_market):
    start = changed_market.creation_metadata.receipt.block_number
    events = run(changed_market, chain, Checkpoint(None, changed_market.address, chain.chain_id, start - 1, 2**63))
    assert [e.name for e in events] == EXPECTED_SEQUENCE
    assert [e.position for e in events] == sorted(e.position for e in events)


def test_report__interrupted_anywhere_and_restarted__every_event_exactly_once(chain, changed_market, tmp_path):
    start = changed_market.creation_metadata.receipt.block_number
    for cut in range(len(EXPECTED_SEQUENCE) + 1):
        state = tmp_path / f"cut-{cut}.json"
        first = run(changed_market, chain, Checkpoint.load(state, changed_market.address, chain.chain_id, start), stop_after=cut)
        second = run(changed_market, chain, Checkpoint.load(state, changed_market.address, chain.chain_id, start))
        third = run(changed_market, chain, Checkpoint.load(state, changed_market.address, chain.chain_id, start))
        assert [e.name for e in first + second] == EXPECTED_SEQUENCE, f"cut after {cut} events"
        assert third == []


def test_alert_rules__above_and_step__flag_the_increase():
    event = FeeEvent(1, 0, "0x", "FeesChanged", {
        "previousProtocolFeePercent": 4 * PERCENT, "previousSubjectFeePercent": 4 * PERCENT,
        "protocolFeePercent": 9 * PERCENT, "subjectFeePercent": 4 * PERCENT,
    })
    before = (4 * PERCENT, 4 * PERCENT)
    assert AlertRules(above=8 * PERCENT).check(event, before) == ["protocol fee 9% is above 8%"]
    assert AlertRules(step=2 * PERCENT).check(event, before) == ["protocol fee rises by 5%, more than 2%"]
    assert AlertRules(step=2 * PERCENT).check(event, None) == []
    assert AlertRules(above=10 * PERCENT, step=5 * PERCENT).check(event, before) == []


def test_alert_rules__deployment_fees_and_scheduled_rise__judged_against_fees_in_force(chain, changed_market):
    start = changed_market.creation_metadata.receipt.block_number
    alerts = report_new_events(
        changed_market, Checkpoint(None, changed_market.address, chain.chain_id, start - 1, 2**63),
        chain.blocks.head.number, AlertRules(step=3 * PERCENT), lambda event, reasons: None,
    )
    # Deployment sets 5%/5% (no rise); 4%->9% is scheduled, cancelled, scheduled again and applied.
    assert [(a.event.name, a.reason) for a in alerts] == [
        ("FeeChangeScheduled", "protocol fee rises by 5%, more than 3%"),
        ("FeeChangeScheduled", "protocol fee rises by 5%, more than 3%"),
        ("FeesChanged", "protocol fee rises by 5%, more than 3%"),
    ]


def monitor(networks, *args):
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the monitor runs as its own process against the test's anvil")
    return subprocess.run(
        ["ape", "run", "monitor_fees", "--network", networks.provider.uri, *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )


def test_cli__fee_above_threshold__prints_json_lines_and_exits_1(networks, changed_market, tmp_path):
    result = monitor(networks, "--market", changed_market.address, "--json", "--alert-above", "8", "--state", str(tmp_path / "s.json"))
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["type"] == "snapshot" and lines[0]["protocol_fee"] == 9 * PERCENT
    events = [line for line in lines if line["type"] == "event"]
    assert [line["name"] for line in events][-len(EXPECTED_SEQUENCE):] == EXPECTED_SEQUENCE
    assert any(line["alerts"] for line in events)


def test_cli__quiet_thresholds__exit_0_and_restart_reports_nothing_new(networks, changed_market, tmp_path):
    args = ["--market", changed_market.address, "--alert-above", "50", "--state", str(tmp_path / "s.json")]
    first, second = monitor(networks, *args), monitor(networks, *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "FeeChangeScheduled" in first.stdout
    assert "FeeChangeScheduled" not in second.stdout and "fees       protocol 9%" in second.stdout


def test_cli__not_a_market__exits_2_without_traceback(networks, changed_market):
    result = monitor(networks, "--market", "0x00000000000000000000000000000000000000E9")
    assert result.returncode == 2
    assert result.stderr.startswith("error:") or "error:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli__follow__reports_new_changes_and_stops_cleanly_on_sigterm(networks, chain, changed_market, gov, tmp_path):
    if networks.provider.name != "foundry":
        pytest.skip("the monitor runs as its own process against the test's anvil")
    state = tmp_path / "follow.json"
    command = ["ape", "run", "monitor_fees", "--network", networks.provider.uri, "--market", changed_market.address,
               "--state", str(state), "--follow", "--poll", "0.2", "--json"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = LineReader(process)
    try:
        seen = []
        while len([line for line in seen if '"type": "event"' in line]) < len(EXPECTED_SEQUENCE):
            seen.append(reader.next())
        changed_market.setFees(1 * PERCENT, 1 * PERCENT, sender=gov)
        line = reader.next()
        assert json.loads(line)["name"] == "FeesChanged" and json.loads(line)["args"]["protocolFeePercent"] == PERCENT
        process.terminate()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    checkpoint = json.loads(state.read_text())
    assert checkpoint["last_block"] == chain.blocks.head.number
    rerun = monitor(networks, "--market", changed_market.address, "--state", str(state), "--json")
    assert [json.loads(line)["type"] for line in rerun.stdout.splitlines() if line.startswith("{")] == ["snapshot"]
