"""`make coverage`: line, branch and function coverage of the production contracts, without instrumenting them.

The contracts run exactly as deployed (same bytecode, so gas and size assertions still hold). While the
suite runs, :mod:`opgkit.toolchain.coverage_plugin` asks anvil for the trace of every transaction and call
the tests send, and this module maps each executed program counter back to Solidity source:

* the project is compiled once more through the solc stand-in, with the standard-json input ``make lint``
  builds (same settings as ape-config.yaml), asking for source maps and ASTs;
* the code that ran is matched to a compiled contract (immutables and the metadata trailer masked out;
  constructor code by prefix, constructor arguments follow it);
* pc -> instruction index -> source map entry -> source range; a statement counts as executed when an
  executed instruction's source range lies inside it;
* branch outcomes are read from the trace: after a JUMPI inside a branch's condition, the first later step
  of the same call frame that is decisive (inside the ``then``/``else`` part, past the construct, a REVERT)
  says which way it went.

What counts as a line, a statement, a function and a branch is written in docs/auditing.md ("Auditors: coverage").
The report (lcov, HTML, a text table) is written by istanbul (npm ``istanbul-lib-report`` and
``istanbul-reports``) from the istanbul coverage map built here.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from opgkit import PROJECT_ROOT
from opgkit.toolchain.slither import standard_json_input
from opgkit.toolchain.solc import ToolchainError, binary_dir, pinned_solc_version

REPORT_SCRIPT = Path(__file__).with_name("coverage_report.js")
BUILD_DIR = Path("build") / "coverage"
DEFAULT_REPORT_DIR = Path("reports") / "coverage"
LINE_THRESHOLD = 95.0
BRANCH_THRESHOLD = 90.0

# Test-only contracts (attack fixtures, the gas table's anchors) live in contracts/test/: their numbers are
# shown, but no threshold applies. Everything else under contracts/ must reach the thresholds. OpenZeppelin
# (imported from node_modules) and the EZKL-generated Halo2 verifiers (generated at run time, never in
# contracts/) are not measured at all.
TEST_ONLY_FOLDER = "contracts/test/"
EXCLUDED_REASON = "test-only contract (attack fixture or benchmark anchor), never deployed by the protocol"
MEASURED_FOLDER = "contracts/"

# Struct-log options: only pc, op and depth are read, so stack, memory and storage are left out.
STRUCT_LOG_OPTIONS = {"disableStack": True, "disableStorage": True, "disableMemory": True, "enableMemory": False,
                      "enableReturnData": False}
# How many steps after a JUMPI are searched for the step that says which way a branch went.
LOOKAHEAD_STEPS = 4000
PRECOMPILE_LIMIT = 0x100


# ---------------------------------------------------------------------------------------------- compiling


def coverage_input(root: Path = PROJECT_ROOT) -> dict:
    """``make lint``'s standard-json input, asking for source maps, immutables and ASTs instead."""
    data = standard_json_input(root)
    data["settings"]["outputSelection"] = {
        "*": {
            "*": ["evm.bytecode.object", "evm.bytecode.sourceMap", "evm.deployedBytecode.object",
                  "evm.deployedBytecode.sourceMap", "evm.deployedBytecode.immutableReferences"],
            "": ["ast"],
        }
    }
    return data


def solc_path(root: Path = PROJECT_ROOT) -> Path:
    path = binary_dir() / f"solc-v{pinned_solc_version(root / 'ape-config.yaml')}"
    if not path.exists():
        raise ToolchainError(f"{path} is missing: run `make setup` first")
    return path


