"""``make mutation``: mutation testing of the core contracts, each mutant's tests run in-process.

1. **Generate.** universalmutator (``mutate File.sol solidity --noCheck``) writes every one-line mutant of each
   core contract. Mutants of comments, NatSpec, ``import``/``pragma`` lines and event/error declarations are
   dropped, identical ones kept once. ``MUTANTS=N`` keeps a seeded random sample of N per contract.
2. **Compile.** Each mutant is compiled by a long-lived solcjs (``opgkit/toolchain/solc_batch.js``) from a
   standard-json input holding the mutated file and the project files that import it, with the project's
   settings and no metadata hash (so identical code gives identical bytecode). The real ``contracts/`` and
   ``.build/`` are never touched. A mutant that does not compile is "not compiled"; one whose bytecode equals
   the original's for every contract is "equivalent (same bytecode)".
3. **Test.** The contracts whose bytecode changed are substituted (``OPG_BYTECODE_OVERRIDES``, read by the
   in-process ``project`` fixture) and the tests that touch the contract run in-process, fail-fast, in a
   process forked from a worker that already imported pytest and ape. Fail = killed, pass = survived; a run
   over the time limit is killed (the mutant made the code hang or loop), and is counted and shown as such.
4. **Report.** ``benchmarks/mutation.md``: per contract generated / compiled / equivalent / killed / survived /
   not compiled and the score killed / (compiled - equivalent); every survivor as ``file:line`` with its diff
   and, when ``mutation-triage.yaml`` argues it equivalent, the argument (it then counts as equivalent).

Workers: ``JOBS`` (default: every core). ``SURVIVORS=1`` tests only the last run's survivors again (after new
tests were written for them) and rewrites the report with every other verdict kept. Exit status: 0 when every contract reaches the target score, 1 when
one does not, 2 when the run could not start (for example the original fails its own tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REPORT = Path("benchmarks") / "mutation.md"
TRIAGE = "mutation-triage.yaml"
TARGET_SCORE = 0.90
SEED = int(os.environ.get("MUTATION_SEED") or 20_261_130)  # MUTATION_SEED=n: another sample of the same size
TEST_TIMEOUT = 120.0

# Each core contract and the tests that touch it (the tests a mutant of it must fail).
CORE: dict[str, list[str]] = {
    "SettlementPayments": ["tests/settlement"],
    "InferenceSettlement": ["tests/settlement"],
    "BatchSettlement": ["tests/settlement"],
    "NodeStaking": ["tests/staking", "tests/registry"],
    "TwinMarket": ["tests/twin"],
    "ModelRegistry": ["tests/registry", "tests/settlement"],
    "TEERegistry": ["tests/registry"],
}
PYTEST_ARGS = [
    "-x", "-q", "-p", "no:ape_test", "-p", "opgkit.inprocess.plugin", "-p", "no:cacheprovider", "-p", "no:warnings",
    "-m", "not zkml and not anvil_only", "--hypothesis-seed=0",
]
OVERRIDES_ENV = "OPG_BYTECODE_OVERRIDES"

KILLED, SURVIVED, EQUIVALENT, NOT_COMPILED, TIMEOUT = "killed", "survived", "equivalent", "not compiled", "timeout"


@dataclass
class Mutant:
    contract: str
    path: str  # relative to the project root
    line: int  # 1-based
    original: str
    mutated: str
    status: str = ""
    seconds: float = 0.0
    changed: list[str] = field(default_factory=list)  # contracts whose bytecode the mutant changed
    survived_before: bool = False  # a survivor of the run that SURVIVORS=1 tested again

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.contract, self.original.strip(), self.mutated.strip())

    def source(self, original_text: str) -> str:
        lines = original_text.split("\n")
        lines[self.line - 1] = self.mutated
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- generate

_SKIPPED_LINE = re.compile(r"^\s*(import\b|pragma\b|event\b|error\b|//|\*|/\*)")


def code_lines(text: str) -> list[str]:
    """Each line with its comments blanked out (strings are kept; a ``//`` inside one is not a comment)."""
    out, in_block = [], False
    for line in text.split("\n"):
        code, i, quote = [], 0, None
        while i < len(line):
            two = line[i:i + 2]
            if in_block:
                if two == "*/":
                    in_block, i = False, i + 2
                else:
                    i += 1
                continue
            char = line[i]
            if quote:
                code.append(char)
                if char == "\\" and i + 1 < len(line):
                    code.append(line[i + 1])
                    i += 1
                elif char == quote:
                    quote = None
            elif char in "\"'":
                quote = char
                code.append(char)
            elif two == "//":
                break
            elif two == "/*":
                in_block, i = True, i + 2
                continue
            else:
                code.append(char)
            i += 1
        out.append("".join(code).rstrip())
    return out


def _normalised(code: str) -> str:
    return re.sub(r"\s+", " ", code).strip()


def worth_testing(original_text: str, line: int, mutated: str, code: list[str] | None = None) -> bool:
    """Whether a one-line mutant changes code: not a comment, NatSpec, import, pragma or event/error declaration.
    ``code``: ``code_lines(original_text)``, if already computed."""
    lines = original_text.split("\n")
    code = code_lines(original_text) if code is None else code
    before = code[line - 1]
    if not before.strip() or _SKIPPED_LINE.match(lines[line - 1]):
        return False
    after = code_lines(mutated)[0]  # (a line that starts inside a block comment has no code: skipped above)
    return _normalised(before) != _normalised(after)


def raw_mutants(path: Path, cache: Path | None = ROOT / "build" / "mutants") -> list[tuple[int, str]]:
    """universalmutator's one-line mutants of ``path``: (line, mutated line). Kept in ``cache`` by the source's hash
    (universalmutator takes a while on a large file and writes the same mutants every time)."""
    cached = cache / f"{path.stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}.json" if cache else None
    if cached and cached.exists():
        return [tuple(item) for item in json.loads(cached.read_text())]
    found = _run_universalmutator(path)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(found))
    return found


