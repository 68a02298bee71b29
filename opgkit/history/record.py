"""A node's or a model's record, built from the history database alone (see :mod:`opgkit.history.index`).

Attribution: a receipt's ``signer`` is the node itself (VANILLA, ZKML) or a TEE key; a TEE key belongs to the
operator that registered it (``TeeRegistered``) or rotated to it (``TeeKeyRotated``), so a node's work is
everything signed by its address or by one of its TEE keys.

Paths of a settled receipt: *individual* (``ReceiptSettled`` with no ``ProofRequested`` for the same payer and
request), *async* (``ReceiptSettled`` after a ``ProofRequested``: final once its proof came), *batched*
(``BatchReceiptRecorded``; counted apart when its batch was later challenged, i.e. rejected).

Limits, from what the events carry:

* Only claimed batch leaves emit ``BatchReceiptRecorded``: leaves no payer claimed are not in any record.
* Uptime uses ``TEERegistry.maxHeartbeatAge()`` as of the latest index run, not its value at each moment; a
  heartbeat counts from its signed timestamp for ``maxHeartbeatAge`` seconds, and registering, re-attesting
  or rotating to a key counts as one at that block's time (as the registry records it). The observed span of a node's
  TEEs runs from the earliest registration of one of its keys to the time of the last block indexed.
* Request latency needs the requests contract indexed (``--requests``); without it, no answer is known.
"""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import asdict, dataclass, field

from eth_utils import to_checksum_address

from opgkit.receipts import Mode


@dataclass
class Receipts:
    """Settled receipts by path and mode name; batched ones apart when their batch was rejected."""

    individual: dict[str, int] = field(default_factory=dict)
    async_: dict[str, int] = field(default_factory=dict)
    batched: dict[str, int] = field(default_factory=dict)
    batched_rejected: dict[str, int] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        """Receipts that stand: individual, async and batched in a batch not rejected."""
        return sum(self.individual.values()) + sum(self.async_.values()) + sum(self.batched.values())

    def as_dict(self) -> dict:
        return {"individual": self.individual, "async": self.async_, "batched": self.batched,
                "batched_rejected": self.batched_rejected, "settled": self.settled}


@dataclass
class NodeRecord:
    """A node's (operator's) work and faults as the indexed events tell them."""

    node: str
    tee_keys: list[str]
    receipts: Receipts
    self_paid: int
    """Receipts the node paid for itself: not counted in ``receipts`` (nor in its reputation)."""
    proofs_requested: int
    proofs_delivered: int
    proofs_missed: int
    batches_posted: int
    batches_rejected: int
    slashes: int
    slashed_fraction: float
    """Share of the stake the slashes took together: 1 − Π(1 − fractionBps / 10 000)."""
    jails: int
    jailed_until: int | None
    heartbeats: int
    uptime: float | None
    """None when the node runs no TEE."""
    requests_answered: int
    median_latency: float | None
    """Seconds from ``RequestOpened`` to ``RequestAnswered`` (block times); None with no answer."""
    through_block: int | None

    def as_dict(self) -> dict:
        return asdict(self) | {"receipts": self.receipts.as_dict()}


@dataclass
class ModelRecord:
    """A model's use as the indexed events tell it."""

    model_id: str
    receipts: Receipts
    requests_opened: int
    requests_answered: int
    median_latency: float | None
    nodes: list[str]
    through_block: int | None

    def as_dict(self) -> dict:
        return asdict(self) | {"receipts": self.receipts.as_dict()}


def _count(db: sqlite3.Connection, query: str, *args) -> int:
    return db.execute(query, args).fetchone()[0]


def _marks(values) -> str:
    return ", ".join("?" * len(values))


def key_owners(db: sqlite3.Connection) -> dict[str, str]:
    """Every TEE key ever registered or rotated to, and the operator it belongs to."""
    rows = db.execute('SELECT "teeKey", "operator" FROM tee_registered UNION ALL '
                      'SELECT "newKey", "operator" FROM tee_key_rotated').fetchall()
    return dict(rows)


