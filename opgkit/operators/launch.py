"""Starting an operator as its own `ape run` process (the demo and the tests run them exactly as operators do)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from opgkit import PROJECT_ROOT


def operator_command(name: str, network: str, settlement: str, state: Path, account: str, *options: str) -> list[str]:
    return ["ape", "run", name, "--network", network, "--account", account, "--settlement", str(settlement),
            "--state", str(state), *options]


def run_script(command: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run an `ape run` command line until it exits, output captured, with no terminal to ask from."""
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=os.environ.copy())


def run_operator(name: str, network: str, settlement: str, state: Path, account: str, *options: str,
                 timeout: float = 600) -> subprocess.CompletedProcess:
    """Run an operator until it exits (a one-shot run: no --follow), output captured."""
    return run_script(operator_command(name, network, settlement, state, account, *options), timeout)


def start_operator(name: str, network: str, settlement: str, state: Path, account: str, *options: str) -> subprocess.Popen:
    """Start an operator that keeps running (give --follow); stop it with SIGTERM."""
    return subprocess.Popen(operator_command(name, network, settlement, state, account, *options), cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def json_lines(output: str) -> list[dict]:
    """Every line of a --json run, parsed."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]
