"""The offline solc stand-in, driven exactly as py-solc-x and slither drive a native solc."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import solcx

from opgkit.toolchain import solc as toolchain

VERSION = toolchain.pinned_solc_version()
LARGE_OUTPUT_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A freshly installed stand-in in its own folder, as `make setup` installs it."""
    return toolchain.install(VERSION, target_dir=tmp_path_factory.mktemp("solcx")).path


def run(executable, *args, stdin="", cwd=None):
    return subprocess.run([str(executable), *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=300)


def standard_json(sources, outputs=("abi", "evm.bytecode.object")):
    return json.dumps({
        "language": "Solidity",
        "sources": sources,
        "settings": {"optimizer": {"enabled": True, "runs": 200}, "outputSelection": {"*": {"*": list(outputs)}}},
    })


def contract_source(index):
    functions = "\n".join(
        f"    function f{i}(uint256 x) external pure returns (uint256) {{ return x * {i + 1} + {index}; }}" for i in range(12)
    )
    return f"// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract C{index} {{\n{functions}\n}}\n"


def test_install__fresh_folder__is_what_py_solc_x_calls_installed(standin, monkeypatch):
    assert standin.name == f"solc-v{VERSION}"
    assert standin.stat().st_mode & stat.S_IXUSR
    monkeypatch.setenv("SOLCX_BINARY_PATH", str(standin.parent))
    assert [str(v) for v in solcx.get_installed_solc_versions()] == [VERSION]


def test_install__run_twice__leaves_the_same_file(standin):
    before = standin.read_bytes()
    again = toolchain.install(VERSION, target_dir=standin.parent)
    assert again.path == standin and again.backend == "solcjs"
    assert standin.read_bytes() == before


def test_install__native_solc_of_pinned_version_on_path__is_preferred(standin, tmp_path, monkeypatch):
    native_dir = tmp_path / "bin"
    native_dir.mkdir()
    (native_dir / "solc").symlink_to(standin)
    monkeypatch.setenv("PATH", f"{native_dir}{os.pathsep}{os.environ['PATH']}")
    installed = toolchain.install(VERSION, target_dir=tmp_path / "solcx")
    assert installed.backend == "native"
    assert installed.path.is_symlink() and installed.path.resolve() == standin.resolve()


def test_install__native_solc_of_other_version_on_path__is_ignored(tmp_path, monkeypatch):
    native_dir = tmp_path / "bin"
    native_dir.mkdir()
    other = native_dir / "solc"
    other.write_text("#!/bin/sh\necho 'Version: 0.8.20+commit.a1b10c90.Linux.g++'\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{native_dir}{os.pathsep}{os.environ['PATH']}")
    assert toolchain.install(VERSION, target_dir=tmp_path / "solcx").backend == "solcjs"


def test_install__npm_solc_missing__names_the_fix(tmp_path):
    with pytest.raises(toolchain.ToolchainError, match="npm ci"):
        toolchain.install(VERSION, target_dir=tmp_path / "solcx", node_modules=tmp_path / "node_modules")


def test_version__asked__parses_as_py_solc_x_expects(standin):
    assert str(solcx.wrapper.get_solc_version(standin)) == VERSION


def test_standard_json__output_over_256_kib__arrives_complete(standin):
    names = [f"C{i}" for i in range(60)]
    sources = {f"{name}.sol": {"content": contract_source(i)} for i, name in enumerate(names)}
    result = run(standin, "--standard-json", stdin=standard_json(sources, ("abi", "evm.bytecode", "evm.deployedBytecode", "metadata")))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.encode()) > LARGE_OUTPUT_BYTES
    output = json.loads(result.stdout)
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
    for name in names:
        assert len(output["contracts"][f"{name}.sol"][name]["evm"]["bytecode"]["object"]) > 100


def test_standard_json__syntax_error__comes_back_as_solc_error_json(standin):
    result = run(standin, "--standard-json", stdin=standard_json({"Broken.sol": {"content": "pragma solidity ^0.8.0; contract {"}}))
    assert result.returncode == 0
    errors = json.loads(result.stdout)["errors"]
    assert [(e["type"], e["severity"]) for e in errors] == [("ParserError", "error")]
    assert "Broken.sol" in errors[0]["formattedMessage"]