def _run_universalmutator(path: Path) -> list[tuple[int, str]]:
    original = path.read_text().split("\n")
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(
            [str(Path(sys.executable).with_name("mutate")), str(path), "solidity", "--noCheck", "--mutantDir", directory],
            cwd=directory, check=True, capture_output=True,
        )
        found = []
        for mutant_file in Path(directory).glob(f"{path.stem}.mutant.*{path.suffix}"):
            lines = mutant_file.read_text().split("\n")
            if len(lines) != len(original):
                continue
            differing = [i for i, (a, b) in enumerate(zip(original, lines)) if a != b]
            if len(differing) == 1:
                found.append((differing[0] + 1, lines[differing[0]]))
    return sorted(found)


def generate(contract: str, root: Path = ROOT) -> tuple[int, list[Mutant]]:
    """(raw mutant count, the distinct mutants worth testing) of ``contracts/<contract>.sol``."""
    path = root / "contracts" / f"{contract}.sol"
    text = path.read_text()
    raw = raw_mutants(path)
    code = code_lines(text)
    seen, mutants = set(), []
    for line, mutated in raw:
        if not worth_testing(text, line, mutated, code):
            continue
        key = (line, _normalised(code_lines(mutated)[0]))
        if key in seen:
            continue
        seen.add(key)
        mutants.append(Mutant(contract, str(path.relative_to(root)), line, text.split("\n")[line - 1], mutated))
    return len(raw), mutants


def sample(mutants: list[Mutant], count: int | None, seed: int = SEED) -> list[Mutant]:
    """A reproducible sample of ``count`` mutants (all of them when ``count`` is None)."""
    ordered = sorted(mutants, key=lambda m: (m.line, m.mutated))
    if count is None or count >= len(ordered):
        return ordered
    return sorted(random.Random(f"{seed}:{ordered[0].contract}").sample(ordered, count),
                  key=lambda m: (m.line, m.mutated))


# ----------------------------------------------------------------------------------------------------- compile

_IMPORT = re.compile(r"""^\s*import\s+(?:[^"']*from\s+)?["']([^"']+)["']""", re.M)


def dependents(path: str, root: Path = ROOT) -> list[str]:
    """``path`` and every project contract file that imports it, directly or not."""
    imports = {}
    for file in sorted((root / "contracts").glob("*.sol")):
        name = str(file.relative_to(root))
        imports[name] = {os.path.normpath(os.path.join(os.path.dirname(name), target))
                         for target in _IMPORT.findall(file.read_text()) if target.startswith(".")}
    found, changed = {path}, True
    while changed:
        changed = False
        for name, targets in imports.items():
            if name not in found and targets & found:
                found.add(name)
                changed = True
    return sorted(found)


