"""Keep the compiled contracts in ``.build/`` in step with every source they were compiled from.

ape-solidity's incremental ``ape compile`` recompiles only the contracts defined in the files that changed.
After an edit to an abstract base contract, a library or an interface, the contracts that inherit or use it
keep their old bytecode in ``.build/`` until ``ape compile --force``, and tests pass against code that no
longer exists. This module makes every build that follows a change a full one:

* the *fingerprint* of a build is the SHA-256 of ``ape-config.yaml`` and of each Solidity file in the
  contracts and interfaces folders (by path relative to the project, the dependency cache left out), and the
  pinned solc version;
* a successful full compile writes it to ``.build/opg-sources.sha256``, with the digest of the build manifest
  the compile wrote;
* the build is *fresh* while both still match; there is then nothing to compile, not even incrementally.

Usage, from the project's folder (as for ``ape`` itself)::

    python -m opgkit.toolchain.build           # a full compile if the build is stale, else nothing
    python -m opgkit.toolchain.build --check   # exit status 1 if the build is stale; compiles nothing

Exit status 2 when the compile fails: the stamp is then left as it was, so the build stays stale.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

CONFIG_FILE = "ape-config.yaml"
MANIFEST_FILE = ".build/__local__.json"
STAMP_FILE = ".build/opg-sources.sha256"
DEPENDENCY_CACHE = ".cache"
SOLC_VERSION = "solc version"
"""The fingerprint entry holding the pinned compiler version (every other entry is a file path)."""
SHOWN_CHANGES = 3


class BuildError(Exception):
    """The build could not be brought up to date; the message says why."""


@dataclass(frozen=True)
class Stamp:
    """What the last successful full compile was made from, and the digest of the manifest it wrote."""

    inputs: dict[str, str]
    manifest: str

    def render(self) -> str:
        """One ``<value>  <name>`` line per entry, sorted, the manifest's digest last."""
        lines = [f"{value}  {name}" for name, value in sorted(self.inputs.items())]
        return "\n".join([*lines, f"{self.manifest}  {MANIFEST_FILE}"]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Stamp:
        """The stamp ``render`` wrote (an unreadable line counts as an entry that matches nothing)."""
        entries = {}
        for line in text.splitlines():
            value, _, name = line.partition("  ")
            entries[name] = value
        manifest = entries.pop(MANIFEST_FILE, "")
        return cls(entries, manifest)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(root: Path) -> dict:
    config_file = root / CONFIG_FILE
    if not config_file.is_file():
        raise BuildError(f"{root} has no {CONFIG_FILE}: not an ape project")
    return yaml.safe_load(config_file.read_text()) or {}


def source_files(project_root: Path | str) -> list[Path]:
    """Every Solidity file ape compiles for the project, relative to ``project_root`` and sorted.

    They are the files in the contracts and interfaces folders that ``ape-config.yaml`` names (ape's defaults
    otherwise), without the dependency cache: a dependency's version is part of the configuration.
    """
    root = Path(project_root)
    config = _config(root)
    folders = {config.get("contracts_folder", "contracts"), config.get("interfaces_folder", "interfaces")}
    files = set()
    for folder in folders:
        for path in (root / folder).rglob("*.sol"):
            relative = path.relative_to(root)
            if DEPENDENCY_CACHE not in relative.parts:
                files.add(relative)
    return sorted(files)


def fingerprint(project_root: Path | str) -> dict[str, str]:
    """Everything a build depends on, entry by entry.

    ``{relative path: SHA-256 of the file's content}`` for ``ape-config.yaml`` and every file of
    ``source_files``, and the solc version the configuration pins under ``"solc version"``. Content only:
    a file touched without being changed leaves the fingerprint as it was.
    """
    root = Path(project_root)
    config = _config(root)
    entries = {CONFIG_FILE: _sha256(root / CONFIG_FILE)}
    entries |= {path.as_posix(): _sha256(root / path) for path in source_files(root)}
    entries[SOLC_VERSION] = str((config.get("solidity") or {}).get("version", "unpinned"))
    return entries


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_CHANGES])
    hidden = len(names) - SHOWN_CHANGES
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def staleness(project_root: Path | str, sources_only: bool = False) -> str | None:
    """Why ``.build/`` may differ from a full compile of the current sources; None when it cannot.

    The build is stale when there is none, when it carries no stamp, when an entry of the fingerprint changed
    since its last full compile, or (unless ``sources_only``) when another compile rewrote its manifest since.
    """
    root = Path(project_root)
    current = fingerprint(root)
    manifest, stamp_file = root / MANIFEST_FILE, root / STAMP_FILE
    if not manifest.is_file():
        return "no build yet"
    if not stamp_file.is_file():
        return "no record of the sources the build was compiled from"
    stamped = Stamp.parse(stamp_file.read_text())
    changed = sorted(name for name in stamped.inputs.keys() | current.keys()
                     if stamped.inputs.get(name) != current.get(name))
    if changed:
        return f"sources changed since the last build ({_listing(changed)})"
    if not sources_only and _sha256(manifest) != stamped.manifest:
        return "the build was recompiled in part since its last full compile"
    return None