def compile_for_coverage(root: Path = PROJECT_ROOT) -> dict:
    """solc's standard-json output for the project, cached under build/coverage by input hash."""
    data = coverage_input(root)
    text = json.dumps(data, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    build = root / BUILD_DIR
    cached = build / f"solc-output-{digest}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    completed = subprocess.run(
        [str(solc_path(root)), "--standard-json", "--allow-paths", str(root)],
        input=text, capture_output=True, text=True, cwd=root,
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise ToolchainError(f"solc failed: {completed.stderr.strip()}")
    output = json.loads(completed.stdout)
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise ToolchainError("solc failed:\n" + "\n".join(errors))
    build.mkdir(parents=True, exist_ok=True)
    for old in build.glob("solc-output-*.json"):
        old.unlink(missing_ok=True)
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(output))
    tmp.replace(cached)
    return output


# ---------------------------------------------------------------------------------------------- bytecode


def instruction_offsets(code: bytes) -> list[int]:
    """The pc of each instruction, in order (PUSH1..PUSH32 carry 1..32 immediate bytes)."""
    offsets, pc = [], 0
    while pc < len(code):
        offsets.append(pc)
        op = code[pc]
        pc += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return offsets


def decode_source_map(source_map: str) -> list[tuple[int, int, int]]:
    """solc's compressed source map as one ``(start, length, file index)`` per instruction."""
    entries, start, length, file = [], -1, -1, -1
    for item in source_map.split(";"):
        fields = item.split(":")
        if fields[0]:
            start = int(fields[0])
        if len(fields) > 1 and fields[1]:
            length = int(fields[1])
        if len(fields) > 2 and fields[2]:
            file = int(fields[2])
        entries.append((start, length, file))
    return entries


def metadata_length(code: bytes) -> int:
    """Bytes taken by the CBOR metadata trailer (its length is in the last two bytes), 0 if none."""
    if len(code) < 2:
        return 0
    size = int.from_bytes(code[-2:], "big") + 2
    return size if size <= len(code) else 0


METADATA_START = bytes.fromhex("a264697066735822")  # CBOR {"ipfs": bytes(34), ...
METADATA_SIZE = 53  # ... "solc": bytes(3)} and its two length bytes


def metadata_holes(code: bytes) -> list[tuple[int, int]]:
    """Where metadata trailers sit: at the end, and inside constructor code (the runtime code's own)."""
    holes, at = [], code.find(METADATA_START)
    while at != -1:
        holes.append((at, METADATA_SIZE))
        at = code.find(METADATA_START, at + 1)
    trailer = metadata_length(code)
    if trailer:
        holes.append((len(code) - trailer, trailer))
    return holes


def masked(code: bytes, holes: list[tuple[int, int]]) -> bytes:
    out = bytearray(code)
    for start, length in holes:
        out[start:start + length] = bytes(length)
    return bytes(out)


@dataclass
class CodeInfo:
    """One compiled piece of code (a contract's runtime or constructor code) and its pc -> source range map."""
    name: str
    ranges: dict[int, tuple[int, int, str]]  # pc -> (start, length, source path), only for measured sources
    jumpi_constructs: dict[int, "Branch"] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- AST items


@dataclass(frozen=True)
class Span:
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length

    def contains(self, start: int, length: int) -> bool:
        return self.start <= start and start + length <= self.end

    def disjoint(self, start: int, length: int) -> bool:
        return start >= self.end or start + length <= self.start


def span(node: dict) -> Span:
    start, length, _ = node["src"].split(":")
    return Span(int(start), int(length))


@dataclass
class Branch:
    """An if/else, a ternary, a require or a try/catch; ``arms`` are the spans whose execution marks an arm hit."""
    id: int
    kind: str  # "if", "ternary", "require", "try"
    span: Span
    condition: Span | None
    arms: list[Span | None]  # None: the implicit else of an if without one
    function: Span


@dataclass
class Statement:
    id: int
    span: Span
    probes: list[Span]  # an executed range inside any of these marks the statement executed


@dataclass
class Function:
    id: int
    name: str
    span: Span
    decl: Span


