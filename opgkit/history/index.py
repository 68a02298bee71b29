"""The history's event indexer: chain events into SQLite, incrementally, resumably, never twice.

Each watched event kind has its own table (``receipt_settled``, ``heartbeat``, …) whose columns are the event's
arguments under their ABI names, plus ``block``, ``log_index``, ``time`` (the block's timestamp) and ``tx``;
the primary key is ``(block, log_index)``, so writing a log again changes nothing. Values: addresses are
checksummed, bytes are 0x-hex, integers are stored as integers when they fit SQLite's 64 bits and as decimal
text otherwise (token amounts).

Each contract has a cursor row (``cursors``: the last block read and its timestamp). A run reads every
contract from its cursor + 1 up to the head minus ``confirmations``, in chunks of ``chunk_blocks``; a chunk's
rows and its cursor commit in one transaction, so a run killed at any point resumes where the last commit
left off, with no duplicate and no gap.

The database is bound to one chain (id and genesis hash, so a reset local chain is another chain) and one set
of contracts (the settlement and the optional requests contract; the others are read from the settlement):
opening it for anything else is refused with :class:`HistoryDatabaseMismatch`. The ``meta`` table also keeps
``max_heartbeat_age``: ``TEERegistry.maxHeartbeatAge()`` as of the latest run (the uptime measure uses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ape import project
from ape.exceptions import BlockNotFoundError
from ape.types import LogFilter
from eth_utils import encode_hex, keccak, to_checksum_address

from opgkit.cli import UserError, contract_at
from opgkit.operators.command import chain_identity
from opgkit.operators.store import Store

ROLE = "history"
CHUNK_BLOCKS = 2_000
REWIND_BLOCKS = 128
"""How far a source is read again when its cursor's block was reorganised away (deeper reorganisations are
not repaired: use --confirmations on a chain where they happen)."""
SCHEMA_VERSION = 3
"""Part of what a database is bound to: a database of an older layout is refused, not migrated."""
SQLITE_INT_MAX = 2**63 - 1

# Which events each contract contributes: (source name, contract type, events).
WATCHED = (
    ("settlement", "InferenceSettlement",
     ("ReceiptSettled", "BatchReceiptRecorded", "ProofRequested", "ProofDelivered", "ProofMissed")),
    ("batches", "BatchSettlement", ("BatchPosted", "BatchChallenged")),
    ("staking", "NodeStaking", ("Slashed", "Jailed")),
    ("tees", "TEERegistry", ("TeeRegistered", "TeeKeyRotated", "TeeUpdated", "Heartbeat")),
    ("requests", "InferenceRequests", ("RequestOpened", "RequestAnswered")),
)

CURSORS_SCHEMA = """
-- One row per contract read: the last block whose events are all in the tables, and that block's time.
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,   -- settlement | batches | staking | tees | requests
    address TEXT NOT NULL,     -- the contract read
    block INTEGER NOT NULL,    -- last block read
    time INTEGER NOT NULL,     -- that block's timestamp
    hash TEXT NOT NULL         -- and its hash: a different one on resume means the chain was reorganised
);
"""


class HistoryDatabaseMismatch(UserError):
    """The database was made for another chain or other contracts (exit 2); the message says what to do."""


def table_name(event: str) -> str:
    """``ReceiptSettled`` → ``receipt_settled``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event).lower()


def _event_abis(contract_type: str, names) -> list:
    events = {abi.name: abi for abi in getattr(project, contract_type).contract_type.events}
    return [events[name] for name in names]


def schema() -> str:
    """Every table of the history database, from the compiled ABIs of the watched events."""
    statements = [CURSORS_SCHEMA]
    for _source, contract_type, names in WATCHED:
        for abi in _event_abis(contract_type, names):
            columns = "".join(f', "{item.name}"' for item in abi.inputs)
            statements.append(f"CREATE TABLE IF NOT EXISTS {table_name(abi.name)} (block INTEGER NOT NULL, "
                              f"log_index INTEGER NOT NULL, time INTEGER NOT NULL, tx TEXT NOT NULL{columns}, "
                              "PRIMARY KEY (block, log_index));")
    return "\n".join(statements)


