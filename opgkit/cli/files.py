"""Reading the files users hand to scripts, and checking output paths, before anything is sent."""

from __future__ import annotations

import json
import os
import reprlib
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from opgkit.cli.errors import UserError

DOCUMENT_LIMIT = 1 << 20
"""Largest JSON or YAML input a script reads (1 MiB): receipts, proofs, configs and checkpoints are far smaller."""


def read_text(path: Path, what: str, limit: int = DOCUMENT_LIMIT) -> str:
    """The UTF-8 text of the regular file ``path``, or a UserError naming ``what`` was wrong with it."""
    try:
        if not path.exists():
            raise UserError(f"{what} {path} does not exist; check the path")
        if path.is_dir():
            raise UserError(f"{what} {path} is a directory; give the file inside it")
        if not path.is_file():
            raise UserError(f"{what} {path} is not a regular file")
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{what} {path} is {size:,} bytes, more than the {limit:,} such a file can be; "
                            "is it the right file?")
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {error.strerror or error}") from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not text (byte {error.start} is not UTF-8); is it the right file?") from error


MAX_NESTING = 200
"""Deepest nesting a parsed document may have; no input of this project comes near it."""


@contextmanager
def shallow_parsing():
    """Parse with a low recursion limit: some libraries (py_ecc) raise Python's limit so high that a deeply
    nested document would overflow the C stack (a crash) instead of raising RecursionError."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(min(previous, MAX_NESTING + 100 + _stack_depth()))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def loads_json(text: str) -> Any:
    """``json.loads`` that raises RecursionError, never crashes, on nesting deeper than MAX_NESTING or so."""
    with shallow_parsing():
        return json.loads(text)


def read_json(path: Path, what: str, limit: int = DOCUMENT_LIMIT) -> Any:
    """The parsed JSON in ``path`` (any shape: callers check theirs)."""
    text = read_text(path, what, limit)
    try:
        return loads_json(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, and integers of too many digits
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise UserError(f"{what} {path} is not valid JSON: {reason}") from error


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors' aliases: a few hundred bytes of nested aliases expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted here",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: Path, what: str, limit: int = DOCUMENT_LIMIT) -> Any:
    """The parsed YAML in ``path`` (any shape: callers check theirs); aliases refused."""
    text = read_text(path, what, limit)
    try:
        with shallow_parsing():
            return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else " ".join(str(error).split())[:200]
        raise UserError(f"{what} {path} is not valid YAML: {reason}") from error


def shown(value: Any) -> str:
    """A value as it may appear in a message: abbreviated, whatever its size."""
    return reprlib.repr(value)


def require_object(data: Any, what: str, path: Path) -> dict:
    """``data`` if it is a JSON object / YAML mapping, else a UserError saying what it is instead."""
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} holds a {type(data).__name__}, not an object with named fields; "
                        "is it the right file?")
    return data


def ensure_writable(path: Path, what: str) -> None:
    """Raise a UserError unless ``path`` can be created or overwritten; run it before sending anything.

    Creates missing parent directories, then probes by creating (and removing) a temporary file the way
    ``write_atomically`` does, which also catches read-only file systems and permissions a superuser ignores
    elsewhere; a name longer than the file system allows is refused. An existing file is opened for appending,
    never changed.
    """
    if len(os.fsencode(path.name)) > 255:  # every file system this runs on; checked before any stat() of it
        raise UserError(f"cannot write {what} {path}: the file name is longer than 255 bytes; choose a shorter one")
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file path")
    if path.exists() and not path.is_file():
        raise UserError(f"{what} {path} is not a regular file; give a file path")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {what} {path}: {ancestor} is a file, not a directory; choose another path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Probe the directory the way write_atomically writes (an exclusive temporary), and the name itself.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
        os.close(descriptor)
        os.unlink(temporary)
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as error:
        raise UserError(f"cannot write {what} {path}: {error.strerror or error}; choose a path you may write to "
                        "or fix its permissions") from error


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a kill or a power cut leaves the old or the new content, never half.

    The temporary file is created exclusively under a fresh name (never through a symlink someone planted in a
    shared directory) and synced before it replaces ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o666 & ~_umask())  # as a plain open() would: others may need to read it
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (a power cut must not bring the old name back)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