@dataclass
class SourceItems:
    path: str
    text: bytes
    statements: list[Statement] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    branches: list[Branch] = field(default_factory=list)

    def __post_init__(self):
        self._line_starts = [0] + [i + 1 for i, b in enumerate(self.text) if b == 0x0A]

    def position(self, offset: int) -> dict:
        line = bisect.bisect_right(self._line_starts, offset) - 1
        column = len(self.text[self._line_starts[line]:offset].decode("utf-8", "replace"))
        return {"line": line + 1, "column": column}

    def location(self, s: Span) -> dict:
        return {"start": self.position(s.start), "end": self.position(max(s.start, s.end - 1))}


STATEMENT_TYPES = {"ExpressionStatement", "VariableDeclarationStatement", "EmitStatement", "Return", "RevertStatement",
                   "IfStatement", "ForStatement", "WhileStatement", "DoWhileStatement", "Break", "Continue",
                   "InlineAssembly", "TryStatement", "UncheckedBlock"}


def _children(node):
    for value in node.values():
        if isinstance(value, dict) and "nodeType" in value:
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, dict) and "nodeType" in v)


def _statement_probes(node: dict) -> list[Span]:
    kind = node["nodeType"]
    if kind == "IfStatement":
        return [span(node["condition"])]
    if kind in ("WhileStatement", "DoWhileStatement"):
        return [span(node["condition"])]
    if kind == "ForStatement":
        return [span(node[k]) for k in ("initializationExpression", "condition", "loopExpression") if node.get(k)]
    if kind == "TryStatement":
        return [span(node["externalCall"])]
    return [span(node)]


def source_items(path: str, ast: dict, text: bytes) -> SourceItems:
    items = SourceItems(path, text)

    def visit(node: dict, function: Span | None):
        kind = node["nodeType"]
        if kind in ("FunctionDefinition", "ModifierDefinition"):
            if node.get("body") is None or node.get("implemented") is False:
                return
            function = span(node)
            name = node.get("name") or node.get("kind", "function")
            decl = span(node)
            items.functions.append(Function(node["id"], name, function, Span(decl.start, 1)))
        if kind in STATEMENT_TYPES and kind != "UncheckedBlock":
            items.statements.append(Statement(node["id"], span(node), _statement_probes(node)))
        if function is not None:
            if kind == "IfStatement":
                items.branches.append(Branch(node["id"], "if", span(node), span(node["condition"]),
                                             [span(node["trueBody"]),
                                              span(node["falseBody"]) if node.get("falseBody") else None], function))
            elif kind == "Conditional":
                items.branches.append(Branch(node["id"], "ternary", span(node), span(node["condition"]),
                                             [span(node["trueExpression"]), span(node["falseExpression"])], function))
            elif (kind == "FunctionCall" and node["expression"].get("nodeType") == "Identifier"
                  and node["expression"].get("name") == "require"):
                items.branches.append(Branch(node["id"], "require", span(node), span(node["arguments"][0]),
                                             [None, None], function))
            elif kind == "TryStatement":
                items.branches.append(Branch(node["id"], "try", span(node), span(node["externalCall"]),
                                             [span(c["block"]) for c in node["clauses"]], function))
        if kind == "InlineAssembly":
            return
        for child in _children(node):
            visit(child, function)

    visit(ast, None)
    return items


# ---------------------------------------------------------------------------------------------- catalog


