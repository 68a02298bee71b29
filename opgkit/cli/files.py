"""Reading the files users hand to scripts, and checking output paths, before anything is sent."""

from __future__ import annotations

import json
import os
import tempfile
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


def read_json(path: Path, what: str, limit: int = DOCUMENT_LIMIT) -> Any:
    """The parsed JSON in ``path`` (any shape: callers check theirs)."""
    text = read_text(path, what, limit)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise UserError(f"{what} {path} is not valid JSON: {error}") from error


def read_yaml(path: Path, what: str, limit: int = DOCUMENT_LIMIT) -> Any:
    """The parsed YAML in ``path`` (any shape: callers check theirs)."""
    text = read_text(path, what, limit)
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as error:
        raise UserError(f"{what} {path} is not valid YAML: {str(error).splitlines()[0]}") from error


def require_object(data: Any, what: str, path: Path) -> dict:
    """``data`` if it is a JSON object / YAML mapping, else a UserError saying what it is instead."""
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} holds a {type(data).__name__}, not an object with named fields; "
                        "is it the right file?")
    return data


def ensure_writable(path: Path, what: str) -> None:
    """Raise a UserError unless ``path`` can be created or overwritten; run it before sending anything.

    Probes by creating (and removing) a file beside it, which also catches read-only file systems and
    permissions a superuser ignores elsewhere. Missing parent directories are fine if they can be created.
    """
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file path")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {what} {path}: {ancestor} is a file, not a directory; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".opg-write-check-"):
            pass
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as error:
        raise UserError(f"cannot write {what} {path}: {error.strerror or error}; choose a path you may write to "
                        "or fix its permissions") from error


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a kill leaves the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
