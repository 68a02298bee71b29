"""Is the Python running this file one that pyproject.toml's ``requires-python`` allows? Exit 0 if so; else one
line saying which Python it is, what is needed and how to fix it, and exit 1.

    python3 opgkit/toolchain/supported_python.py [--python NAME | --venv DIR] [--goal TARGET]

``--python NAME``: how the interpreter was called, for the message. ``--venv DIR``: the interpreter is the one
DIR was made with (the fix is then to remove DIR). ``--goal``: the make target to suggest running again.
The Makefile runs it before it creates or uses the virtualenv, so it keeps to syntax every Python from 2.7 on
can parse and needs nothing outside the standard library.
"""

from __future__ import print_function

import operator
import os
import re
import sys

PYPROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "pyproject.toml")
COMPARISONS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
               "!=": operator.ne}


def requirement(pyproject=PYPROJECT):
    """The ``requires-python`` specifier, e.g. ``>=3.11,<3.13``."""
    with open(pyproject) as handle:
        found = re.search(r'^requires-python\s*=\s*"([^"]+)"', handle.read(), re.MULTILINE)
    if found is None:
        raise SystemExit("error: no requires-python in {0}".format(pyproject))
    return found.group(1)


def clauses(specifier):
    """``>=3.11,<3.13`` as [(">=", (3, 11)), ("<", (3, 13))]."""
    parsed = []
    for clause in specifier.split(","):
        found = re.match(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$", clause)
        if found is None:
            raise SystemExit("error: cannot read requires-python clause {0!r}".format(clause.strip()))
        parsed.append((found.group(1), tuple(int(part) for part in found.group(2).split("."))))
    return parsed


def allows(specifier, version):
    """Whether ``version`` (a tuple such as (3, 11, 7)) satisfies every clause, compared on the clause's
    precision (``<3.13`` refuses 3.13.0; ``==3.11`` accepts 3.11.7)."""
    return all(COMPARISONS[op](tuple(version[:len(bound)]), bound) for op, bound in clauses(specifier))


def suggested(specifier):
    """The interpreter to suggest: the lowest version allowed, as ``python3.11``."""
    lower = [bound for op, bound in clauses(specifier) if op in (">=", "==")]
    return "python" + ".".join(str(part) for part in min(lower)[:2]) if lower else "python3"


def option(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv[:-1] else default


def main(argv):
    venv, goal = option(argv, "--venv"), option(argv, "--goal", "setup")
    specifier = requirement()
    if allows(specifier, tuple(sys.version_info[:3])):
        return 0
    found = "Python {0}.{1}.{2}".format(*sys.version_info[:3])
    retry = "PYTHON={0} make {1}".format(suggested(specifier), goal)
    if venv is not None:
        print("error: {0} was made with {1}, but this project needs Python {2}: run `make clean`, then "
              "`{3}`".format(venv, found, specifier, retry), file=sys.stderr)
    else:
        print("error: {0} is {1}, but this project needs Python {2}: run `{3}`".format(
            option(argv, "--python", "python3"), found, specifier, retry), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