def compiler_input(sources: dict[str, str], root: Path = ROOT) -> dict:
    """Standard-json input for ``sources`` with the settings ape-config.yaml gives ape-solidity, no metadata."""
    config = yaml.safe_load((root / "ape-config.yaml").read_text())["solidity"]
    return {
        "language": "Solidity",
        "sources": {name: {"content": content} for name, content in sources.items()},
        "settings": {
            "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
            "optimizer": {"enabled": bool(config.get("optimize", True)), "runs": 200},
            "evmVersion": config["evm_version"],
            "metadata": {"appendCBOR": False},
            "outputSelection": {name: {"*": ["evm.bytecode.object"]} for name in sources},
        },
    }


class Compiler:
    """A long-lived solcjs process (``solc_batch.js``): one standard-json input in, one output out."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        env = dict(os.environ, OPG_SOLCJS_MODULE=str(root / "node_modules" / "solc"))
        self.process = subprocess.Popen(
            ["node", str(root / "opgkit" / "toolchain" / "solc_batch.js")], cwd=root, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1,
        )

    def compile(self, sources: dict[str, str]) -> dict[str, str] | None:
        """Deployment bytecode per contract name, or None if the sources do not compile."""
        self.process.stdin.write(json.dumps(compiler_input(sources, self.root)) + "\n")
        self.process.stdin.flush()
        output = json.loads(self.process.stdout.readline())
        if any(error["severity"] == "error" for error in output.get("errors", [])):
            return None
        return {name: "0x" + compiled["evm"]["bytecode"]["object"]
                for contracts in output.get("contracts", {}).values() for name, compiled in contracts.items()
                if compiled["evm"]["bytecode"]["object"]}

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def sources_with(path: str, content: str, root: Path = ROOT) -> dict[str, str]:
    sources = {name: (root / name).read_text() for name in dependents(path, root)}
    sources[path] = content
    return sources


# -------------------------------------------------------------------------------------------------------- test


def run_tests(tests: list[str], overrides: dict[str, str], timeout: float, root: Path = ROOT,
              extra_args: list[str] | None = None) -> str:
    """Run ``tests`` in-process with ``overrides`` in a forked child: KILLED, SURVIVED or TIMEOUT."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(overrides, file)
    try:
        pid = os.fork()
        if pid == 0:  # the child: pytest, its output discarded
            code = 3
            try:
                os.chdir(root)
                os.environ[OVERRIDES_ENV] = file.name
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                import pytest

                code = int(pytest.main([*tests, *PYTEST_ARGS, *(extra_args or [])]))
            finally:
                os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return TIMEOUT
            time.sleep(0.02)
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return SURVIVED
        if code == 1:
            return KILLED
        raise RuntimeError(f"pytest could not run {tests} (exit status {code})")
    finally:
        os.unlink(file.name)


# ------------------------------------------------------------------------------------------------------ worker

_compiler: Compiler | None = None
_baseline: dict[str, dict[str, str]] = {}


def _init_worker(baseline: dict[str, dict[str, str]]) -> None:
    global _compiler, _baseline
    _compiler, _baseline = Compiler(), baseline


def compile_mutant(mutant: Mutant, root: Path = ROOT) -> tuple[Mutant, dict[str, str]]:
    """Compile ``mutant``: NOT_COMPILED, EQUIVALENT (same bytecode everywhere), or the bytecode it changed."""
    started = time.monotonic()
    compiled = _compiler.compile(sources_with(mutant.path, mutant.source((root / mutant.path).read_text()), root))
    overrides = {}
    if compiled is None:
        mutant.status = NOT_COMPILED
    else:
        baseline = _baseline[mutant.path]
        mutant.changed = sorted(name for name, code in compiled.items() if baseline.get(name) != code)
        overrides = {name: compiled[name] for name in mutant.changed}
        if not overrides:
            mutant.status = EQUIVALENT
    mutant.seconds = time.monotonic() - started
    return mutant, overrides


