"""Running `ape run deploy` as its own process and interrupting it, for the deploy tests on anvil and Hardhat."""

import json
import subprocess
import time

from opgkit import PROJECT_ROOT


def deploy_command(network: str, record, account: str = "TEST::0") -> list[str]:
    return ["ape", "run", "deploy", "--network", network, "--account", account, "--record", str(record)]


def kill_once_recorded(command: list[str], record, contracts: int = 3) -> dict:
    """Start the deploy, SIGKILL it as soon as ``contracts`` contracts are recorded; the record's contracts then."""
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if record.exists() and len(json.loads(record.read_text())["contracts"]) >= contracts:
            break
        time.sleep(0.05)
    process.kill()
    process.communicate()
    return json.loads(record.read_text())["contracts"]
