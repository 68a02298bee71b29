"""`ape run deploy`, run as a user runs it: its own anvil, its own process, its printed output."""

import re
import subprocess

import pytest

from opgkit import PROJECT_ROOT

LOCAL = ["--network", "ethereum:local:foundry", "--account", "TEST::0"]


def ape_run(*args):
    return subprocess.run(["ape", "run", "deploy", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_deploy__local_chain__prints_every_address_and_stops_anvil():
    result = ape_run(*LOCAL, "--treasury", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert result.returncode == 0, result.stderr
    for name in ("OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "ModelRegistry", "TEERegistry", "TwinMarket"):
        assert re.search(rf"^{name}\s+0x[0-9a-fA-F]{{40}}\s+tx 0x[0-9a-f]{{64}}\s+block \d+( \(reused\))?$", result.stdout, re.M)
    assert re.search(r"^network\s+ethereum:local:foundry \(chain id 31337\)$", result.stdout, re.M)
    assert re.search(r"^treasury\s+0x70997970C51812dc3A010C7d01b50e0d17dc79C8  holds 1,000,000,000 OPG$", result.stdout, re.M)
    assert re.search(r"^wiring\s+verified", result.stdout, re.M)
    assert "Stopping 'anvil' process" in result.stderr + result.stdout


@pytest.mark.parametrize(
    "treasury, message",
    [
        ("0x1234", "is not a 20-byte hex address"),
        ("0x0000000000000000000000000000000000000000", "the zero address would burn the whole supply"),
    ],
)
def test_deploy__bad_treasury__exits_2_with_message_and_no_traceback(treasury, message):
    result = ape_run(*LOCAL, "--treasury", treasury)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
