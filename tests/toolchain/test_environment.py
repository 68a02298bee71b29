"""`.venv/bin/ape` works without the Makefile's environment: the virtualenv carries it (opgkit.toolchain.environment)."""

import os
import subprocess
import sys

import pytest

from opgkit import PROJECT_ROOT
from opgkit.toolchain.environment import PTH_NAME

pytestmark = pytest.mark.toolchain

SHOW = "import os, shutil; print(os.environ.get('SOLCX_BINARY_PATH')); print(shutil.which('anvil'))"


def test_venv_python__bare_environment__finds_the_offline_solc_and_anvil():
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the project's virtualenv")
    result = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True, timeout=60,
                            env={"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/bin:/bin"})
    solc, anvil = result.stdout.splitlines()
    assert solc == str(PROJECT_ROOT / ".solcx"), f"{PTH_NAME} missing: run make setup"
    assert anvil == str(PROJECT_ROOT / "node_modules" / ".bin" / "anvil")


def test_venv_python__explicit_solc_path__is_kept():
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the project's virtualenv")
    result = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True, timeout=60,
                            env={"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/bin:/bin",
                                 "SOLCX_BINARY_PATH": "/elsewhere"})
    assert result.stdout.splitlines()[0] == "/elsewhere"
