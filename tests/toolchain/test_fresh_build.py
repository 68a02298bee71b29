"""`make compile` (opgkit/toolchain/build.py): an edit to an inherited contract recompiles its heirs.

Each test works on a small ape project of its own in a temporary folder (an abstract ``Base`` and a ``Child``
that inherits it, the real project's compiler settings) and runs the real compiler in a subprocess there.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from opgkit import PROJECT_ROOT
from opgkit.toolchain.build import MANIFEST_FILE, SOLC_VERSION, STAMP_FILE, fingerprint

pytestmark = pytest.mark.toolchain

BASE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

abstract contract Base {
    function answer() public pure returns (uint256) {
        return 41;
    }
}
"""

CHILD = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";

contract Child is Base {}
"""


def project_config() -> dict:
    """The real project's compiler settings, without its dependencies."""
    solidity = yaml.safe_load((PROJECT_ROOT / "ape-config.yaml").read_text())["solidity"]
    settings = {key: solidity[key] for key in ("version", "evm_version", "optimize") if key in solidity}
    return {"name": "fresh-build", "solidity": settings}


def write_project(root):
    (root / "contracts").mkdir(parents=True)
    (root / "ape-config.yaml").write_text(yaml.safe_dump(project_config()))
    (root / "contracts" / "Base.sol").write_text(BASE)
    (root / "contracts" / "Child.sol").write_text(CHILD)
    return root


def run(root, *command):
    # PYTHONPATH: the subprocess imports this checkout's opgkit, the one under test.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def build(root, *args):
    return run(root, sys.executable, "-m", "opgkit.toolchain.build", *args)


def ape_compile(root):
    completed = run(root, shutil.which("ape", path=os.path.dirname(sys.executable)) or "ape", "compile")
    assert completed.returncode == 0, completed.stderr
    return completed


def child_runtime(root) -> str:
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    return manifest["contractTypes"]["Child"]["runtimeBytecode"]["bytecode"]


def edit_base(root, answer):
    path = root / "contracts" / "Base.sol"
    path.write_text(path.read_text().replace("return 41;", f"return {answer};"))


@pytest.fixture(scope="module")
def built_template(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("template") / "project")
    completed = build(root)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return root


@pytest.fixture
def built_project(built_template, tmp_path):
    """A copy of a project built by the entry point: compiled in full and stamped."""
    return shutil.copytree(built_template, tmp_path / "project")


@pytest.fixture
def unbuilt_project(tmp_path):
    return write_project(tmp_path / "project")


def test_build__base_contract_edited__inheriting_contract_is_recompiled(built_project):
    before = child_runtime(built_project)
    edit_base(built_project, 42)

    completed = build(built_project)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("sources changed since the last build (contracts/Base.sol): full recompile\n")
    assert child_runtime(built_project) != before


def test_plain_ape_compile__base_contract_edited__keeps_the_old_inheriting_contract(built_project):
    """The trap the entry point exists for: ape-solidity recompiles only the contracts of the edited file."""
    before = child_runtime(built_project)
    edit_base(built_project, 42)

    ape_compile(built_project)

    assert child_runtime(built_project) == before
    assert build(built_project, "--check").returncode == 1


def test_build__nothing_changed__is_up_to_date_without_compiling(built_project):
    manifest = built_project / MANIFEST_FILE
    before = manifest.stat().st_mtime_ns
    for path in (built_project / "contracts").iterdir():
        os.utime(path)  # touched, not changed: only content counts

    completed = build(built_project)

    assert (completed.returncode, completed.stdout) == (0, "contracts up to date\n")
    assert manifest.stat().st_mtime_ns == before


def test_check__fresh_build__exits_0(built_project):
    completed = build(built_project, "--check")
    assert (completed.returncode, completed.stdout) == (0, "contracts up to date\n")


def test_check__source_edited__exits_1_naming_it_without_compiling(built_project):
    manifest_before = (built_project / MANIFEST_FILE).read_bytes()
    edit_base(built_project, 42)

    completed = build(built_project, "--check")

    assert completed.returncode == 1
    assert completed.stdout == "stale build: sources changed since the last build (contracts/Base.sol)\n"
    assert (built_project / MANIFEST_FILE).read_bytes() == manifest_before


def test_check__never_built__exits_1_without_compiling(unbuilt_project):
    completed = build(unbuilt_project, "--check")
    assert (completed.returncode, completed.stdout) == (1, "stale build: no build yet\n")
    assert not (unbuilt_project / ".build").exists()


def test_check__build_without_stamp__exits_1(built_project):
    (built_project / STAMP_FILE).unlink()
    completed = build(built_project, "--check")
    assert completed.returncode == 1 and "no record of the sources" in completed.stdout


def test_check__partly_recompiled_since_the_stamp__exits_1(built_project):
    """Base edited, compiled alone, then edited back: the sources match the stamp, the build does not."""
    edit_base(built_project, 42)
    ape_compile(built_project)
    (built_project / "contracts" / "Base.sol").write_text(BASE)

    completed = build(built_project, "--check")

    assert completed.returncode == 1
    assert completed.stdout == "stale build: the build was recompiled in part since its last full compile\n"


def test_build__compile_fails__exits_2_with_one_error_line_and_stays_stale(built_project):
    stamp_before = (built_project / STAMP_FILE).read_text()
    (built_project / "contracts" / "Base.sol").write_text(BASE + "contract {\n")

    completed = build(built_project)

    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1].startswith("error: `ape compile --force` failed")
    assert "Traceback" not in completed.stderr
    assert (built_project / STAMP_FILE).read_text() == stamp_before
    assert build(built_project, "--check").returncode == 1


def test_build__not_an_ape_project__exits_2(tmp_path):
    completed = build(tmp_path)
    assert completed.returncode == 2
    assert completed.stderr == f"error: {tmp_path} has no ape-config.yaml: not an ape project\n"


def test_fingerprint__project__covers_contracts_interfaces_config_and_solc_not_dependencies():
    entries = fingerprint(PROJECT_ROOT)
    assert {"ape-config.yaml", "contracts/SettlementPayments.sol", "interfaces/IOPGToken.sol"} <= entries.keys()
    assert entries[SOLC_VERSION] == project_config()["solidity"]["version"]
    assert not [name for name in entries if ".cache" in name]


def test_fingerprint__dependency_cache_and_other_files__are_left_out(unbuilt_project):
    cache = unbuilt_project / "contracts" / ".cache" / "dependency"
    cache.mkdir(parents=True)
    (cache / "Dependency.sol").write_text(BASE)
    (unbuilt_project / "contracts" / "notes.md").write_text("not a source")
    (unbuilt_project / "interfaces").mkdir()
    (unbuilt_project / "interfaces" / "IChild.sol").write_text("interface IChild {}\n")

    assert sorted(fingerprint(unbuilt_project)) == [
        "ape-config.yaml", "contracts/Base.sol", "contracts/Child.sol", "interfaces/IChild.sol", SOLC_VERSION,
    ]