def _ape_executable() -> str:
    beside_python = Path(sys.executable).with_name("ape")
    found = str(beside_python) if beside_python.is_file() else shutil.which("ape")
    if found is None:
        raise BuildError("ape is not installed in this Python environment")
    return found


def rebuild(project_root: Path | str, output=None) -> None:
    """Compile the whole project (``ape compile --force``), then stamp the build with what it was made from.

    The fingerprint is taken before the compile: a source edited while it runs leaves the build stale.
    Raises ``BuildError`` if the compile fails; the stamp is then left as it was. ``output``: where the
    compiler's listing goes (default: this process's stdout).
    """
    root = Path(project_root)
    keep_dependency_cache_out_of_the_walk(root)
    inputs = fingerprint(root)
    command = [_ape_executable(), "compile", "--force"]
    status = subprocess.run(command, cwd=root, stdout=output).returncode
    if status != 0:
        raise BuildError(f"`ape compile --force` failed (exit status {status}); the build is still stale")
    manifest = root / MANIFEST_FILE
    if not manifest.is_file():
        raise BuildError(f"`ape compile --force` wrote no {MANIFEST_FILE}")
    stamp_file = root / STAMP_FILE
    partial = stamp_file.with_suffix(".partial")
    partial.write_text(Stamp(inputs, _sha256(manifest)).render())
    partial.replace(stamp_file)


def keep_dependency_cache_out_of_the_walk(project_root: Path | str) -> Path:
    """Make ``contracts/.cache`` a link to ``build/dependency-cache``; returns the link.

    Ape lists a project's sources by walking its contracts folder and stops at 500 files; ape-solidity unpacks
    each dependency into ``contracts/.cache`` (OpenZeppelin alone is about 500 files), so sources walked after
    the cut would go missing. pathlib's recursive glob, which that walk uses, does not descend into a linked
    folder: through the link the walk sees only the project's own sources, while ape-solidity, solc and ape's
    copies of the project read and write the cache as before. A cache ape-solidity made in place is replaced
    (it is rebuilt on the next compile).
    """
    root = Path(project_root)
    link = root / _config(root).get("contracts_folder", "contracts") / DEPENDENCY_CACHE
    target = root / "build" / "dependency-cache"
    target.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if link.resolve() == target.resolve():
            return link
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)
    return link


def ensure_fresh_build(project_root: Path | str) -> bool:
    """Compile the project in full if its build is stale, saying why in one line; True if it compiled.

    Raises ``BuildError`` if the project is no ape project or the compile fails.
    """
    keep_dependency_cache_out_of_the_walk(project_root)
    reason = staleness(project_root)
    if reason is None:
        return False
    print(f"{reason}: full recompile", flush=True)
    rebuild(project_root)
    return True


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when the build is (now) fresh, 1 when ``--check`` finds it stale, 2 on an error."""
    parser = argparse.ArgumentParser(prog="python -m opgkit.toolchain.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report: exit status 1 if the build is stale")
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        if args.check:
            reason = staleness(root)
            print(f"stale build: {reason}" if reason else "contracts up to date")
            return 1 if reason else 0
        if not ensure_fresh_build(root):
            print("contracts up to date")
        return 0
    except (BuildError, OSError, yaml.YAMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
