"""What every operator shares while it runs: stop requests, logs, alerts, retries and its exit code.

Signals only set a flag: the operator finishes the unit of work in hand (a batch, a transaction, a task) and
stops at the next safe point. SIGTERM stops cleanly (exit 0, or 1 if an alert was raised); Ctrl-C (SIGINT)
exits 130. A node that stops answering is retried with backoff (``rpc_attempts`` times, about 3.5 minutes by
default), then the operator exits 2 naming the failure.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import click

from opgkit.cli import ExitCode, with_backoff
from opgkit.operators.metrics import OperatorMetrics


def _own_stdout():
    """A stream of its own on the process's stdout (a duplicate descriptor), or sys.stdout where there is none."""
    try:
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    except (AttributeError, OSError, ValueError):  # a captured or replaced sys.stdout
        return sys.stdout


class Runtime:
    def __init__(self, role: str, as_json: bool, metrics: OperatorMetrics, rpc_attempts: int = 10) -> None:
        self.role = role
        self.as_json = as_json
        self.metrics = metrics
        self.rpc_attempts = rpc_attempts
        # Log lines go to the stdout the run started with, even while a library's output is steered away from it.
        self.out = _own_stdout()
        self.stop_requested = threading.Event()
        self.signals: list[int] = []
        self.alerted = False

    # ------------------------------------------------------------ signals

    def install_signals(self) -> None:
        def request_stop(signum, frame):
            self.signals.append(signum)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    @property
    def stopping(self) -> bool:
        return self.stop_requested.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep, cut short by a stop request."""
        self.stop_requested.wait(seconds)

    # ------------------------------------------------------------ logs

    def log(self, event: str, message: str, level: str = "info", **fields) -> None:
        """One line: ``LEVEL event: message`` or, with --json, one JSON object per line."""
        if self.as_json:
            click.echo(json.dumps({"time": round(time.time(), 3), "role": self.role, "level": level, "event": event,
                                   "message": message, **fields}, default=str), file=self.out)
        else:
            # Messages quote what relayers chose (a dataUri): never let them start a line of their own.
            click.echo(f"{level.upper():<5} {event}: {message}".replace("\r", "\\r").replace("\n", "\\n"),
                       file=self.out)

    def alert(self, event: str, message: str, **fields) -> None:
        """Something an operator must look at: logged, counted, and the run exits 1."""
        self.alerted = True
        self.metrics.alerts.inc()
        self.log(event, message, level="alert", **fields)

    def error(self, event: str, message: str, **fields) -> None:
        """A failure the operator rides out (it is retried later): logged and exported as the last error."""
        self.metrics.error(message)
        self.log(event, message, level="error", **fields)

    # ------------------------------------------------------------ the node

    def retry(self, call: Callable):
        """``call()`` retried with backoff while the node does not answer."""
        return with_backoff(call, attempts=self.rpc_attempts, on_retry=self._on_retry,
                            should_stop=lambda: self.stopping, sleep=self.wait)

    def _on_retry(self, reason: str, delay: float) -> None:
        self.metrics.error(reason)
        self.log("rpc-retry", f"{reason}; retrying in {delay:g} s", level="warn")

    # ------------------------------------------------------------ the loop

    def run(self, step: Callable[[], None], follow: bool, poll: float) -> None:
        """``step()`` once, or until a stop request with ``follow`` (``poll`` seconds apart); then exit."""
        try:
            while not self.stopping:
                step()
                if not follow:
                    break
                self.wait(poll)
        except KeyboardInterrupt:
            if signal.SIGTERM not in self.signals and signal.SIGINT not in self.signals:
                raise
        self.exit()

    def exit(self) -> None:
        if signal.SIGINT in self.signals:
            click.echo("interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(int(ExitCode.CHECK_FAILED if self.alerted else ExitCode.OK))
