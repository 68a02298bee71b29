"""The exit codes every `ape run` script of this project uses: one meaning each, never shared."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What a script's exit status means. A cron job or CI step can act on each one differently."""

    OK = 0
    """Done: deployed, verified, nothing alarming."""
    CHECK_FAILED = 1
    """The script worked and what it checked did not hold: an alert, a failed check, a wiring mismatch."""
    ERROR = 2
    """The script could not do its job: bad input, an unreachable node, a declined signature, an unwritable path."""
    INTERNAL = 3
    """A bug in the script itself (an unexpected exception); please report it with OPG_DEBUG=1 output."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C or SIGTERM."""


def exit_codes_help(ok: str, check_failed: str | None) -> str:
    """The `--help` epilog listing this script's exit codes; ``check_failed`` None if it never returns 1."""
    lines = [f"0 {ok}"]
    if check_failed is not None:
        lines.append(f"1 {check_failed}")
    lines += ["2 error (bad input, node unreachable, signature declined, path not writable)",
              "3 internal error (a bug: rerun with OPG_DEBUG=1 and report the traceback)",
              "130 interrupted"]
    return "\b\nExit codes:\n" + "\n".join(f"  {line}" for line in lines)


GROUP_EXIT_CODES = ("\b\nExit codes (each command's --help says which it uses):\n  0 ok\n  1 what it checked did not hold\n"
                    "  2 error\n  3 internal error\n  130 interrupted")
"""The epilog of a group of commands (`receipts`, `zkml`)."""
