"""opgkit.quiet: a noisy step's output, native and child processes' included, goes to the log and only there."""

import os
import subprocess
import sys
import textwrap

import pytest

from opgkit import PROJECT_ROOT
from opgkit.quiet import output_to

# Run as its own process: under pytest, sys.stdout is pytest's capture, not file descriptor 1.
PROGRAM = textwrap.dedent("""
    import logging, os, subprocess, sys
    from opgkit.quiet import output_to

    print("before")
    with output_to(sys.argv[1]):
        print("python stdout")
        print("python stderr", file=sys.stderr)
        logging.getLogger("native").warning("a warning with no handler")
        os.write(1, b"fd 1\\n")
        os.write(2, b"fd 2\\n")
        subprocess.run(["sh", "-c", "echo child; echo child error >&2"], check=True)
    print("after")
""")


def test_output_to__python_logging_native_and_child_output__appended_to_the_log_only(tmp_path):
    log = tmp_path / "steps.log"
    log.write_text("earlier\n")
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(log)], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("before\nafter\n", "")
    assert log.read_text().splitlines() == ["earlier", "python stdout", "python stderr", "a warning with no handler",
                                            "fd 1", "fd 2", "child", "child error"]


def test_output_to__block_raises__streams_restored(tmp_path, capfd):
    with pytest.raises(KeyboardInterrupt):
        with output_to(tmp_path / "steps.log"):
            raise KeyboardInterrupt
    os.write(1, b"back\n")
    assert capfd.readouterr().out == "back\n"