class Catalog:
    """Every compiled contract of the project, ready to map executed code back to source."""

    def __init__(self, output: dict, root: Path = PROJECT_ROOT, measured: str = MEASURED_FOLDER):
        self.root = root
        self.index_to_path = {info["id"]: path for path, info in output["sources"].items()}
        self.sources: dict[str, SourceItems] = {
            path: source_items(path, info["ast"], (root / path).read_bytes())
            for path, info in output["sources"].items() if path.startswith(measured)
        }
        self._runtime: dict[int, list[tuple[bytes, list, CodeInfo]]] = defaultdict(list)
        self._creation: list[tuple[bytes, list, CodeInfo]] = []
        self._resolved: dict[bytes, CodeInfo | None] = {}
        for path, contracts in output["contracts"].items():
            for name, contract in contracts.items():
                evm = contract.get("evm", {})
                runtime = bytes.fromhex(evm.get("deployedBytecode", {}).get("object", ""))
                if not runtime:
                    continue
                holes = [(r["start"], r["length"]) for refs in
                         evm["deployedBytecode"].get("immutableReferences", {}).values() for r in refs]
                holes += metadata_holes(runtime)
                info = self._code_info(f"{path}:{name}", runtime, evm["deployedBytecode"]["sourceMap"])
                self._runtime[len(runtime)].append((masked(runtime, holes), holes, info))
                creation = bytes.fromhex(evm["bytecode"]["object"])
                creation_info = self._code_info(f"{path}:{name} (constructor)", creation, evm["bytecode"]["sourceMap"])
                self._creation.append((masked(creation, metadata_holes(creation)), metadata_holes(creation),
                                       creation_info))
        compiled = defaultdict(set)
        for candidates in self._runtime.values():
            for _, _, info in candidates:
                for start, length, path in info.ranges.values():
                    compiled[path].add((start, length))
        for _, _, info in self._creation:
            for start, length, path in info.ranges.values():
                compiled[path].add((start, length))
        self.compiled_ranges = {path: sorted(ranges) for path, ranges in compiled.items()}
        # Longest first, so a contract whose constructor code is a prefix of another's cannot shadow it.
        self._creation.sort(key=lambda item: -len(item[0]))

    def _code_info(self, name: str, code: bytes, source_map: str) -> CodeInfo:
        ranges, jumpis = {}, {}
        for pc, (start, length, file) in zip(instruction_offsets(code), decode_source_map(source_map)):
            path = self.index_to_path.get(file)
            # A JUMPDEST is a label, not work: the optimizer gives the join point after an `if` the range of
            # the body's last statement, so counting it would mark a skipped body as executed.
            if path in self.sources and start >= 0 and code[pc] != 0x5B:
                ranges[pc] = (start, length, path)
                if code[pc] == 0x57:  # JUMPI
                    branch = self._branch_at(path, start, length)
                    if branch is not None:
                        jumpis[pc] = branch
        return CodeInfo(name, ranges, jumpis)

    def _branch_at(self, path: str, start: int, length: int) -> Branch | None:
        """The innermost branch whose condition holds the range (or whose whole span is the range)."""
        best = None
        for branch in self.sources[path].branches:
            if (branch.condition is not None and branch.condition.contains(start, length)) or (
                    branch.span.start == start and branch.span.length == length):
                if best is None or branch.span.length < best.span.length:
                    best = branch
        return best

    def runtime(self, code: bytes) -> CodeInfo | None:
        if code not in self._resolved:
            found = None
            for template, holes, info in self._runtime.get(len(code), []):
                if masked(code, holes) == template:
                    found = info
                    break
            self._resolved[code] = found
        return self._resolved[code]

    def creation(self, initcode: bytes) -> CodeInfo | None:
        key = b"init:" + initcode
        if key not in self._resolved:
            self._resolved[key] = next((info for template, holes, info in self._creation
                                        if len(initcode) >= len(template)
                                        and masked(initcode[:len(template)], holes) == template), None)
        return self._resolved[key]


# ---------------------------------------------------------------------------------------------- traces


def _decide(branch: Branch, op: str, start: int, length: int) -> int | None:
    """Which arm a step decides for ``branch`` (0 = then/passes, 1 = else/reverts), or None to look further."""
    if branch.kind == "require":
        if op == "REVERT":
            return 1
        if branch.span.contains(start, length) or Span(start, length).contains(branch.span.start, branch.span.length):
            return None
        if branch.function.contains(start, length):
            return 0
        return None
    then, otherwise = branch.arms[0], branch.arms[1]
    if then.contains(start, length):
        return 0
    if otherwise is not None and otherwise.contains(start, length):
        return 1
    if branch.condition.contains(start, length):
        return None
    if otherwise is None and branch.span.disjoint(start, length) and branch.function.contains(start, length):
        return 1
    return None


