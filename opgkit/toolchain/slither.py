"""`make lint`: slither over the project's contracts, offline, through the solc stand-in.

Slither compiles a standard-json input that this module writes (project sources inline, OpenZeppelin
remapped to node_modules). High and medium findings fail the run unless ``slither-triage.yaml`` lists them,
each with a one-line reason. Low and informational findings are printed as a count only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from opgkit import PROJECT_ROOT
from opgkit.toolchain.solc import ToolchainError, install, pinned_solc_version

SOURCE_FOLDERS = ("contracts", "interfaces")
TRIAGE_FILE_NAME = "slither-triage.yaml"
BUILD_DIR = Path("build") / "slither"
BLOCKING_IMPACTS = ("High", "Medium")


@dataclass(frozen=True)
class Finding:
    check: str
    impact: str
    location: str
    description: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.check, self.location)


def project_sources(root: Path = PROJECT_ROOT) -> list[Path]:
    """Every Solidity file of the project (not the ape dependency cache), relative to ``root``."""
    files = []
    for folder in SOURCE_FOLDERS:
        files += [p.relative_to(root) for p in sorted((root / folder).rglob("*.sol")) if ".cache" not in p.parts]
    return files


def standard_json_input(root: Path = PROJECT_ROOT) -> dict:
    """The compiler input slither builds from: the same settings ape-config.yaml gives ape-solidity."""
    config = yaml.safe_load((root / "ape-config.yaml").read_text())["solidity"]
    return {
        "language": "Solidity",
        "sources": {str(path): {"content": (root / path).read_text()} for path in project_sources(root)},
        "settings": {
            "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
            "optimizer": {"enabled": bool(config.get("optimize", True)), "runs": 200},
            "evmVersion": config["evm_version"],
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode"], "": ["ast"]}},
        },
    }


def _location(element: dict) -> str:
    fields = element.get("type_specific_fields", {})
    parent = fields.get("parent", {}).get("name")
    name = fields.get("signature") or element.get("name", "?")
    return f"{parent}.{name}" if parent else name


def parse_findings(report: dict) -> list[Finding]:
    findings = []
    for detector in report.get("results", {}).get("detectors", []):
        elements = detector.get("elements") or [{}]
        findings.append(
            Finding(
                check=detector["check"],
                impact=detector["impact"],
                location=_location(elements[0]),
                description=detector["description"].strip(),
            )
        )
    return findings


def load_triage(path: Path) -> dict[tuple[str, str], str]:
    """``(check, location) -> reason`` from the triage file; every entry needs a non-empty reason."""
    entries = (yaml.safe_load(path.read_text()) or {}).get("triaged", []) if path.exists() else []
    triage = {}
    for entry in entries:
        reason = str(entry.get("reason", "")).strip()
        if not reason or "\n" in reason:
            raise ToolchainError(f"{path.name}: {entry.get('check')} at {entry.get('location')} needs a one-line reason")
        triage[(entry["check"], entry["location"])] = reason
    return triage


def run_slither(solc: Path, root: Path = PROJECT_ROOT) -> dict:
    """Run slither over ``root``'s sources and return its JSON report."""
    build_dir = root / BUILD_DIR
    build_dir.mkdir(parents=True, exist_ok=True)
    input_file, report_file = build_dir / "input.json", build_dir / "report.json"
    input_file.write_text(json.dumps(standard_json_input(root), indent=1))
    report_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "slither", str(input_file.relative_to(root)),
        "--compile-force-framework", "solc-json",
        "--solc", str(solc),
        "--filter-paths", "node_modules",
        "--exclude-dependencies",
        "--json", str(report_file.relative_to(root)),
    ]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if not report_file.exists():
        raise ToolchainError(f"slither did not run:\n{completed.stderr.strip()}")
    report = json.loads(report_file.read_text())
    if not report.get("success", False):
        raise ToolchainError(f"slither failed: {report.get('error')}")
    return report


@dataclass(frozen=True)
class Verdict:
    blocking: list[Finding]
    untriaged: list[Finding]
    stale: list[tuple[str, str]]
    others: int


def judge(findings: list[Finding], triage: dict[tuple[str, str], str]) -> Verdict:
    """Split findings into what blocks (untriaged high/medium) and what the triage file lists in vain."""
    blocking = [f for f in findings if f.impact in BLOCKING_IMPACTS]
    return Verdict(
        blocking=blocking,
        untriaged=[f for f in blocking if f.key not in triage],
        stale=sorted(set(triage) - {f.key for f in blocking}),
        others=len(findings) - len(blocking),
    )


def lint(root: Path = PROJECT_ROOT) -> int:
    """Run slither over ``root`` and print the verdict; the exit code is 1 if anything is untriaged."""
    triage_file = root / TRIAGE_FILE_NAME
    try:
        triage = load_triage(triage_file)
        report = run_slither(install(pinned_solc_version(root / "ape-config.yaml")).path, root)
    except ToolchainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    verdict = judge(parse_findings(report), triage)
    for finding in verdict.blocking:
        status = "triaged: " + triage[finding.key] if finding.key in triage else "UNTRIAGED"
        print(f"[{finding.impact}] {finding.check} at {finding.location} - {status}")
        if finding.key not in triage:
            print("    " + finding.description.replace("\n", "\n    "))
    for check, location in verdict.stale:
        print(f"note: {TRIAGE_FILE_NAME} lists {check} at {location}, which slither no longer reports; remove it")
    print(
        f"slither: {len(verdict.blocking)} high/medium ({len(verdict.untriaged)} untriaged), "
        f"{verdict.others} low/informational"
    )
    if verdict.untriaged:
        print(f"Fix each untriaged finding, or add it to {TRIAGE_FILE_NAME} with check, location and a one-line reason.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(lint())
