"""pytest plugin: what each test of a property campaign did, for ``make audit``.

Loaded with ``-p opgkit.campaign_stats`` on either chain (``ape test`` on anvil, or pytest with the in-process
plugin). When ``OPG_AUDIT_STATS`` names a directory, each test's state-machine steps, duration and outcome are
written there as one JSON file, with Hypothesis' reproduction blob (``@reproduce_failure``) when it failed.
``OPG_CAMPAIGN_SHARDS=k`` runs each state machine and property test (tests marked ``machine`` or ``property``) as
k independent tests, so that workers share a long machine's examples instead of one worker running it alone.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from opgkit import testing

STATS_ENV = "OPG_AUDIT_STATS"
SHARDS_ENV = "OPG_CAMPAIGN_SHARDS"
COLLECTED = "collected.list"
_BLOB = re.compile(r"@reproduce_failure\('([^']+)', (b'[^']*'|b\"[^\"]*\")\)")


def pytest_generate_tests(metafunc):
    shards = int(os.environ.get(SHARDS_ENV) or 1)
    marked = metafunc.definition.get_closest_marker("machine") or metafunc.definition.get_closest_marker("property")
    if shards > 1 and marked:
        metafunc.fixturenames.append("campaign_shard")
        metafunc.parametrize("campaign_shard", range(shards), ids=lambda shard: f"shard{shard}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    steps_before, started = testing.steps_taken, time.perf_counter()
    yield
    item._campaign = (testing.steps_taken - steps_before, time.perf_counter() - started)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.campaign_kind = "machine" if item.get_closest_marker("machine") else "property"
    if call.when == "call":
        report.campaign_steps, report.campaign_seconds = getattr(item, "_campaign", (0, call.duration))


def pytest_collection_finish(session):
    """The tests this run will run, so ``make audit`` can tell one that never reported (a crashed worker)."""
    directory = os.environ.get(STATS_ENV)
    if directory and session.items:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / COLLECTED).write_text(json.dumps(sorted(item.nodeid for item in session.items)))


def pytest_runtest_logreport(report):
    """One record per test: the call's outcome, or ``error`` when its setup or teardown failed (a test that never
    ran must not look like one that held). Under xdist the worker that ran the test writes it."""
    directory = os.environ.get(STATS_ENV)
    if not directory or hasattr(report, "node"):
        return
    if report.when != "call" and not report.failed:
        return
    outcome = report.outcome if report.when == "call" else "error"
    text = str(report.longrepr) if report.failed else ""
    blob = _BLOB.search(text)
    record = {
        "test": report.nodeid,
        "outcome": outcome,
        "kind": getattr(report, "campaign_kind", "machine"),
        "steps": getattr(report, "campaign_steps", 0),
        "seconds": getattr(report, "campaign_seconds", report.duration),
        "reproduce_failure": [blob.group(1), blob.group(2)] if blob else None,
        "failure": text if report.failed else None,
    }
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", report.nodeid) + ("" if report.when == "call" else f".{report.when}")
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / f"{name}.json").write_text(json.dumps(record, indent=1))
