"""opgkit.cli: which failures get which message and exit code, retries, file reading and the writability probe."""

import errno
import os
import sys

import click
import pytest
import requests
from ape.exceptions import ContractNotFoundError, ProviderError, SignatureError
from ape_accounts.accounts import InvalidPasswordError

from opgkit.cli import (
    DOCUMENT_LIMIT, ExitCode, UserError, ensure_writable, exit_codes_help, explain, is_unreachable, read_json, read_yaml,
    run_guarded, with_backoff, write_atomically,
)


def exit_of(body) -> int:
    with pytest.raises(SystemExit) as stopped:
        run_guarded(body)
    return stopped.value.code


def raising(error):
    def body():
        raise error
    return body


@pytest.mark.parametrize("error, code, words", [
    (UserError("the thing is wrong; do this"), ExitCode.ERROR, "the thing is wrong; do this"),
    (InvalidPasswordError(), ExitCode.ERROR, "wrong passphrase"),
    (SignatureError("The transaction was not signed."), ExitCode.ERROR, "--autosign"),
    (click.Abort(), ExitCode.ERROR, "a prompt needed an answer"),
    (ProviderError("No (supported) node found on 'http://127.0.0.1:9'."), ExitCode.ERROR, "cannot reach the node"),
    (requests.ConnectionError("refused"), ExitCode.ERROR, "cannot reach the node"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y"), ExitCode.ERROR, "cannot access /x/y"),
    (OSError(errno.ENOSPC, "No space left on device", "/x/y"), ExitCode.ERROR, "the disk is full"),
    (click.ClickException("bad"), ExitCode.ERROR, "bad"),
    (KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted"),
    (ZeroDivisionError("division by zero"), ExitCode.INTERNAL, "internal error, a bug in this script"),
])
def test_run_guarded__each_failure__its_line_and_code(capsys, error, code, words):
    assert exit_of(raising(error)) == code
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err
    if code != ExitCode.INTERRUPTED:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_run_guarded__usage_errors_and_exits__left_to_click():
    with pytest.raises(click.UsageError):
        run_guarded(raising(click.UsageError("wrong option")))
    with pytest.raises(SystemExit) as stopped:
        run_guarded(raising(SystemExit(1)))
    assert stopped.value.code == 1


def test_run_guarded__debug_variable__adds_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("OPG_DEBUG", "1")
    exit_of(raising(ZeroDivisionError("x")))
    assert "Traceback" in capsys.readouterr().err


def test_explain__contract_not_found__names_the_address_and_make_chain():
    error = ContractNotFoundError("0x" + "12" * 20, False, "ethereum:devchain:node")
    assert explain(error).startswith(f"no contract at 0x{'12' * 20} on this chain")
    assert "make chain" in explain(error)


def test_is_unreachable__follows_the_cause_chain():
    try:
        try:
            raise requests.ConnectionError("refused")
        except requests.ConnectionError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_unreachable(outer)
    assert not is_unreachable(ValueError("bad input"))


def test_with_backoff__node_back_after_two_failures__returns_with_doubling_waits():
    calls, waits = [], []

    def call():
        calls.append(1)
        if len(calls) < 3:
            raise requests.ConnectionError("down")
        return "head"

    assert with_backoff(call, attempts=5, first_delay=0.5, sleep=waits.append) == "head"
    assert waits == [0.5, 1.0]


def test_with_backoff__still_down__user_error_after_the_attempts():
    waits = []
    with pytest.raises(UserError, match="gave up after 3 attempts"):
        with_backoff(raising(requests.ConnectionError("down")), attempts=3, sleep=waits.append)
    assert waits == [0.5, 1.0]


def test_with_backoff__forever__capped_waits_until_stop_then_interrupt():
    waits = []
    with pytest.raises(KeyboardInterrupt):
        with_backoff(raising(requests.ConnectionError("down")), attempts=None, max_delay=4,
                     should_stop=lambda: len(waits) == 6, sleep=waits.append)
    assert waits == [0.5, 1, 2, 4, 4, 4]


def test_with_backoff__not_an_outage__raised_at_once():
    waits = []
    with pytest.raises(ValueError):
        with_backoff(raising(ValueError("bad")), sleep=waits.append)
    assert waits == []


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe", "is not text"),
    (b"{", "is not valid JSON"),
    (b"[" * 100_000, "is not valid JSON"),
])
def test_read_json__unreadable_content__named(tmp_path, content, message):
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_json(path, "receipt document")