def _frame_end_decision(branch: Branch, op: str) -> int | None:
    """A frame ending before a decisive step: a RETURN/STOP passes a require and skips an else-less if."""
    if op in ("RETURN", "STOP"):
        if branch.kind == "require" or (branch.kind == "if" and branch.arms[1] is None):
            return 1 if branch.kind == "if" else 0
    if op == "REVERT" and branch.kind == "require":
        return 1
    return None


@dataclass
class Hits:
    """Counts gathered from traces: per executed source range, and per branch arm."""
    ranges: Counter = field(default_factory=Counter)  # (path, start, length) -> traces that executed it
    arms: Counter = field(default_factory=Counter)  # (path, branch id, arm) -> traces that took it
    traces: int = 0
    untraced: int = 0

    def merge(self, other: "Hits") -> None:
        self.ranges.update(other.ranges)
        self.arms.update(other.arms)
        self.traces += other.traces
        self.untraced += other.untraced

    def to_json(self) -> dict:
        return {"ranges": [[*k, v] for k, v in self.ranges.items()],
                "arms": [[*k, v] for k, v in self.arms.items()],
                "traces": self.traces, "untraced": self.untraced}

    @classmethod
    def from_json(cls, data: dict) -> "Hits":
        return cls(Counter({(p, s, l): c for p, s, l, c in data["ranges"]}),
                   Counter({(p, b, a): c for p, b, a, c in data["arms"]}), data["traces"], data["untraced"])


def record_trace(catalog: Catalog, hits: Hits, steps: list[dict], frames: list[CodeInfo | None]) -> None:
    """Add one trace: ``steps`` are struct logs, ``frames`` the code of each call frame in the order entered."""
    ranges, arms = set(), set()
    stack: list[CodeInfo | None] = []
    next_frame = 0
    previous_depth = 0
    count = len(steps)
    for i, step in enumerate(steps):
        depth = step["depth"]
        if depth > previous_depth:
            stack.append(frames[next_frame] if next_frame < len(frames) else None)
            next_frame += 1
        elif depth < previous_depth:
            del stack[depth:]
        previous_depth = depth
        info = stack[-1] if stack else None
        if info is None:
            continue
        pc = step["pc"]
        where = info.ranges.get(pc)
        if where is None:
            continue
        ranges.add((where[2], where[0], where[1]))
        branch = info.jumpi_constructs.get(pc)
        if branch is None or step["op"] != "JUMPI":
            continue
        decision = None
        for j in range(i + 1, min(count, i + 1 + LOOKAHEAD_STEPS)):
            later = steps[j]
            if later["depth"] > depth:
                continue
            if later["depth"] < depth:
                decision = _frame_end_decision(branch, steps[j - 1]["op"])
                break
            later_where = info.ranges.get(later["pc"])
            op = later["op"]
            if later_where is not None:
                decision = _decide(branch, op, later_where[0], later_where[1])
            elif op == "REVERT" and branch.kind == "require":
                decision = 1
            if decision is None and op in ("RETURN", "STOP", "REVERT"):
                decision = _frame_end_decision(branch, op)
                break
            if decision is not None:
                break
        if decision is not None:
            arms.add((where[2], branch.id, decision))
    hits.ranges.update(ranges)
    hits.arms.update(arms)
    hits.traces += 1


# ---------------------------------------------------------------------------------------------- report


