"""``make audit``: the stateful property campaign on the in-process EVM across all cores.

1. Runs every test marked ``machine`` (and the ``property`` tests) with the ``audit`` Hypothesis profile on the
   in-process chain (pytest-xdist, one worker per core) and records each machine's steps and time.
2. Runs the same machines briefly on anvil through ape, for the figure to compare with.
3. Prints steps per second per machine and in total (all steps over the campaign's wall-clock time), and writes
   the table to ``benchmarks/audit.md``.
4. Turns each counterexample into a ready-to-run ape test next to the machine it broke
   (``test_replay_<machine>_<id>.py``: the machine's own test, pinned to the failing example with Hypothesis'
   ``@reproduce_failure``) and runs it on anvil to show that it fails there too.

Exit status: 0 when every machine held, 1 when a counterexample was found, 2 when the campaign could not run.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from opgkit.campaign_stats import COLLECTED
from opgkit.testing import PROFILES

ROOT = Path(__file__).resolve().parent.parent
NETWORK = "ethereum:local:foundry"
MARK = "machine"
PROPERTY_MARK = "property"
ANVIL_EXAMPLES = 1
ANVIL_STEPS = 60  # steps of that example: a step through ape costs about a second on the larger machines
AUDIT_EXAMPLES = PROFILES["audit"].max_examples
SHARDS_PER_WORKER = 3
OUTCOME_RANK = {"skipped": 0, "passed": 1, "failed": 2, "error": 3}  # a machine's outcome is its worst shard's


@dataclass
class Result:
    """One machine's campaign: its shards' steps and (summed) time; the first failure if any shard failed."""

    test: str
    outcome: str
    steps: int
    seconds: float
    reproduce_failure: list | None
    failure: str | None
    kind: str = "machine"

    @property
    def machine(self) -> str:
        return self.test.split("::")[-1]

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    def add(self, shard: "Result") -> None:
        self.steps += shard.steps
        self.seconds += shard.seconds
        if OUTCOME_RANK[shard.outcome] > OUTCOME_RANK[self.outcome]:
            self.outcome, self.reproduce_failure, self.failure = shard.outcome, shard.reproduce_failure, shard.failure


def _machine_id(nodeid: str) -> str:
    return re.sub(r"\[shard\d+\]$|-?shard\d+(?=\])", "", nodeid).replace("[]", "")


def _results(directory: Path) -> dict[str, Result]:
    """What each test did, its shards added up. A test that was collected but never reported (its worker crashed)
    is an ``error``: a test that never ran must not look like one that held."""
    results, reported = {}, set()
    for path in sorted(directory.glob("*.json")):
        shard = Result(**json.loads(path.read_text()))
        reported.add(shard.test)
        shard.test = _machine_id(shard.test)
        if shard.test in results:
            results[shard.test].add(shard)
        else:
            results[shard.test] = shard
    collected = directory / COLLECTED
    for nodeid in json.loads(collected.read_text()) if collected.exists() else []:
        if nodeid not in reported:
            missing = Result(_machine_id(nodeid), "error", 0, 0.0, None, "E   no result: the test never reported",
                             "machine" if "state_machine" in nodeid else "property")
            if missing.test in results:
                results[missing.test].add(missing)
            else:
                results[missing.test] = missing
    return results


def _pytest_env(stats: Path, examples: int, shards: int = 1, steps: int | None = None) -> dict:
    env = dict(os.environ, OPG_AUDIT_STATS=str(stats), OPG_HYPOTHESIS_PROFILE="audit",
               OPG_HYPOTHESIS_EXAMPLES=str(examples), OPG_CAMPAIGN_SHARDS=str(shards))
    env.pop("OPG_HYPOTHESIS_STEPS", None)
    if steps:
        env["OPG_HYPOTHESIS_STEPS"] = str(steps)
    return env


def run_in_process(paths: list[str], stats: Path, examples: int, workers: int) -> tuple[float, int]:
    """Every machine's examples split into shards across the workers; returns (wall-clock seconds, pytest exit)."""
    shards = min(examples, SHARDS_PER_WORKER * workers) if workers > 1 else 1
    command = [sys.executable, "-m", "pytest", *paths, "-m", f"{MARK} or {PROPERTY_MARK}",
               "-p", "no:ape_test", "-p", "opgkit.inprocess.plugin",
               "-p", "opgkit.campaign_stats", "-p", "no:cacheprovider", "-q", "--no-header", "-rN"]
    if workers > 1:
        command += ["-n", str(workers), "--dist", "load"]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=_pytest_env(stats, -(-examples // shards), shards))
    return time.perf_counter() - started, completed.returncode


def run_on_anvil(paths: list[str], stats: Path) -> int:
    """The same machines through ape on anvil, one shorter example each. A step's cost grows with the state a
    run has built, so the anvil rate of a short example flatters anvil: the speed-up shown is a lower bound."""
    command = ["ape", "test", *paths, "-m", MARK, "--network", NETWORK, "-p", "opgkit.campaign_stats",
               "-p", "no:cacheprovider", "-q", "--no-header", "-rN"]
    return subprocess.run(command, cwd=ROOT, env=_pytest_env(stats, ANVIL_EXAMPLES, steps=ANVIL_STEPS)).returncode


# ---------------------------------------------------------------------- replays


def _test_parameters(module: Path, function: str) -> tuple[list[str], list[str]]:
    """The test function's parameters (its fixtures), and which of them the module itself defines."""
    tree = ast.parse(module.read_text())
    local_fixtures = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                      and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            parameters = [argument.arg for argument in node.args.args]
            return parameters, [name for name in parameters if name in local_fixtures]
    raise LookupError(f"{function} is not defined in {module}")


def _machine_class(failure: str) -> str:
    match = re.search(r"state = (\w+)\(\)", failure)
    if not match:
        raise LookupError("the failure does not show which state machine failed")
    return match.group(1)


_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Revert)\b.*")


_CUSTOM_ERROR = (re.compile(r"ContractRevert: (\w+)\("),  # the in-process chain's revert
                 re.compile(r"^(?:[\w.]+\.)?(\w+): Transaction failed"))  # ape's custom-error exception


def _assertion(text: str) -> str:
    """The exception a failure raised, as pytest shows it (``AssertionError: ...``): what two runs compare."""
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return next((line for line in lines if _RAISED.match(line)), lines[-1] if lines else "")


# A traceback entry's location, as pytest prints it in its long style (`path:line: Error`, at the innermost
# entry) or its short one (`path:line: in function`, each entry), which ape's runner uses.
_SITE = re.compile(r"^\s*(\S+\.py):(\d+): (?:in )?(\S+)$", re.M)


def _site(text: str) -> str | None:
    """The innermost line of the project's tests that a failure passed through (``test_x.py:123``): below it,
    each chain's own code differs."""
    sites = [(path, line) for path, line, _ in _SITE.findall(text) if "tests/" in path.replace("\\", "/")]
    return f"{Path(sites[-1][0]).name}:{sites[-1][1]}" if sites else None


def _custom_error(text: str) -> str | None:
    for line in text.splitlines():
        for pattern in _CUSTOM_ERROR:
            match = pattern.search(line.removeprefix("E").strip())
            if match:
                return match.group(1)
    return None


def _same_failure(expected: str, seen: str) -> bool:
    """Two failure reports agree when they fail at the same line of the test code and either raise the same
    assertion or revert with the same custom error. An assertion's values may differ between chains (times,
    contract addresses), and each chain words a revert its own way, so the text alone would not do."""
    if _site(expected) != _site(seen):
        return False
    first, second = _assertion(expected), _assertion(seen)
    if first == second:
        return True
    if _custom_error(expected) is not None and _custom_error(expected) == _custom_error(seen):
        return True
    return _site(expected) is not None and first.startswith("AssertionError") and second.startswith("AssertionError")


def write_replay(result: Result) -> Path:
    """Write the ape test that replays ``result``'s counterexample; returns its path."""
    file_part, function = result.test.split("::")[0], result.test.split("::")[-1]
    module = ROOT / file_part
    machine = _machine_class(result.failure or "")
    version, blob = result.reproduce_failure
    parameters, local_fixtures = _test_parameters(module, function)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    path = module.with_name(f"test_replay_{function.removeprefix('test_')}_{digest}.py")
    arguments = ", ".join(parameters)
    path.write_text(f'''"""Replays a counterexample that `make audit` found in-process in {machine} ({function}).

    ape test {path.relative_to(ROOT)} --network {NETWORK}

It runs the machine's own test pinned to the failing example. Once the bug is fixed Hypothesis reports that the
example no longer fails: turn the steps it printed into a named regression test, then delete this file.
"""

from hypothesis import reproduce_failure

import {module.stem} as machine_test
{f"from {module.stem} import {', '.join(local_fixtures)}  # noqa: F401 (fixtures the machine's test uses)" if local_fixtures else ""}


def test_replay({arguments}):
    machine = machine_test.{machine}
    reproduce_failure({version!r}, {blob})(machine)
    try:
        machine_test.{function}({arguments})
    finally:
        del machine._hypothesis_internal_use_reproduce_failure
''')
    return path


REPLAY_ENV = {"OPG_HYPOTHESIS_PROFILE": "audit"}  # the example's length: a shorter profile would stop it early


def replay_on_anvil(path: Path, expected: str) -> tuple[bool, str]:
    """Run the replay on anvil; it reproduces when it fails at the same place in the same way."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPG_HYPOTHESIS_EXAMPLES", "OPG_HYPOTHESIS_STEPS", "OPG_CAMPAIGN_SHARDS")} | REPLAY_ENV
    completed = subprocess.run(["ape", "test", str(path.relative_to(ROOT)), "--network", NETWORK, "-q",
                                "-p", "no:cacheprovider", "--no-header"],
                               cwd=ROOT, env=env, capture_output=True, text=True)
    return completed.returncode != 0 and _same_failure(expected, completed.stdout), _assertion(completed.stdout)


# ---------------------------------------------------------------------- report


def _table(results: dict[str, Result], anvil: dict[str, Result], wall: float, workers: int) -> list[str]:
    rows = ["| machine | in-process steps | seconds | steps/s | anvil steps/s | speed-up | outcome |",
            "|---|---:|---:|---:|---:|---:|---|"]
    properties = {test: result for test, result in results.items() if result.kind != "machine"}
    results = {test: result for test, result in results.items() if result.kind == "machine"}
    for test, result in sorted(results.items()):
        on_anvil = anvil.get(test)
        anvil_rate = f"{on_anvil.rate:,.1f}" if on_anvil and on_anvil.steps else "–"
        speedup = f"×{result.rate / on_anvil.rate:,.0f}" if on_anvil and on_anvil.rate and result.rate else "–"
        outcome = result.outcome + (f" (anvil: {on_anvil.outcome})" if on_anvil and on_anvil.outcome != "passed" else "")
        rows.append(f"| {result.machine} | {result.steps:,} | {result.seconds:,.1f} | {result.rate:,.0f} | "
                    f"{anvil_rate} | {speedup} | {outcome} |")
    steps = sum(result.steps for result in results.values())
    anvil = {test: result for test, result in anvil.items() if result.kind == "machine"}
    anvil_steps = sum(result.steps for result in anvil.values())
    anvil_seconds = sum(result.seconds for result in anvil.values())
    anvil_total = f"{anvil_steps / anvil_seconds:,.1f}" if anvil_seconds else "–"
    rows.append(f"| **total** ({workers} worker{'s' if workers > 1 else ''}, wall clock) | {steps:,} | {wall:,.1f} | "
                f"{steps / wall if wall else 0:,.0f} | {anvil_total} (one process) | | |")
    if properties:
        rows += ["", "| property test (audit profile's examples, in the same run) | seconds | outcome |", "|---|---:|---|"]
        rows += [f"| {result.test} | {result.seconds:,.1f} | {result.outcome} |" for _, result in sorted(properties.items())]
    return rows


def _write_benchmark(rows: list[str], examples: int | None, workers: int) -> Path:
    path = ROOT / "benchmarks" / "audit.md"
    length = f"{examples} examples per machine"
    path.write_text("\n".join([
        "# Property campaign throughput (`make audit`)",
        "",
        f"In-process EVM (revm via pyrevm), Hypothesis `audit` profile ({length}), {workers} worker process"
        f"{'es' if workers > 1 else ''} on {os.cpu_count()} cores ({platform.machine()}). A step is one rule of a "
        "state machine followed by all of its invariants. The anvil column is the same machines through ape on "
        f"anvil ({ANVIL_EXAMPLES} example of {ANVIL_STEPS} steps each, one process; a step costs more as a run's "
        "state grows, so that short run flatters anvil and the speed-up is a lower bound). Seconds are each "
        "machine's own time summed over its shards; the total divides all steps by the campaign's wall-clock time. "
        "Machine-dependent: not diff-checked in CI.",
        "",
        *rows,
        "",
    ]))
    return path


@click.command()
@click.option("--examples", type=click.IntRange(min=1), default=AUDIT_EXAMPLES, show_default=True,
              help="Examples per machine (the audit profile's by default).")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="In-process worker processes.")
@click.option("--anvil/--no-anvil", default=True, show_default=True,
              help="Also measure the machines on anvil for comparison.")
@click.option("--write-benchmark/--no-write-benchmark", default=True, show_default=True,
              help="Write the table to benchmarks/audit.md.")
@click.argument("paths", nargs=-1)
def main(examples, workers, anvil, write_benchmark, paths):
    """Run the stateful property campaign in-process (PATHS: test files or folders; default tests/)."""
    paths = list(paths) or ["tests"]
    for path in paths:
        if not (ROOT / path).exists():
            raise click.UsageError(f"{path} does not exist (give test files or folders relative to the project)")
    with tempfile.TemporaryDirectory(prefix="audit-") as scratch:
        stats, anvil_stats = Path(scratch) / "in-process", Path(scratch) / "anvil"
        click.echo(f"In-process campaign: {workers} worker(s), profile 'audit', {examples} examples per machine")
        wall, code = run_in_process(paths, stats, examples, workers)
        results = _results(stats)
        if not results:
            click.echo(f"No state machine ran (pytest exit {code}): nothing marked '{MARK}' under {' '.join(paths)}.",
                       err=True)
            sys.exit(2)
        if code not in (0, 1):
            click.echo(f"The in-process campaign did not complete (pytest exit {code}); see its output above.", err=True)
            sys.exit(2)
        anvil_results = {}
        if anvil:
            click.echo(f"Anvil comparison: the same machines through ape, {ANVIL_EXAMPLES} example of {ANVIL_STEPS} steps")
            run_on_anvil(paths, anvil_stats)
            anvil_results = _results(anvil_stats)
    rows = _table(results, anvil_results, wall, workers)
    click.echo("\n".join(["", *rows, ""]))
    if write_benchmark:
        click.echo(f"Written: {_write_benchmark(rows, examples, workers).relative_to(ROOT)}")

    failed = [result for result in results.values() if result.outcome == "failed"]
    for result in failed:
        click.echo(f"\nCOUNTEREXAMPLE in {result.test}: {_assertion(result.failure or '')}")
        if not result.reproduce_failure:
            click.echo("  (no reproduction blob in the failure; rerun with the audit profile's print_blob)")
            continue
        try:
            replay = write_replay(result)
        except LookupError:  # a property test, not a state machine: Hypothesis' database holds the example
            click.echo(f"  rerun it on anvil (Hypothesis replays the saved example first): "
                       f"ape test {result.test} --network {NETWORK}")
            continue
        reproduced, seen = replay_on_anvil(replay, result.failure or "")
        verdict = "reproduces on anvil" if reproduced else f"did NOT reproduce on anvil (it reported: {seen or 'a pass'})"
        click.echo(f"  replay: {replay.relative_to(ROOT)} — {verdict}")
        click.echo(f"  run it: OPG_HYPOTHESIS_PROFILE=audit ape test {replay.relative_to(ROOT)} --network {NETWORK}")
    on_anvil = [result for result in anvil_results.values() if result.outcome in ("failed", "error")]
    for result in on_anvil:
        click.echo(f"\nFAILED ON ANVIL (the same machine through ape) {result.test}: {_assertion(result.failure or '')}")
    errors = [result for result in results.values() if result.outcome == "error"]
    for result in errors:
        click.echo(f"\nERROR in {result.test}: it never ran to the end: {_assertion(result.failure or '')}", err=True)
    sys.exit(1 if failed or on_anvil else 2 if errors else 0)


if __name__ == "__main__":
    main()