@dataclass(frozen=True)
class Sources:
    """The contracts whose events make the history: found from the settlement (and the optional requests)."""

    settlement: object
    batches: object
    staking: object
    tees: object
    requests: object | None = None

    @classmethod
    def from_settlement(cls, settlement, requests=None, retry: Callable = lambda call: call()) -> "Sources":
        return cls(settlement=settlement,
                   batches=contract_at(project.BatchSettlement, retry(settlement.batchSettlement),
                                       "the settlement's batchSettlement()"),
                   staking=contract_at(project.NodeStaking, retry(settlement.staking), "the settlement's staking()"),
                   tees=contract_at(project.TEERegistry, retry(settlement.teeRegistry),
                                    "the settlement's teeRegistry()"),
                   requests=requests)

    def identity(self) -> str:
        """What the database is bound to: the settlement and the requests contract (or none)."""
        requests = str(self.requests.address) if self.requests is not None else "none"
        return f"history schema {SCHEMA_VERSION}: settlement {self.settlement.address}, requests {requests}"

    def watched(self):
        """``(source, contract, event ABIs)`` for every contract to read."""
        for source, contract_type, names in WATCHED:
            contract = getattr(self, source)
            if contract is not None:
                yield source, contract, _event_abis(contract_type, names)


class HistoryStore(Store):
    """The history's SQLite database, bound to one chain and one set of contracts."""

    def _bind(self, identity: dict[str, str]) -> None:
        try:
            super()._bind(identity)
        except UserError as error:
            recorded = dict(self.db.execute("SELECT key, value FROM meta"))
            raise HistoryDatabaseMismatch(
                f"database {self.path} holds the history of {recorded.get('contract')} on chain "
                f"{recorded.get('chain')}, not of {identity['contract']} on chain {identity['chain']}; give another "
                "--db (or delete it to start over: a reset local chain is another chain)") from error


def open_database(path: Path, provider, sources: Sources, retry: Callable = lambda call: call()) -> HistoryStore:
    """The history database at ``path`` (created if new), refused if made for another chain or contracts."""
    identity = retry(lambda: chain_identity(provider))
    return HistoryStore(path, ROLE, identity, sources.identity(), schema())


def default_database(chain_id: int, directory: Path) -> Path:
    """``.history/<chain id>.sqlite`` under ``directory`` (the working directory)."""
    return directory / ".history" / f"{chain_id}.sqlite"


