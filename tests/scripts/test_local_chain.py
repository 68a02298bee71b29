"""`make chain`: one anvil that outlives the commands run against it, used as a newcomer uses it.

The chain module and every `ape run` are separate processes; the named network `ethereum:devchain` is pointed
at the test's port with `--network ethereum:devchain:http://127.0.0.1:<port>`.
"""

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest
import yaml
from eth_abi import encode
from eth_utils import keccak

from opgkit import PROJECT_ROOT
from opgkit.local_chain import CHAIN_ID, DEFAULT_PORT, chain_id_at
from opgkit.testing import LineReader

# Starts anvil and `ape run` processes of its own.
pytestmark = pytest.mark.anvil_only

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # TEST::0
PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # TEST::1
FEES = re.compile(r"^fees\s+protocol \d+(\.\d+)?% \(cap \d+(\.\d+)?%\), subject", re.M)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chain_command(port, state_dir, *options):
    return [sys.executable, "-m", "opgkit.local_chain", "--port", str(port), "--state-dir", str(state_dir), *options]


@contextmanager
def running_chain(port, state_dir, log, *options):
    """The chain module as a process, its output in ``log``; yields once it has printed how to reach it."""
    with log.open("w") as out:
        process = subprocess.Popen(chain_command(port, state_dir, *options), cwd=PROJECT_ROOT, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "--network ethereum:devchain" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the chain did not start:\n" + log.read_text()
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stop(process, signum):
    process.send_signal(signum)
    return process.wait(timeout=30)


def ape_run(port, *args):
    command = ["ape", "run", *args, "--network", f"ethereum:devchain:http://127.0.0.1:{port}"]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def code_at(port, address) -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [address, "latest"]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["result"]


def test_chain__deploy_then_scripts_then_restart__one_chain_throughout(tmp_path):
    port, state_dir, record = free_port(), tmp_path / "chain", tmp_path / "record.json"

    with running_chain(port, state_dir, tmp_path / "first.log") as chain:
        assert chain_id_at(f"http://127.0.0.1:{port}") == CHAIN_ID
        assert f"--network ethereum:devchain:http://127.0.0.1:{port}" in (tmp_path / "first.log").read_text()

        deployed = ape_run(port, "deploy", "--account", "TEST::0", "--record", str(record))
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert re.search(r"^parameters\s+config/deploy/local.yaml \(a development chain\)$", deployed.stdout, re.M)
        contracts = {name: entry["address"] for name, entry in json.loads(record.read_text())["contracts"].items()}
        market, settlement = contracts["TwinMarket"], contracts["InferenceSettlement"]

        planned = ape_run(port, "deploy", "--account", "TEST::0", "--record", str(record), "--dry-run")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert len(re.findall(r"^  reuse\s+\w+\s+0x[0-9a-fA-F]{40}$", planned.stdout, re.M)) == len(contracts)
        assert "  done    connect BatchSettlement to InferenceSettlement" in planned.stdout
        assert "  done    the deployer renounces DEFAULT_ADMIN_ROLE on OPGTimelock" in planned.stdout
        assert "  wire    read every role and parameter back (wiring check)" in planned.stdout

        fees = ape_run(port, "monitor_fees", "--market", market)
        assert fees.returncode == 0, fees.stdout + fees.stderr
        assert FEES.search(fees.stdout), fees.stdout

        verified = ape_run(port, "receipts", "verify", "0x" + "ab" * 32, "--payer", PAYER, "--settlement", settlement)
        assert "Failed to get contract type" not in verified.stdout + verified.stderr
        assert "Traceback" not in verified.stdout + verified.stderr
        assert verified.returncode == 1, verified.stdout + verified.stderr  # an unknown request: found, not settled
        assert re.search(r"^status\s+NONE$", verified.stdout, re.M), verified.stdout
        assert "never settled on this contract" in verified.stdout

        assert stop(chain, signal.SIGINT) == 130
    assert "stopped; its state is in" in (tmp_path / "first.log").read_text()
    assert (state_dir / "state.json").is_file()

    with running_chain(port, state_dir, tmp_path / "second.log") as chain:
        assert "resumed from" in (tmp_path / "second.log").read_text()
        assert code_at(port, market) not in ("0x", "")
        again = ape_run(port, "monitor_fees", "--market", market)
        assert again.returncode == 0, again.stdout + again.stderr
        assert FEES.search(again.stdout), again.stdout
        assert stop(chain, signal.SIGTERM) == 0

    with running_chain(port, state_dir, tmp_path / "fresh.log", "--fresh") as chain:
        assert "new, saved to" in (tmp_path / "fresh.log").read_text()
        assert code_at(port, market) == "0x"
        assert stop(chain, signal.SIGTERM) == 0


def test_chain__port_already_taken__one_line_error_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(chain_command(port, tmp_path / "chain"), cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: port {port} is already in use")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "chain").exists()


def test_devchain_network__ape_config__points_at_the_chain_default_port():
    config = yaml.safe_load((PROJECT_ROOT / "ape-config.yaml").read_text())
    network = next(n for n in config["networks"]["custom"] if n["name"] == "devchain")
    assert network["chain_id"] == CHAIN_ID
    assert config["node"]["ethereum"]["devchain"]["uri"] == f"http://127.0.0.1:{DEFAULT_PORT}"


SET_FEES = keccak(text="setFees(uint256,uint256)")[:4]
PERCENT = 10**16


def lower_fees(port, market, percent_points):
    """TEST::0 (the market's owner without handover, unlocked in anvil) lowers both fees: effective at once."""
    data = SET_FEES + encode(["uint256", "uint256"], [percent_points * PERCENT, percent_points * PERCENT])
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
                       "params": [{"from": DEPLOYER, "to": market, "data": "0x" + data.hex()}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert "result" in json.load(response)


def test_monitor_follow__node_restarts__rides_it_out_and_reports_each_event_once(tmp_path):
    port, state_dir, record = free_port(), tmp_path / "chain", tmp_path / "record.json"
    monitor = None
    with running_chain(port, state_dir, tmp_path / "first.log") as node:
        deployed = ape_run(port, "deploy", "--account", "TEST::0", "--record", str(record), "--no-handover")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        market = json.loads(record.read_text())["contracts"]["TwinMarket"]["address"]
        monitor = subprocess.Popen(
            ["ape", "run", "monitor_fees", "--network", f"ethereum:devchain:http://127.0.0.1:{port}", "--market",
             market, "--follow", "--poll", "0.2", "--json", "--state", str(tmp_path / "monitor.json")],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = LineReader(monitor)
        lines.until(lambda line: '"type": "snapshot"' in line)
        lower_fees(port, market, 4)
        lines.until(lambda line: '"protocolFeePercent": 40000000000000000' in line)
        assert stop(node, signal.SIGINT) == 130
    time.sleep(2.5)  # the monitor meets a dead node and backs off
    try:
        with running_chain(port, state_dir, tmp_path / "second.log") as node:
            lower_fees(port, market, 3)
            lines.until(lambda line: '"protocolFeePercent": 30000000000000000' in line, timeout=120)
            monitor.terminate()
            assert monitor.wait(timeout=60) == 0
            stop(node, signal.SIGTERM)
    finally:
        if monitor.poll() is None:
            monitor.kill()
    events = [json.loads(line) for line in lines.drain() if line.startswith("{")]
    positions = [(event["block"], event["log_index"]) for event in events if event["type"] == "event"]
    assert len(positions) == len(set(positions)), "an event was reported twice"
    stderr = monitor.stderr.read()
    assert "warning: the node does not answer" in stderr, stderr
    assert "Traceback" not in stderr
