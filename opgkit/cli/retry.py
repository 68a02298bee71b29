"""Retrying calls to a node with exponential backoff: the one policy every script and daemon uses."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from opgkit.cli.errors import UserError, explain, first_line, is_unreachable

T = TypeVar("T")


def with_backoff(call: Callable[[], T], attempts: int | None = 5, first_delay: float = 0.5, max_delay: float = 30.0,
                 on_retry: Callable[[str, float], None] | None = None, should_stop: Callable[[], bool] = lambda: False,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, retried while the node is unreachable: waits ``first_delay``, doubling up to ``max_delay``.

    ``attempts=None`` retries until ``should_stop()`` (a follower riding out a node restart). When the attempts
    run out, the last failure is raised as a UserError naming it; a stop requested meanwhile is an interrupt.
    """
    delay, attempt = first_delay, 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - only node outages are retried; the rest is re-raised
            if not is_unreachable(error):
                raise
            if should_stop():
                raise KeyboardInterrupt from error
            if attempts is not None and attempt >= attempts:
                raise UserError(f"{explain(error)} (gave up after {attempt} attempts)") from error
            if on_retry is not None:
                on_retry(f"the node does not answer ({first_line(error)})", delay)
            sleep(delay)
            delay = min(delay * 2, max_delay)