def _covered(items: SourceItems, executed: list[tuple[int, int, int]],
             compiled: list[tuple[int, int]]) -> tuple[dict, dict, dict]:
    """Statement, function and range-based arm counts for one file, from its executed ranges.

    ``compiled`` are all the source ranges the compiled code of the file carries: a statement none of them
    falls in (``return super.f();`` compiled to a bare jump) cannot be seen running, and takes its
    function's count instead.
    """
    starts = [s for s, _, _ in executed]
    compiled_starts = [s for s, _ in compiled]

    def count_inside(outer: Span) -> int:
        best = 0
        for k in range(bisect.bisect_left(starts, outer.start), bisect.bisect_right(starts, outer.end)):
            start, length, count = executed[k]
            if outer.contains(start, length):
                best = max(best, count)
        return best

    def has_code(outer: Span) -> bool:
        return any(outer.contains(*compiled[k]) for k in range(bisect.bisect_left(compiled_starts, outer.start),
                                                                bisect.bisect_right(compiled_starts, outer.end)))

    def enclosing(s: Statement) -> Function | None:
        around = [f for f in items.functions if f.span.contains(s.span.start, s.span.length)]
        return min(around, key=lambda f: f.span.length) if around else None

    observable = {s.id: any(has_code(p) for p in s.probes) for s in items.statements}
    statements = {s.id: max(count_inside(p) for p in s.probes) for s in items.statements if observable[s.id]}
    # A function is called when one of its statements ran (the optimizer shares code tails between
    # functions and labels them with one function's range); one without statements, when any of its code ran.
    functions = {}
    for f in items.functions:
        inside = [statements[s.id] for s in items.statements
                  if observable[s.id] and f.span.contains(s.span.start, s.span.length)]
        functions[f.id] = max(inside) if inside else count_inside(f.span)
    for s in items.statements:
        if not observable[s.id]:
            function = enclosing(s)
            statements[s.id] = functions[function.id] if function else 0
    arm_counts = {}
    for b in items.branches:
        for arm, arm_span in enumerate(b.arms):
            if arm_span is not None and b.kind in ("if", "ternary", "try"):
                arm_counts[(b.id, arm)] = count_inside(arm_span)
    return statements, functions, arm_counts


def istanbul_map(catalog: Catalog, hits: Hits) -> dict:
    """The istanbul coverage map (statementMap/fnMap/branchMap and counts) of every measured file."""
    per_file = defaultdict(list)
    for (path, start, length), count in hits.ranges.items():
        per_file[path].append((start, length, count))
    coverage = {}
    for path, items in sorted(catalog.sources.items()):
        if not (items.statements or items.functions):
            continue
        executed = sorted(per_file.get(path, []))
        statements, functions, arm_counts = _covered(items, executed, catalog.compiled_ranges.get(path, []))
        file_key = str(catalog.root / path)
        entry = {"path": file_key, "statementMap": {}, "s": {}, "fnMap": {}, "f": {}, "branchMap": {}, "b": {}}
        for n, s in enumerate(items.statements):
            entry["statementMap"][str(n)] = items.location(s.span)
            entry["s"][str(n)] = statements[s.id]
        for n, f in enumerate(items.functions):
            loc = items.location(f.span)
            entry["fnMap"][str(n)] = {"name": f.name, "decl": items.location(f.decl), "loc": loc,
                                      "line": loc["start"]["line"]}
            entry["f"][str(n)] = functions[f.id]
        for n, b in enumerate(items.branches):
            locations = [items.location(a if a is not None else b.span) for a in b.arms]
            counts = [max(arm_counts.get((b.id, arm), 0), hits.arms.get((path, b.id, arm), 0))
                      for arm in range(len(b.arms))]
            loc = items.location(b.span)
            entry["branchMap"][str(n)] = {"type": {"ternary": "cond-expr"}.get(b.kind, "if"), "loc": loc,
                                          "locations": locations, "line": loc["start"]["line"]}
            entry["b"][str(n)] = counts
        coverage[file_key] = entry
    return coverage


@dataclass
class FileSummary:
    path: str
    lines: tuple[int, int]
    branches: tuple[int, int]
    functions: tuple[int, int]
    uncovered_lines: list[int]

    @staticmethod
    def percent(part: tuple[int, int]) -> float:
        return 100.0 * part[0] / part[1] if part[1] else 100.0


