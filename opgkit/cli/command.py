"""Click command classes for the `ape run` scripts: every failure becomes one `error:` line and its exit code."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import Any, Callable

import click
from ape.cli import ConnectedProviderCommand
from ape.cli.commands import parse_network
from ape.logging import LogLevel, logger

from opgkit import PROJECT_ROOT
from opgkit.cli.errors import UserError, debugging, explain
from opgkit.cli.exits import ExitCode
from opgkit.cli.retry import with_backoff
from opgkit.toolchain.build import BuildError, rebuild, staleness


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def run_guarded(invoke: Callable[[], Any]) -> Any:
    """Run a command body: usage errors stay click's (exit 2); everything else is named here, never a traceback."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return invoke()
    except (click.exceptions.Exit, click.UsageError):
        raise
    except click.ClickException as error:
        fail(error.format_message())
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        # Whoever read our output went away (`| head`): nothing to tell them, and nothing more to flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(int(ExitCode.ERROR))
    except Exception as error:  # noqa: BLE001 - the one place failures become messages and exit codes
        message = explain(error)
        if debugging():
            traceback.print_exc()
        if message is None:
            fail(f"internal error, a bug in this script ({type(error).__name__}: {error}); rerun with OPG_DEBUG=1 "
                 "and report the traceback", ExitCode.INTERNAL)
        fail(message)
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class ScriptCommand(click.Command):
    """A command that needs no chain (e.g. proving off chain), with the project's error handling."""

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(lambda: super(ScriptCommand, self).invoke(ctx))


class NetworkCommand(ConnectedProviderCommand):
    """A command connected to ``--network``, with the project's error handling.

    Connecting is retried with backoff while the node does not answer (a node still starting, a restart); only
    the connection is retried, never the command's own transactions.
    """

    connect_attempts = 4

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(lambda: self._connect_and_invoke(ctx))

    def _connect_and_invoke(self, ctx: click.Context) -> Any:
        if self.callback is None:
            return None
        if ctx.params.get("as_json"):
            logger.set_level(LogLevel.WARNING)  # ape's INFO lines would break a stream of JSON lines
        _compile_in_full_if_sources_changed()
        try:
            network = parse_network(ctx)
            if network is None:
                return self._invoke(ctx)
            provider = with_backoff(network.__enter__, attempts=self.connect_attempts, on_retry=_say_retrying)
        except ValueError as error:  # a malformed URI in --network (a port out of range, a broken IPv6 host)
            raise UserError(f"--network cannot be used: {error}; see `ape networks list`") from error
        try:
            _refuse_unworkable_node(provider)
            result = self._invoke(ctx, provider=provider)
        except BaseException:
            network.__exit__(*sys.exc_info())
            raise
        network.__exit__(None, None, None)
        return result


def _refuse_unworkable_node(provider) -> None:
    """ape's `local` network drives its `node` provider as a dev node that mines on request; Hardhat answers
    its eth_mining with false, and ape then takes every transaction for unmined (a deploy "created no
    contract"). Said before anything is sent, with the way that works."""
    if provider.network.name != "local" or provider.name != "node":
        return
    try:
        client = str(provider.web3.client_version)
    except Exception:  # noqa: BLE001 - a node that does not say is not refused
        return
    if "hardhat" in client.lower():
        raise UserError(f"--network {provider.network_choice} reaches a Hardhat node ({client}), which ape's local "
                        "node provider cannot drive (nothing would look mined); use --network ethereum:hardhat:node "
                        "(ape-config.yaml) or ethereum:hardhat:<its URI>")


def _compile_in_full_if_sources_changed() -> None:
    """Never deploy or call stale bytecode: ape recompiles only edited files, not the contracts inheriting them."""
    reason = staleness(PROJECT_ROOT, sources_only=True)
    if reason is None:
        return
    click.echo(f"{reason}: compiling every contract first", err=True)
    try:
        rebuild(PROJECT_ROOT, output=sys.stderr)
    except BuildError as error:
        raise UserError(f"{error}; fix the contracts and run again") from error
    from ape import project  # ape read .build/ when it started: read what the full compile wrote

    project.load_manifest()


def _say_retrying(reason: str, delay: float) -> None:
    click.echo(f"warning: {reason}; retrying in {delay:g} s", err=True)
