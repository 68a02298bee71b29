"""Running the operators (relayer, watchtower, keeper) as real `ape run` processes against the test's anvil."""

import sqlite3
import time
from pathlib import Path

from opgkit.batch_document import BatchDocument, publish
from opgkit.operators import launch
from opgkit.operators.launch import json_lines

WATCHER_ACCOUNT = "TEST::9"  # `reporter` in tests/conftest.py: tests never send from it while an operator runs


def run_operator(name, uri, settlement, state, *options, account=WATCHER_ACCOUNT, timeout=600):
    """Run an operator to completion (no --follow); returns the CompletedProcess."""
    return launch.run_operator(name, uri, settlement.address, state, account, *options, timeout=timeout)


def start_operator(name, uri, settlement, state, *options, account=WATCHER_ACCOUNT):
    """Start an operator that keeps running (pass --follow); stop it with SIGTERM."""
    return launch.start_operator(name, uri, settlement.address, state, account, *options)


def events(output: str, name: str) -> list[dict]:
    return [line for line in json_lines(output) if line["event"] == name]


def state_rows(state: Path, query: str, *args) -> list:
    """Rows of an operator's SQLite state, read as another process would (the operator may be writing)."""
    if not state.exists():
        return []
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30) as db:
        try:
            return db.execute(query, args).fetchall()
        except sqlite3.OperationalError:  # the operator has not created its tables yet
            return []


def wait_for(predicate, timeout=120, interval=0.2, process=None):
    """Poll ``predicate()`` until it is truthy; fail (with the process's stderr) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the operator exited ({process.returncode}): {process.stderr.read()[-3000:]}")
        time.sleep(interval)
    raise AssertionError(f"not reached in {timeout} s")


def publish_batch(batches, batch, directory: Path) -> str:
    """Publish ``batch``'s document into ``directory``; returns its file:// dataUri."""
    document = BatchDocument(batches.provider.chain_id, str(batches.address), tuple(batch.signed))
    path, _ = publish(directory, document)
    return path.resolve().as_uri()