def test_read_json__over_the_limit_or_not_a_file__named(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(DOCUMENT_LIMIT + 1)
    with pytest.raises(UserError, match="more than the 1,048,576"):
        read_json(huge, "checkpoint")
    with pytest.raises(UserError, match="is a directory"):
        read_json(tmp_path, "checkpoint")
    with pytest.raises(UserError, match="does not exist"):
        read_json(tmp_path / "missing.json", "checkpoint")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is not a regular file"):
        read_json(fifo, "checkpoint")


def test_ensure_writable__existing_file__kept_intact_and_nothing_left_behind(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("keep me")
    ensure_writable(path, "record")
    assert path.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_ensure_writable__missing_directories__created_and_left_empty(tmp_path):
    ensure_writable(tmp_path / "a" / "b" / "record.json", "record")
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())


def test_ensure_writable__fifo__refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserError, match="is not a regular file"):
        ensure_writable(tmp_path / "fifo", "checkpoint")


def test_ensure_writable__name_too_long__refused_before_anything_is_sent(tmp_path):
    """A record name the file system cannot hold must fail here, not after the first contract was deployed; the
    longest name it can hold is fine (the temporary it is written through has a short name of its own)."""
    with pytest.raises(UserError, match="cannot write record"):
        ensure_writable(tmp_path / ("a" * 251 + ".json"), "record")
    longest = tmp_path / ("a" * 250 + ".json")
    ensure_writable(longest, "record")
    write_atomically(longest, "{}")
    assert longest.read_text() == "{}"


def test_write_atomically__planted_symlink_and_mode__never_followed_readable_by_others(tmp_path):
    """A shared directory (a spool, a publish directory) may hold a symlink where a temporary would go; and a
    published batch document must be readable by the web server that serves it."""
    import stat

    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "out.json.tmp").symlink_to(victim)
    write_atomically(tmp_path / "out.json", "{}")
    assert victim.read_text() == "untouched" and (tmp_path / "out.json").read_text() == "{}"
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) & 0o044 == 0o044


def test_read_json__nested_deeper_than_the_limit__named_error_not_a_crash(tmp_path, monkeypatch):
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # what py_ecc sets on import: the C parser would overflow the stack
    try:
        path = tmp_path / "deep.json"
        path.write_text("[" * 300_000 + "]" * 300_000)
        with pytest.raises(UserError, match="nested too deeply"):
            read_json(path, "checkpoint")
        assert sys.getrecursionlimit() == 100_000
    finally:
        sys.setrecursionlimit(previous)


def test_read_yaml__alias_bomb__refused_before_expanding(tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]" for previous, name in zip("abcdefgh", "bcdefghi")]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nattestors: *i\n")
    with pytest.raises(UserError, match="aliases"):
        read_yaml(path, "parameters file")


def test_is_unreachable__broken_pipe__is_our_output_not_the_node():
    assert not is_unreachable(BrokenPipeError(errno.EPIPE, "Broken pipe"))


def test_ensure_writable__under_a_file_or_a_directory__named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file, not a directory"):
        ensure_writable(tmp_path / "file" / "record.json", "record")
    with pytest.raises(UserError, match="is a directory; give a file path"):
        ensure_writable(tmp_path, "record")


def test_exit_codes_help__lists_every_code_once():
    text = exit_codes_help("done", "a check failed")
    codes = [line.split()[0] for line in text.splitlines()[2:]]
    assert codes == ["0", "1", "2", "3", "130"]
    assert [line.split()[0] for line in exit_codes_help("done", None).splitlines()[2:]] == ["0", "2", "3", "130"]
