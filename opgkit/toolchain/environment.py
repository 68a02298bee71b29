"""Make the virtualenv carry the project's environment, so `.venv/bin/ape` works without the Makefile.

The Makefile exports two things every ape command needs: SOLCX_BINARY_PATH (the offline solc in .solcx/) and
node_modules/.bin on PATH (anvil). `python -m opgkit.toolchain.environment` writes a `.pth` file into the
virtualenv's site-packages that sets both whenever that virtualenv's Python starts (an explicit
SOLCX_BINARY_PATH still wins), so `ape test`, `ape run …` and an activated shell behave as under `make`.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from opgkit import PROJECT_ROOT

PTH_NAME = "opg-project-environment.pth"


def pth_line(root: Path) -> str:
    """The one line Python's site module executes at start-up (a .pth line must begin with `import`)."""
    solc, bin_dir = str(root / ".solcx"), str(root / "node_modules" / ".bin")
    return (f"import os; os.environ.setdefault('SOLCX_BINARY_PATH', {solc!r}); "
            f"os.environ['PATH'] = os.pathsep.join([{bin_dir!r}] + [p for p in os.environ.get('PATH', '').split("
            f"os.pathsep) if p and p != {bin_dir!r}])\n")


def install(root: Path = PROJECT_ROOT) -> Path:
    """Write the .pth file into this interpreter's site-packages; returns its path."""
    target = Path(sysconfig.get_paths()["purelib"]) / PTH_NAME
    target.write_text(pth_line(root))
    return target


if __name__ == "__main__":
    if sys.prefix == sys.base_prefix:
        sys.exit("error: run this with the project's virtualenv Python (.venv/bin/python), not the system one")
    print(f"environment for ape: {install()}")