def run_mutant(job: tuple[Mutant, dict[str, str]], root: Path = ROOT, timeout: float = TEST_TIMEOUT) -> Mutant:
    """Run the tests of ``mutant``'s contract with its bytecode in place: KILLED, SURVIVED or TIMEOUT."""
    mutant, overrides = job
    started = time.monotonic()
    mutant.status = run_tests(CORE[mutant.contract], overrides, timeout, root)
    mutant.seconds += time.monotonic() - started
    return mutant


def choose(pool, mutants: list[Mutant], count: int | None, jobs: int) -> list[tuple[Mutant, dict[str, str]]]:
    """Compile mutants in a seeded order until ``count`` of them compile (all of them when ``count`` is None):
    a sample of N means N compiled mutants, whatever share of universalmutator's output is not valid code."""
    ordered = sample(mutants, None)
    if count is not None:
        random.Random(f"{SEED}:{ordered[0].contract}").shuffle(ordered)
    chosen, compiled, position = [], 0, 0
    while position < len(ordered) and (count is None or compiled < count):
        batch_size = len(ordered) if count is None else max(jobs, 2 * (count - compiled))
        batch = ordered[position:position + batch_size]
        position += len(batch)
        for mutant, overrides in pool.imap(compile_mutant, batch):
            if count is not None and compiled >= count:
                break
            chosen.append((mutant, overrides))
            compiled += mutant.status != NOT_COMPILED
    return chosen


def _preload() -> None:
    """Import what every test run needs once, in the parent, so that each forked run starts warm."""
    import ape
    import hypothesis  # noqa: F401
    import pytest  # noqa: F401

    import opgkit.inprocess.plugin  # noqa: F401

    for file in sorted((ROOT / "contracts").rglob("*.sol")):  # the test-only ones in contracts/test/ too
        try:
            getattr(ape.project, file.stem).contract_type
        except AttributeError:
            pass


# ------------------------------------------------------------------------------------------------------ report


@dataclass
class Tally:
    contract: str
    generated: int
    mutants: list[Mutant]
    triage: dict

    def count(self, status: str) -> int:
        return sum(1 for m in self.mutants if m.status == status)

    @property
    def argued(self) -> list[Mutant]:
        return [m for m in self.mutants if m.status == SURVIVED and m.key in self.triage]

    @property
    def survivors(self) -> list[Mutant]:
        return [m for m in self.mutants if m.status == SURVIVED and m.key not in self.triage]

    @property
    def compiled(self) -> int:
        return len(self.mutants) - self.count(NOT_COMPILED)

    @property
    def equivalent(self) -> int:
        return self.count(EQUIVALENT) + len(self.argued)

    @property
    def killed(self) -> int:
        return self.count(KILLED) + self.count(TIMEOUT)

    @property
    def score(self) -> float:
        judged = self.compiled - self.equivalent
        return self.killed / judged if judged else 1.0


def load_triage(root: Path = ROOT) -> dict[tuple[str, str, str], str]:
    """``(contract, original line, mutated line) -> why the mutant is equivalent``, from mutation-triage.yaml."""
    path = root / TRIAGE
    entries = (yaml.safe_load(path.read_text()) or {}).get("equivalent", []) if path.exists() else []
    triage = {}
    for entry in entries:
        reason = str(entry.get("reason", "")).strip()
        if not reason:
            raise ValueError(f"{TRIAGE}: {entry.get('contract')}: '{entry.get('mutated')}' needs a reason")
        triage[(entry["contract"], str(entry["original"]).strip(), str(entry["mutated"]).strip())] = reason
    return triage


def full_run_estimate(tallies: list[Tally], jobs: int) -> float:
    """Seconds a run of every distinct mutant would take at this run's pace (mean time per mutant of each contract,
    the not-compiled ones included, times its distinct mutants, over the workers)."""
    total = 0.0
    for t in tallies:
        if t.mutants:
            total += sum(m.seconds for m in t.mutants) / len(t.mutants) * getattr(t, "distinct", len(t.mutants))
    return total / max(jobs, 1)


