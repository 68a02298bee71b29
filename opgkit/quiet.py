"""Keep a noisy step's output out of a report: while it runs, whatever the process writes goes to a log file.

Compilers and EZKL write past ``sys.stdout``: from native code, from child processes, and through logging's
last-resort handler. So what is redirected is file descriptors 1 and 2 themselves, which all of those write
through.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

STANDARD_STREAMS = (1, 2)


@contextlib.contextmanager
def output_to(log: Path | str) -> Iterator[None]:
    """Append everything written to stdout and stderr inside the block to ``log``; both streams are put back
    when the block ends, however it ends."""
    _flush()
    saved = [os.dup(fd) for fd in STANDARD_STREAMS]
    try:
        with open(log, "ab") as target:
            for fd in STANDARD_STREAMS:
                os.dup2(target.fileno(), fd)
        yield
    finally:
        _flush()
        for fd, original in zip(STANDARD_STREAMS, saved):
            os.dup2(original, fd)
            os.close(original)


def _flush() -> None:
    """Write out what Python has buffered, so it lands on the side of the switch it was written on."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout inside the block to stderr: for libraries that print diagnostics (ape prints
    a reverted transaction's call trace) in the middle of a stream of JSON lines."""
    _flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        _flush()
        os.dup2(saved, 1)
        os.close(saved)
