"""``make chain``: one local anvil chain that outlives the commands run against it.

    python -m opgkit.local_chain [--port 8555] [--state-dir build/chain] [--fresh]

anvil runs in the foreground with the project's test mnemonic and chain id 31337. Its state is loaded from
``<state-dir>/state.json`` on start, saved there every few seconds and again on Ctrl-C or SIGTERM, so starting
it again continues the same chain. ``ape run`` scripts reach it as ``--network ethereum:devchain`` (the
named network in ape-config.yaml), or ``--network ethereum:devchain:http://127.0.0.1:<port>`` on another port.

Exit codes: 0 stopped by SIGTERM (or SIGHUP), 130 stopped by Ctrl-C, 2 could not start (port taken, no anvil, unreadable
state), anvil's own code if it stopped by itself.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from opgkit import PROJECT_ROOT

NETWORK = "ethereum:devchain"
"""The ape network configured in ape-config.yaml for this chain (default port)."""
DEFAULT_PORT = 8555
DEFAULT_STATE_DIR = PROJECT_ROOT / "build" / "chain"
CHAIN_ID = 31337
HOST = "127.0.0.1"
STATE_FILE = "state.json"
EXIT_STARTUP, EXIT_INTERRUPTED = 2, 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, the terminal closing
PR_SET_PDEATHSIG = 1


class ChainError(Exception):
    """The chain could not be started; the message says why in one line."""


@dataclass(frozen=True)
class ChainSettings:
    """What anvil is started with: the accounts of ape's ``test`` config, so ``TEST::n`` holds ETH."""

    port: int
    state_file: Path
    mnemonic: str
    accounts: int
    hardfork: str | None
    state_interval: int = 5

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def network_choice(self) -> str:
        """The ``--network`` value that reaches this chain from ``ape run``."""
        return NETWORK if self.port == DEFAULT_PORT else f"{NETWORK}:{self.uri}"

    def anvil_command(self, anvil: str = "anvil") -> list[str]:
        """The anvil command line: fixed port, chain id and accounts; state loaded, saved periodically and on exit."""
        command = [anvil, "--host", HOST, "--port", str(self.port), "--chain-id", str(CHAIN_ID),
                   "--mnemonic", self.mnemonic, "--accounts", str(self.accounts),
                   "--state", str(self.state_file), "--state-interval", str(self.state_interval)]
        if self.hardfork:
            command += ["--hardfork", self.hardfork]
        return command


def settings_from_config(port: int, state_dir: Path, config_file: Path = PROJECT_ROOT / "ape-config.yaml"
                         ) -> ChainSettings:
    """Settings from ape-config.yaml: ``test.mnemonic``/``number_of_accounts`` and ``foundry.evm_version``."""
    config = yaml.safe_load(config_file.read_text()) or {}
    test = config.get("test") or {}
    if "mnemonic" not in test:
        raise ChainError(f"{config_file.name} has no test.mnemonic to derive the chain's accounts from")
    return ChainSettings(port=port, state_file=state_dir / STATE_FILE, mnemonic=test["mnemonic"],
                         accounts=int(test.get("number_of_accounts", 10)),
                         hardfork=(config.get("foundry") or {}).get("evm_version"))


def ensure_port_free(port: int) -> None:
    """Raise ChainError if something already listens on ``HOST:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise ChainError(f"port {port} is already in use ({error.strerror}): is a chain already running? "
                             "Stop it, or choose another port (--port; make chain CHAIN_PORT=...)") from error


def chain_id_at(uri: str, timeout: float = 1.0) -> int | None:
    """The chain id answered at ``uri``, or None while nothing answers."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(uri, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(json.load(response)["result"], 16)
    except (OSError, ValueError, KeyError):
        return None


def _wait_until_ready(process: subprocess.Popen, uri: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChainError("anvil stopped while starting (its message is above); if the saved state "
                             "is unreadable, start over with --fresh (make chain FRESH=1)")
        if chain_id_at(uri) == CHAIN_ID:
            return
        time.sleep(0.1)
    raise ChainError(f"anvil did not answer at {uri} within {timeout:.0f}s")


def _shown(path: Path) -> Path:
    path = path.resolve()
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def _announce(settings: ChainSettings, resumed: bool) -> None:
    click.echo("")
    click.echo(f"chain     {'resumed from' if resumed else 'new, saved to'} {_shown(settings.state_file)} "
               f"(every {settings.state_interval}s and on exit)")
    click.echo(f"uri       {settings.uri} (chain id {CHAIN_ID})")
    click.echo(f"network   --network {settings.network_choice}")
    click.echo(f"deploy    ape run deploy --network {settings.network_choice} --account TEST::0")
    click.echo("stop      Ctrl-C (the state is saved); start again to continue the same chain")
    sys.stdout.flush()


def run(settings: ChainSettings, fresh: bool = False) -> int:
    """Run anvil until it is interrupted; returns the exit code. Raises ChainError if it cannot start."""
    anvil = shutil.which("anvil")
    if anvil is None:
        raise ChainError("anvil is not on PATH (it comes from npm: run make setup)")
    ensure_port_free(settings.port)
    if fresh:
        settings.state_file.unlink(missing_ok=True)
    settings.state_file.parent.mkdir(parents=True, exist_ok=True)
    resumed = settings.state_file.exists()

    stopped_by: list[int] = []

    def forward(signum, frame):
        stopped_by.append(signum)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # anvil saves its state on SIGTERM as on SIGINT

    # Its own session: a terminal's Ctrl-C reaches only this process, which stops anvil exactly once.
    process = subprocess.Popen(settings.anvil_command(anvil), start_new_session=True, preexec_fn=_die_with_parent)
    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}
    try:
        _wait_until_ready(process, settings.uri)
        _announce(settings, resumed)
        code = process.wait()
    except ChainError:
        if not stopped_by:
            raise
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped_by:
        click.echo(f"chain     stopped; its state is in {_shown(settings.state_file)}")
        return EXIT_INTERRUPTED if stopped_by[0] == signal.SIGINT else 0
    return code


def _die_with_parent() -> None:
    """In the anvil child (Linux): get SIGTERM if this process dies without stopping it (e.g. SIGKILL)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port anvil listens on (127.0.0.1).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR,
              show_default="build/chain", help="Where the chain's state.json is kept.")
@click.option("--fresh", is_flag=True, help="Discard the saved state and start a new chain.")
def main(port: int, state_dir: Path, fresh: bool) -> None:
    """Run a local anvil chain whose state survives restarts."""
    try:
        code = run(settings_from_config(port, state_dir), fresh=fresh)
    except ChainError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_STARTUP)
    except OSError as error:
        click.echo(f"error: cannot use the state directory {state_dir}: {error.strerror or error}; choose another "
                   "with --state-dir", err=True)
        sys.exit(EXIT_STARTUP)
    sys.exit(code)


if __name__ == "__main__":
    main()
