"""Durable operator state in SQLite: one file per operator, bound to its chain and contract.

Every table an operator keeps is created here from its schema; the ``meta`` table records which operator,
chain (id and genesis block hash) and contract the file belongs to, so a state file is never read against
another chain by mistake — a reset local chain included, where the same addresses come back. Writes are transactions in WAL mode with ``synchronous=FULL``: a process killed
at any instant leaves the last committed state, never half of one.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

from opgkit.cli import UserError

META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


class Store:
    """An operator's SQLite database."""

    def __init__(self, path: Path, role: str, chain: str, contract: str, schema: str) -> None:
        self.path = path
        if path.exists() and not path.is_file():
            raise UserError(f"state {path} is not a file; give a file path for the SQLite database")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(META_SCHEMA + schema)
        except sqlite3.DatabaseError as error:
            raise UserError(f"state {path} cannot be used as an SQLite database ({error}); is it the right file?") from error
        except OSError as error:
            raise UserError(f"cannot create state {path}: {error.strerror or error}") from error
        self._bind({"role": role, "chain": chain, "contract": contract})

    def _bind(self, identity: dict[str, str]) -> None:
        recorded = dict(self.db.execute("SELECT key, value FROM meta"))
        if not recorded:
            with self.transaction():
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", identity.items())
            return
        for key, value in identity.items():
            if recorded.get(key) != value:
                raise UserError(
                    f"state {self.path} belongs to {recorded.get('role')} of contract {recorded.get('contract')} on "
                    f"chain {recorded.get('chain')}, not this {identity['role']} of {identity['contract']} on chain "
                    f"{identity['chain']}; give another --state file (or delete it to start over: a reset local chain "
                    "is another chain)")

    @contextmanager
    def transaction(self):
        """One atomic write: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def one(self, query: str, *args):
        return self.db.execute(query, args).fetchone()

    def all(self, query: str, *args) -> list:
        return self.db.execute(query, args).fetchall()

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", key)
        return default if row is None else row[0]

    def put(self, key: str, value) -> None:
        """Set a meta value (call inside a transaction to make it part of one)."""
        self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, str(value)))

    def close(self) -> None:
        self.db.close()