def test_standard_json__not_json__comes_back_as_json_error(standin):
    result = run(standin, "--standard-json", stdin="this is not json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["errors"][0]["type"] == "JSONError"


def test_cli__unknown_option__exits_1_with_message(standin):
    result = run(standin, "--combined-json", "abi")
    assert result.returncode == 1
    assert "unrecognised option '--combined-json'" in result.stderr
    assert result.stdout == ""


def test_cli__no_action__exits_1(standin):
    result = run(standin, "--base-path", ".")
    assert result.returncode == 1 and "--standard-json" in result.stderr


def importing_source(path):
    return standard_json({"Main.sol": {"content": f'// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\nimport "{path}";\ncontract Main is Lib {{}}\n'}})


LIB = "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract Lib { function one() external pure returns (uint256) { return 1; } }\n"


def write_lib(folder: Path) -> None:
    (folder / "deps").mkdir(parents=True)
    (folder / "deps" / "Lib.sol").write_text(LIB)


def compile_errors(result):
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    return output, [e["message"] for e in output.get("errors", []) if e["severity"] == "error"]


def test_imports__under_base_path__resolve(standin, tmp_path):
    write_lib(tmp_path)
    output, errors = compile_errors(run(standin, "--standard-json", "--base-path", str(tmp_path), stdin=importing_source("deps/Lib.sol")))
    assert errors == []
    assert output["contracts"]["Main.sol"]["Main"]["evm"]["bytecode"]["object"]


def test_imports__no_base_path__resolve_from_working_directory(standin, tmp_path):
    write_lib(tmp_path)
    _, errors = compile_errors(run(standin, "--standard-json", "--allow-paths", str(tmp_path), stdin=importing_source("deps/Lib.sol"), cwd=tmp_path))
    assert errors == []


def test_imports__under_include_path__resolve(standin, tmp_path):
    write_lib(tmp_path / "vendor")
    (tmp_path / "src").mkdir()
    result = run(standin, "--standard-json", "--base-path", str(tmp_path / "src"), "--include-path", str(tmp_path / "vendor"), stdin=importing_source("deps/Lib.sol"))
    assert compile_errors(result)[1] == []


def test_imports__absolute_path_outside_allowed__are_refused(standin, tmp_path):
    write_lib(tmp_path / "outside")
    (tmp_path / "project").mkdir()
    absolute = str(tmp_path / "outside" / "deps" / "Lib.sol")
    refused = run(standin, "--standard-json", "--base-path", str(tmp_path / "project"), stdin=importing_source(absolute))
    assert any("outside of allowed directories" in message for message in compile_errors(refused)[1])
    allowed = run(standin, "--standard-json", "--base-path", str(tmp_path / "project"), "--allow-paths", str(tmp_path / "outside"), stdin=importing_source(absolute))
    assert compile_errors(allowed)[1] == []


def test_imports__missing_file__reports_where_it_looked(standin, tmp_path):
    _, errors = compile_errors(run(standin, "--standard-json", "--base-path", str(tmp_path), stdin=importing_source("deps/Nope.sol")))
    assert len(errors) == 1 and "File not found" in errors[0] and str(tmp_path) in errors[0]


def test_compile_standard__through_py_solc_x__compiles(standin, tmp_path):
    write_lib(tmp_path)
    output = solcx.compile_standard(json.loads(importing_source("deps/Lib.sol")), base_path=str(tmp_path), allow_paths=[str(tmp_path)], solc_binary=standin)
    assert output["contracts"]["Main.sol"]["Main"]["abi"][0]["name"] == "one"


def test_compile_standard__input_file_argument__is_read(standin, tmp_path):
    write_lib(tmp_path)
    (tmp_path / "input.json").write_text(importing_source("deps/Lib.sol"))
    result = run(standin, "--standard-json", "input.json", cwd=tmp_path)
    assert compile_errors(result)[1] == []