def _column_value(value):
    if isinstance(value, (bytes, bytearray)):
        return encode_hex(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value <= SQLITE_INT_MAX else str(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


@dataclass
class IndexReport:
    """What one run added: rows per table, and the block every contract has been read up to."""

    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    """Rows forgotten because the chain was reorganised under them (read again in the same run)."""
    through_block: int | None = None

    @property
    def total(self) -> int:
        return sum(self.added.values())


class Indexer:
    """Reads the watched events of ``sources`` into ``store``, chunk by chunk, from each contract's cursor.

    @param provider ape's connected provider.
    @param confirmations Blocks below the head left unread (their events might still be reorganised away).
    @param chunk_blocks Blocks read (and committed) at a time.
    @param from_block First block read for a contract with no cursor yet.
    @param retry Wraps every node call (e.g. ``with_backoff``); by default calls once.
    """

    def __init__(self, store: HistoryStore, sources: Sources, provider, confirmations: int = 0,
                 chunk_blocks: int = CHUNK_BLOCKS, from_block: int = 0,
                 retry: Callable = lambda call: call()) -> None:
        self.store, self.sources, self.provider = store, sources, provider
        self.confirmations, self.chunk_blocks, self.from_block = confirmations, chunk_blocks, from_block
        self.retry = retry
        self._blocks: dict[int, tuple[int, str]] = {}

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> IndexReport:
        """Read every contract up to the head minus the confirmations; stops early (committed) if asked to."""
        report = IndexReport()
        target = self.retry(lambda: self.provider.get_block("latest").number) - self.confirmations
        max_age = int(self.retry(self.sources.tees.maxHeartbeatAge))
        with self.store.transaction():
            self.store.put("max_heartbeat_age", max_age)
        for source, contract, abis in self.sources.watched():
            self._read_contract(source, contract, abis, target, report, should_stop)
        cursors = [row[0] for row in self.store.all("SELECT block FROM cursors")]
        report.through_block = min(cursors) if cursors else None
        return report

    def _read_contract(self, source, contract, abis, target, report, should_stop) -> None:
        row = self.store.one("SELECT block, hash FROM cursors WHERE source = ?", source)
        cursor = row[0] if row else self.from_block - 1
        if row and self._hash_now(cursor) != row[1]:
            cursor = self._rewind(source, abis, cursor, report)
        selectors = [encode_hex(keccak(text=abi.selector)) for abi in abis]
        while cursor < target and not should_stop():
            stop = min(cursor + self.chunk_blocks, target)
            log_filter = LogFilter(addresses=[contract.address], events=abis, topic_filter=[selectors],
                                   start_block=cursor + 1, stop_block=stop)
            stop_time, stop_hash = self._block(stop, fresh=True)
            logs = self.retry(lambda: list(self.provider.get_contract_logs(log_filter)))
            if self._hash_now(stop) != stop_hash:
                continue  # reorganised while this chunk was read: read it again
            rows = [(log, self._block(log.block_number)[0]) for log in logs]
            with self.store.transaction() as db:
                for log, time in rows:
                    if self._insert(db, log, time):
                        name = table_name(log.event_name)
                        report.added[name] = report.added.get(name, 0) + 1
                db.execute("INSERT INTO cursors VALUES (?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET "
                           "block = excluded.block, time = excluded.time, hash = excluded.hash",
                           (source, str(contract.address), stop, stop_time, stop_hash))
            cursor = stop

    def _insert(self, db, log, time: int) -> bool:
        arguments = dict(log.event_arguments)
        names = list(arguments)
        columns = "".join(f', "{name}"' for name in names)
        marks = ", ?" * len(names)
        values = [log.block_number, log.log_index, time, encode_hex(bytes(log.transaction_hash))
                  if not isinstance(log.transaction_hash, str) else log.transaction_hash]
        values += [_column_value(arguments[name]) for name in names]
        cursor = db.execute(f"INSERT OR IGNORE INTO {table_name(log.event_name)} (block, log_index, time, tx"
                            f"{columns}) VALUES (?, ?, ?, ?{marks})", values)
        return cursor.rowcount > 0

    def _rewind(self, source, abis, cursor: int, report: IndexReport) -> int:
        """The block at ``source``'s cursor is no longer the chain's: forget its last ``REWIND_BLOCKS`` blocks
        of events, to be read again."""
        back_to = min(cursor, max(cursor - REWIND_BLOCKS, self.from_block - 1, -1))
        with self.store.transaction() as db:
            for abi in abis:
                removed = db.execute(f"DELETE FROM {table_name(abi.name)} WHERE block > ?", (back_to,)).rowcount
                if removed:
                    report.removed[table_name(abi.name)] = report.removed.get(table_name(abi.name), 0) + removed
            if back_to < 0:
                db.execute("DELETE FROM cursors WHERE source = ?", (source,))
            else:
                time, block_hash = self._block(back_to, fresh=True)
                db.execute("UPDATE cursors SET block = ?, time = ?, hash = ? WHERE source = ?",
                           (back_to, time, block_hash, source))
        return back_to

    def _hash_now(self, number: int) -> str | None:
        """The chain's block ``number`` hash now (None if the chain no longer reaches it), never cached."""
        try:
            block = self.retry(lambda: self.provider.get_block(number))
        except BlockNotFoundError:
            return None
        return encode_hex(bytes(block.hash)) if block is not None else None

    def _block(self, number: int, fresh: bool = False) -> tuple[int, str]:
        """A block's timestamp and hash (0x-hex); ``fresh`` asks the node again rather than the run's cache."""
        if fresh or number not in self._blocks:
            block = self.retry(lambda: self.provider.get_block(number))
            if block is None:
                raise UserError(f"the node has no block {number}; is it fully synced?")
            self._blocks[number] = (int(block.timestamp), encode_hex(bytes(block.hash)))
        return self._blocks[number]