def summarize(entry: dict) -> FileSummary:
    lines: dict[int, int] = {}
    for n, loc in entry["statementMap"].items():
        line = loc["start"]["line"]
        lines[line] = max(lines.get(line, 0), entry["s"][n])
    arms = [c for counts in entry["b"].values() for c in counts]
    return FileSummary(
        path=entry["path"],
        lines=(sum(1 for c in lines.values() if c), len(lines)),
        branches=(sum(1 for c in arms if c), len(arms)),
        functions=(sum(1 for c in entry["f"].values() if c), len(entry["f"])),
        uncovered_lines=sorted(line for line, c in lines.items() if not c),
    )


def line_ranges(lines: list[int]) -> str:
    groups, start, previous = [], None, None
    for line in lines:
        if start is None:
            start = previous = line
        elif line == previous + 1:
            previous = line
        else:
            groups.append((start, previous))
            start = previous = line
    if start is not None:
        groups.append((start, previous))
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in groups)


def load_hits(data_dir: Path) -> Hits:
    hits = Hits()
    for file in sorted(data_dir.glob("hits-*.json")):
        hits.merge(Hits.from_json(json.loads(file.read_text())))
    return hits


def write_reports(coverage: dict, report_dir: Path, root: Path = PROJECT_ROOT) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "coverage-final.json").write_text(json.dumps(coverage))
    completed = subprocess.run(["node", str(REPORT_SCRIPT), str(report_dir / "coverage-final.json"), str(report_dir)],
                               cwd=root, capture_output=True, text=True,
                               env=os.environ | {"NODE_PATH": str(root / "node_modules")})
    if completed.returncode != 0:
        raise ToolchainError(f"istanbul report failed: {completed.stderr.strip()}")


def report(data_dir: Path, report_dir: Path, root: Path = PROJECT_ROOT, check: bool = True) -> int:
    """Merge the hits in ``data_dir``, write lcov + HTML to ``report_dir``, print the table, check thresholds."""
    catalog = Catalog(compile_for_coverage(root), root)
    hits = load_hits(data_dir)
    coverage = istanbul_map(catalog, hits)
    write_reports(coverage, report_dir, root)
    rows = [summarize(entry) for entry in coverage.values()]
    failing = []
    print(f"coverage of {hits.traces} traced transactions and calls ({hits.untraced} could not be traced)")
    header = f" {'contract':<34} {'lines':>16} {'branches':>16} {'functions':>16}  uncovered lines"
    print(header)
    print("-" * len(header))
    for row in rows:
        relative = str(Path(row.path).relative_to(root))
        excluded = relative.startswith(TEST_ONLY_FOLDER)
        ok = excluded or (FileSummary.percent(row.lines) >= LINE_THRESHOLD
                          and FileSummary.percent(row.branches) >= BRANCH_THRESHOLD)
        if not ok:
            failing.append(relative)
        mark = " " if ok else "!"
        name = Path(relative).stem + (" (excluded)" if excluded else "")

        def cell(part):
            return f"{FileSummary.percent(part):6.1f}% {part[0]:>4}/{part[1]:<4}"
        print(f"{mark}{name:<34} {cell(row.lines):>16} {cell(row.branches):>16} {cell(row.functions):>16}  "
              f"{line_ranges(row.uncovered_lines)}")
    print(f"\nreports: {report_dir / 'lcov.info'}, {report_dir / 'index.html'}")
    print(f"excluded (no threshold): {TEST_ONLY_FOLDER}, {EXCLUDED_REASON}")
    if failing and check:
        print(f"FAIL: below {LINE_THRESHOLD:g}% lines or {BRANCH_THRESHOLD:g}% branches: {', '.join(failing)}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m opgkit.toolchain.coverage (compile | report DATA_DIR [REPORT_DIR] [--no-check])"
    try:
        if argv == ["compile"]:
            compile_for_coverage()
            return 0
        if argv and argv[0] == "report" and len(argv) >= 2:
            positional = [a for a in argv[1:] if not a.startswith("--")]
            report_dir = Path(positional[1]) if len(positional) > 1 else DEFAULT_REPORT_DIR
            return report(Path(positional[0]), report_dir, check="--no-check" not in argv)
    except ToolchainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