def render(tallies: list[Tally], *, sampled: int | None, seconds: float, jobs: int) -> str:
    scope = (f"mutants taken in a seeded random order (seed {SEED}) until {sampled} per contract compiled"
             if sampled else "every mutant")
    tested = sum(len(t.mutants) for t in tallies)
    out = [
        "# Mutation testing",
        "",
        f"Generated by `make mutation`{f' with `MUTANTS={sampled}`' if sampled else ''}: {scope}; {tested} mutants "
        f"in {seconds / 60:.1f} min on {jobs} worker{'s' if jobs != 1 else ''}"
        + (f" (every distinct mutant, at this pace: about {full_run_estimate(tallies, jobs) / 3600:.0f} h)."
           if sampled else "."),
        "Mutants: universalmutator's one-line Solidity mutants, minus those of comments, NatSpec, imports, pragmas and "
        "event/error declarations, duplicates removed. Each compiled mutant ran the tests of its contract in-process "
        "(fail-fast; a run over the time limit counts as killed and is listed under *timeout*).",
        "",
        "Score = killed / (compiled - equivalent). *Equivalent* = same bytecode as the original (after the optimizer) "
        f"or argued equivalent in `{TRIAGE}`. Target: {TARGET_SCORE:.0%} per contract.",
        "",
        "| contract | generated | distinct | tested | not compiled | equivalent (bytecode + argued) | killed (of which timeout) | survived | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in tallies:
        distinct = getattr(t, "distinct", len(t.mutants))
        out.append(
            f"| {t.contract} | {t.generated} | {distinct} | {len(t.mutants)} | {t.count(NOT_COMPILED)} | "
            f"{t.count(EQUIVALENT)} + {len(t.argued)} | {t.killed} ({t.count(TIMEOUT)}) | {len(t.survivors)} | "
            f"{t.score:.1%}{'' if t.score >= TARGET_SCORE else ' ✗'} |"
        )
    for t in tallies:
        caught = [m for m in t.mutants if m.survived_before and m.status in (KILLED, TIMEOUT)]
        if not t.survivors and not t.argued and not caught:
            continue
        out += ["", f"## {t.contract}", ""]
        if caught:
            out += ["Survivors of the first run that the tests written for them kill:", ""]
            for m in caught:
                out += [f"- `{m.path}:{m.line}` `{m.original.strip()}` → `{m.mutated.strip()}`"]
        if t.survivors:
            out += ["", "Survivors (no test fails):", ""] if caught else ["Survivors (no test fails):", ""]
            for m in t.survivors:
                out += [f"- `{m.path}:{m.line}`", "  ```diff", f"  - {m.original.strip()}", f"  + {m.mutated.strip()}",
                        "  ```"]
        if t.argued:
            out += ([] if out[-1] == "" else [""]) + ["Argued equivalent:", ""]
            for m in t.argued:
                out += [f"- `{m.path}:{m.line}` `{m.original.strip()}` → `{m.mutated.strip()}`: {t.triage[m.key]}"]
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------------------------------------------- main


RESULTS = Path("build") / "mutation.json"


def _ready(contracts: list[str]) -> dict[str, dict[str, str]] | None:
    """The original bytecode of each contract's file (and its heirs), once the original passes its tests."""
    compiler = Compiler()
    baseline = {}
    for path in sorted({f"contracts/{contract}.sol" for contract in contracts}):
        baseline[path] = compiler.compile(sources_with(path, (ROOT / path).read_text()))
        if baseline[path] is None:
            print(f"error: {path} does not compile as it stands", file=sys.stderr)
            return None
    compiler.close()
    _preload()
    for tests in sorted({tuple(CORE[contract]) for contract in contracts}):
        if run_tests(list(tests), {}, 10 * TEST_TIMEOUT) != SURVIVED:
            print(f"error: {' '.join(tests)} fail on the original contracts; fix them first", file=sys.stderr)
            return None
    return baseline


def _finish(contracts: list[str], results: list[Mutant], run: dict, triage: dict) -> int:
    tallies = []
    for contract in contracts:
        generated, candidates = generate(contract)
        mine = sorted((m for m in results if m.contract == contract), key=lambda m: (m.line, m.mutated))
        tally = Tally(contract, generated, mine, triage)
        tally.distinct = len(candidates)
        tallies.append(tally)
    report = render(tallies, sampled=run["sampled"], seconds=run["seconds"], jobs=run["jobs"])
    if run.get("retested"):
        count, seconds = run["retested"]
        report = report.replace("\nMutants: ", f"\nThen the {count} survivors of that run were tested again, after new "
                                f"tests, in {seconds / 60:.1f} min (`SURVIVORS=1`). The scores count those as killed: they describe this "
                                "sample after tests were written for it; another seed (`MUTATION_SEED=n`) gives a fresh "
                                "estimate for the rest.\nMutants: ", 1)
    (ROOT / REPORT).write_text(report)
    (ROOT / RESULTS).parent.mkdir(exist_ok=True)
    (ROOT / RESULTS).write_text(json.dumps(dict(run, mutants=[asdict(m) for m in results]), indent=1))
    for t in tallies:
        print(f"{t.contract}: score {t.score:.1%} ({t.killed} killed, {len(t.survivors)} survived, "
              f"{t.equivalent} equivalent, {t.count(NOT_COMPILED)} not compiled)")
    print(f"wrote {REPORT}")
    return 0 if all(t.score >= TARGET_SCORE for t in tallies) else 1


def retest_survivors(jobs: int, triage: dict) -> int:
    """``SURVIVORS=1``: test the last run's survivors again (after new tests), keep every other verdict."""
    path = ROOT / RESULTS
    if not path.exists():
        print(f"error: no earlier run ({RESULTS}); run `make mutation` first", file=sys.stderr)
        return 2
    run = json.loads(path.read_text())
    results = [Mutant(**fields) for fields in run.pop("mutants")]
    contracts = [contract for contract in CORE if any(m.contract == contract for m in results)]
    survivors = [m for m in results if m.status == SURVIVED]
    for mutant in survivors:
        mutant.survived_before = True
    baseline = _ready(contracts)
    if baseline is None:
        return 2
    started = time.monotonic()
    with get_context("fork").Pool(jobs, initializer=_init_worker, initargs=(baseline,)) as pool:
        compiled = pool.map(compile_mutant, survivors, chunksize=1)
        plan = [(mutant, overrides) for mutant, overrides in compiled if overrides]
        retested = {(m.path, m.line, m.mutated): m for m, _ in compiled}
        for done, mutant in enumerate(pool.imap_unordered(run_mutant, plan, chunksize=1), 1):
            retested[(mutant.path, mutant.line, mutant.mutated)] = mutant
            print(f"[{done}/{len(plan)}] {mutant.path}:{mutant.line} {mutant.status} ({mutant.seconds:.1f}s)",
                  flush=True)
    results = [retested.get((m.path, m.line, m.mutated), m) for m in results]
    run["retested"] = (len(survivors), time.monotonic() - started)
    return _finish(contracts, results, run, triage)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    contracts = argv or list(CORE)
    sampled = int(os.environ["MUTANTS"]) if os.environ.get("MUTANTS") else None
    jobs = int(os.environ.get("JOBS") or os.cpu_count() or 1)
    triage = load_triage()
    if os.environ.get("SURVIVORS"):
        return retest_survivors(jobs, triage)
    started = time.monotonic()

    candidates = {}
    for contract in contracts:
        generated, candidates[contract] = generate(contract)
        print(f"{contract}: {generated} raw mutants, {len(candidates[contract])} distinct", flush=True)
    baseline = _ready(contracts)
    if baseline is None:
        return 2

    results: list[Mutant] = []
    with get_context("fork").Pool(jobs, initializer=_init_worker, initargs=(baseline,)) as pool:
        plan = []
        for contract in contracts:
            chosen = choose(pool, candidates[contract], sampled, jobs)
            results += [mutant for mutant, overrides in chosen if not overrides]
            plan += [(mutant, overrides) for mutant, overrides in chosen if overrides]
            print(f"{contract}: {len(chosen)} compiled or not, {sum(1 for _, o in chosen if o)} to test", flush=True)
        for done, mutant in enumerate(pool.imap_unordered(run_mutant, plan, chunksize=1), 1):
            results.append(mutant)
            print(f"[{done}/{len(plan)}] {mutant.path}:{mutant.line} {mutant.status} ({mutant.seconds:.1f}s)",
                  flush=True)
    run = {"sampled": sampled, "jobs": jobs, "seconds": time.monotonic() - started}
    return _finish(contracts, results, run, triage)


if __name__ == "__main__":
    sys.exit(main())