def through_block(db: sqlite3.Connection) -> int | None:
    """The block every contract of the history has been read up to."""
    return db.execute("SELECT MIN(block) FROM cursors").fetchone()[0]


def _by_mode(rows) -> tuple[dict[str, int], dict[str, int]]:
    """``(mode, flag, count)`` rows → counts by mode name without the flag and with it."""
    without, with_ = {}, {}
    for mode, flag, count in rows:
        (with_ if flag else without)[Mode(mode).name] = count
    return without, with_


# Individual or async (a proof was requested for the same payer and request first).
SETTLED_BY_MODE = ('SELECT r.mode, EXISTS(SELECT 1 FROM proof_requested p WHERE p."requestId" = r."requestId" '
                   'AND p.payer = r.payer), COUNT(*) FROM receipt_settled r WHERE {where} GROUP BY 1, 2 ORDER BY 1')
# Standing or rejected (its batch was challenged).
BATCHED_BY_MODE = ('SELECT b.mode, EXISTS(SELECT 1 FROM batch_challenged c WHERE c."batchId" = b."batchId"), '
                   'COUNT(*) FROM batch_receipt_recorded b WHERE {where} GROUP BY 1, 2 ORDER BY 1')


# A node answers a TEE receipt through one of its keys and any other receipt as itself; a receipt it paid for
# itself (payer: the node or one of its keys) is not evidence of service and is counted apart.
_ANSWERED_BY = ('(({{table}}.mode = 1 AND {{table}}.signer IN ({keys})) OR ({{table}}.mode <> 1 AND {{table}}.signer = ?)) '
                'AND {{table}}.payer NOT IN ({signers})')
_SELF_PAID = ('SELECT (SELECT COUNT(*) FROM receipt_settled r WHERE ((r.mode = 1 AND r.signer IN ({keys})) OR '
              '(r.mode <> 1 AND r.signer = ?)) AND r.payer IN ({signers})) + (SELECT COUNT(*) FROM '
              'batch_receipt_recorded b WHERE ((b.mode = 1 AND b.signer IN ({keys})) OR (b.mode <> 1 AND b.signer = ?)) '
              'AND b.payer IN ({signers}))')


def _receipts(db, where: str, args) -> Receipts:
    """Receipts whose rows match ``where`` (on columns both tables share: signer, "modelId")."""
    individual, async_ = _by_mode(db.execute(SETTLED_BY_MODE.format(where=where.format(table="r")), args))
    batched, rejected = _by_mode(db.execute(BATCHED_BY_MODE.format(where=where.format(table="b")), args))
    return Receipts(individual, async_, batched, rejected)


def _latencies(db, where: str, args) -> list[int]:
    rows = db.execute('SELECT a.time - o.time FROM request_answered a JOIN request_opened o '
                      f'ON o."requestId" = a."requestId" WHERE {where}', args).fetchall()
    return [row[0] for row in rows]


def _median(values) -> float | None:
    return float(statistics.median(values)) if values else None


def covered_time(beats: list[int], max_age: int, start: int, end: int) -> int:
    """Seconds of [start, end] within ``max_age`` after one of ``beats`` (the union of those intervals)."""
    covered, reach = 0, start
    for beat in sorted(beats):
        low, high = max(beat, reach), min(beat + max_age, end)
        if high > low:
            covered += high - low
            reach = high
    return covered


def _uptime(db, keys: list[str]) -> tuple[int, float | None]:
    if not keys:
        return 0, None
    marks = _marks(keys)
    heartbeats = [row[0] for row in db.execute(f'SELECT "timestamp" FROM heartbeat WHERE "teeKey" IN ({marks})', keys)]
    # Registering, re-attesting and rotating to a key each count as a heartbeat at that block's time.
    beats = heartbeats + [row[0] for row in db.execute(
        f'SELECT time FROM tee_registered WHERE "teeKey" IN ({marks}) UNION ALL SELECT time FROM tee_updated '
        f'WHERE "teeKey" IN ({marks}) UNION ALL SELECT time FROM tee_key_rotated WHERE "newKey" IN ({marks})',
        [*keys, *keys, *keys])]
    start = _count(db, f'SELECT MIN(time) FROM (SELECT time FROM tee_registered WHERE "teeKey" IN ({marks}) '
                       f'UNION ALL SELECT time FROM tee_key_rotated WHERE "newKey" IN ({marks}))', *keys, *keys)
    end = _count(db, "SELECT time FROM cursors WHERE source = 'tees'")
    max_age = int(_count(db, "SELECT value FROM meta WHERE key = 'max_heartbeat_age'"))
    if end <= start:
        return len(heartbeats), 1.0
    return len(heartbeats), covered_time(beats, max_age, start, end) / (end - start)


