"""Run the whole protocol story on a local chain and print what happened.

    ape run demo --network ethereum:local:foundry

Deploys everything, stakes operators, passes a governance proposal, registers models and a TEE, settles a
TEE receipt its payer authorized and pays it, rejects a batch with a forged receipt on BatchSettlement, pays
out of a risk-gated vault on a final TEE score in the vault owner's namespace, refuses an attacker node's
answer under the owner's authorization, liquidates a position only on a real EZKL proof verified on chain,
audits a receipt, trades twin shares and catches a scheduled fee rise. What the compiler and EZKL print on
the way goes to a log file (--log, default build/logs/demo.log), not into the report. Exit codes: 0 done,
1 a step failed, 130 interrupted.
"""

import contextlib
import functools
import os
from pathlib import Path

import click
from ape import accounts, project
from ape.exceptions import ApeException
from ape.logging import LogLevel, logger

from opgkit import PROJECT_ROOT
from opgkit.cli import ExitCode, NetworkCommand, ensure_writable, exit_codes_help, is_unreachable
from opgkit.demo import Cast, Story
from opgkit.quiet import output_to

DEFAULT_LOG = PROJECT_ROOT / "build" / "logs" / "demo.log"


@click.command(cls=NetworkCommand, short_help="Run the protocol story on a local chain",
               epilog=exit_codes_help("every step of the story ran", "a step of the story failed"))
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LOG,
              help="Where the compiler's and EZKL's own output goes (overwritten). Default: build/logs/demo.log.")
def cli(provider, log_path):
    """Deploy the protocol on a local chain and run its story end to end."""
    if provider.network.name != "local":
        raise click.UsageError("the demo uses the local test accounts and time travel: run it with "
                               "--network ethereum:local:foundry")
    ensure_writable(log_path, "log file")
    _start_log(log_path)
    logger.set_level(LogLevel.WARNING)  # the report below says what each transaction did
    click.echo(f"OPG protocol demo on {provider.network_choice} (chain id {provider.chain_id})")
    click.echo(f"details: {_shown(log_path)}")
    quiet = functools.partial(_logged, log_path)
    story = Story(Cast.from_accounts(accounts.test_accounts), click.echo, quiet=quiet)
    try:
        with quiet():
            project.load_contracts()  # compile up front: the compiler's listing goes to the log
        story.run()
    except ApeException as error:
        if is_unreachable(error):
            raise  # the node, not the story: exit 2 with the node's message
        click.echo(f"\nerror: the demo stopped: {error}", err=True)
        raise SystemExit(int(ExitCode.CHECK_FAILED)) from error
    click.echo("\ndone: every step above ran on chain with real signatures")


@contextlib.contextmanager
def _logged(log_path: Path):
    """Everything printed inside goes to the log, ape's own INFO lines (the compiler's listing) included."""
    with output_to(log_path), logger.at_level(LogLevel.INFO):
        yield


def _start_log(log_path: Path) -> None:
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
    except OSError as error:
        raise click.BadParameter(f"cannot write {log_path}: {error.strerror or error}", param_hint="--log")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    absolute = path.absolute()
    return os.path.relpath(absolute) if absolute.is_relative_to(Path.cwd()) else str(absolute)