def node_record(db: sqlite3.Connection, node: str) -> NodeRecord:
    """``node``'s record: its receipts, proofs, batches, slashes, jails, heartbeats and request answers."""
    node = to_checksum_address(node)
    keys = sorted(key for key, owner in key_owners(db).items() if owner == node)
    signers = [node, *keys]
    fractions = [row[0] for row in db.execute('SELECT "fractionBps" FROM slashed WHERE operator = ?', (node,))]
    kept = 1.0
    for bps in fractions:
        kept *= 1 - int(bps) / 10_000
    jails = db.execute('SELECT COUNT(*), MAX("until") FROM jailed WHERE operator = ?', (node,)).fetchone()
    heartbeats, uptime = _uptime(db, keys)
    latencies = _latencies(db, f"a.signer IN ({_marks(signers)})", signers)
    return NodeRecord(
        node=node,
        tee_keys=keys,
        receipts=_receipts(db, _ANSWERED_BY.format(keys=_marks(keys), signers=_marks(signers)),
                           [*keys, node, *signers]),
        self_paid=_count(db, _SELF_PAID.format(keys=_marks(keys), signers=_marks(signers)),
                         *keys, node, *signers, *keys, node, *signers),
        proofs_requested=_count(db, "SELECT COUNT(*) FROM proof_requested WHERE node = ?", node),
        proofs_delivered=_count(db, 'SELECT COUNT(*) FROM proof_delivered d JOIN proof_requested p '
                                    'ON p."requestId" = d."requestId" AND p.payer = d.payer WHERE p.node = ?', node),
        proofs_missed=_count(db, "SELECT COUNT(*) FROM proof_missed WHERE node = ?", node),
        batches_posted=_count(db, "SELECT COUNT(*) FROM batch_posted WHERE relayer = ?", node),
        batches_rejected=_count(db, 'SELECT COUNT(*) FROM batch_posted b WHERE relayer = ? AND EXISTS '
                                    '(SELECT 1 FROM batch_challenged c WHERE c."batchId" = b."batchId")', node),
        slashes=len(fractions),
        slashed_fraction=1 - kept,
        jails=jails[0],
        jailed_until=jails[1],
        heartbeats=heartbeats,
        uptime=uptime,
        requests_answered=len(latencies),
        median_latency=_median(latencies),
        through_block=through_block(db),
    )


def model_record(db: sqlite3.Connection, model_id: str) -> ModelRecord:
    """``model_id``'s record (0x-hex bytes32): receipts by path and mode, requests, and the nodes that served it."""
    model_id = model_id.lower()
    latencies = _latencies(db, 'o."modelId" = ?', (model_id,))
    owners = key_owners(db)
    signers = db.execute('SELECT signer FROM receipt_settled WHERE "modelId" = ? UNION SELECT signer FROM '
                         'batch_receipt_recorded WHERE "modelId" = ? UNION SELECT a.signer FROM '
                         'request_answered a JOIN request_opened o ON o."requestId" = a."requestId" '
                         'WHERE o."modelId" = ?', (model_id, model_id, model_id)).fetchall()
    return ModelRecord(
        model_id=model_id,
        receipts=_receipts(db, '{table}."modelId" = ?', (model_id,)),
        requests_opened=_count(db, 'SELECT COUNT(*) FROM request_opened WHERE "modelId" = ?', model_id),
        requests_answered=len(latencies),
        median_latency=_median(latencies),
        nodes=sorted({owners.get(signer, signer) for (signer,) in signers}),
        through_block=through_block(db),
    )
