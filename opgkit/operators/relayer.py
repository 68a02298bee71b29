"""The relayer: signed receipts in, Merkle batches out, each posted once and only after its document is published.

Receipts arrive as receipt documents (``opgkit.receipt_verifier``: a "receipt" and its "signature") from a
spool directory and/or a local HTTP endpoint. Each is judged by the shared judge (``opgkit.leaf_faults``, the
contract's ``faultOf`` in Python), de-duplicated on ``(payer, requestId)`` and committed to SQLite before it is
acknowledged. Queued receipts are cut into batches, each batch's document is published (content-addressed,
``opgkit.batch_document``), and only then is its root posted with ``BatchSettlement.postBatch``, through the
at-most-once sender. A relayer killed at any instant and restarted resumes from its state: every accepted
receipt ends up in exactly one posted batch, and nothing is posted whose document was not published first.

Timing mirrors the contract: a leaf must be strictly older than the posting block and at most
``maxReceiptAgeAt(postedAt)`` old. A receipt not yet older than the latest block waits in the queue (it is
refused only when it is more than ``future_tolerance`` seconds ahead); just before a batch is cut, its receipts
are judged again as if posted ``post_margin`` seconds from now, and one that would be too old by then is
dropped as ``expired``, never posted.
"""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ape.exceptions import ContractLogicError
from eth_utils import keccak

from opgkit.batch_document import BATCH_POSTED_TOPIC, BatchDocument, document_name, publish
from opgkit.cli import DOCUMENT_LIMIT, UserError, explain, loads_json, read_json, write_atomically
from opgkit.leaf_faults import LeafJudge
from opgkit.operators.sending import StillPending, transact_with_margin
from opgkit.operators.store import Store
from opgkit.receipt_verifier import ReceiptDocumentError, document_json, parse_document
from opgkit.receipts import Fault, SignedReceipt

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY,            -- arrival order; leaves take this order in their batch
    digest TEXT NOT NULL UNIQUE,       -- keccak256 of the canonical document: one row per signed receipt
    payer TEXT NOT NULL,               -- the receipt's payer (checksummed)
    request_id TEXT NOT NULL,          -- 0x request id; (payer, request_id) is the de-duplication key
    timestamp INTEGER NOT NULL,        -- the receipt's timestamp (chain seconds)
    document TEXT NOT NULL,            -- the receipt document JSON (receipt and signature only)
    state TEXT NOT NULL,               -- queued | batched | rejected | expired
    reason TEXT,                       -- rejected or expired: the reason label, a colon, and what it means
    batch INTEGER,                     -- batches.id once batched
    source TEXT NOT NULL,              -- spool:<file name> | http
    received_at REAL NOT NULL          -- wall-clock seconds when it was last judged at ingest (--max-wait clock)
);
-- One live receipt per request: a rejected or expired one leaves the key free for a corrected receipt.
CREATE UNIQUE INDEX IF NOT EXISTS receipts_request ON receipts (payer, request_id)
    WHERE state IN ('queued', 'batched');
CREATE INDEX IF NOT EXISTS receipts_state ON receipts (state, id);
CREATE INDEX IF NOT EXISTS receipts_batch ON receipts (batch, id);

CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,            -- local batch id
    root TEXT NOT NULL,                -- 0x Merkle root of its leaves
    count INTEGER NOT NULL,            -- its leaf count
    data_uri TEXT NOT NULL,            -- where its document is published (postBatch's dataUri)
    state TEXT NOT NULL,               -- built | published | posted | dissolved (a leaf went stale before sending)
    onchain_id INTEGER,                -- BatchSettlement batch id once posted
    tx_hash TEXT,                      -- the postBatch transaction once posted (from its BatchPosted log)
    built_at REAL NOT NULL             -- wall-clock seconds when it was cut
);
"""

SETTLEMENT_RELAYER_ROLE = 2  # INodeStaking.Role.SettlementRelayer
DOCUMENT_NAME = re.compile(r"^0x[0-9a-f]{64}\.json$")
FAULT_REASONS = {
    Fault.BAD_SIGNATURE: "the signature does not recover to the receipt's signer",
    Fault.SIGNER_INACTIVE: "the signer was not an active node at the receipt's timestamp",
    Fault.UNKNOWN_MODEL: "the model was not registered before the receipt's timestamp",
    Fault.MODEL_DEPRECATED: "the model was deprecated before the receipt's timestamp",
    Fault.MODE_NOT_ACCEPTED: "the model's policy does not accept this mode",
    Fault.MODE_NOT_BATCHABLE: "a ZKML receipt cannot be batched (settle it individually with its proof)",
}


@dataclass(frozen=True)
class RelayerOptions:
    """How a relayer batches and times its receipts."""

    batch_size: int = 256
    max_wait: float = 60.0
    future_tolerance: int = 60
    post_margin: int = 120
    publish_dir: Path = Path("build/operators/batches")
    publish_url: str = ""


@dataclass(frozen=True)
class Verdict:
    """What became of one submitted receipt: ``status`` accepted | known | rejected | duplicate."""

    status: str
    reason: str | None = None
    message: str = ""
    request: str = ""

    def as_json(self) -> dict:
        data = {"status": self.status, "request": self.request}
        if self.reason:
            data |= {"reason": self.reason, "message": self.message}
        return data


def rejected(reason: str, message: str, request: str = "") -> Verdict:
    return Verdict("rejected", reason, message, request)


def fault_reason(fault: Fault) -> tuple[str, str]:
    """(label, message) of a fault the judge found at ingest (time faults are told apart by the caller)."""
    return fault.name.lower(), FAULT_REASONS.get(fault, fault.name)


def canonical(document: dict) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def second_connection(store: Store) -> Store:
    """The same state through another SQLite connection, for the HTTP server's threads (serialize its use)."""
    other = copy.copy(store)
    other.db = sqlite3.connect(store.path, isolation_level=None, timeout=30, check_same_thread=False)
    other.db.execute("PRAGMA synchronous=FULL")
    return other


# ---------------------------------------------------------------- intake


class Intake:
    """Judges submitted receipt documents and commits each verdict to the state before it is acknowledged.

    One per SQLite connection; SQLite's unique indexes settle races between two intakes (spool and HTTP)."""

    def __init__(self, store: Store, judge: LeafJudge, runtime, options: RelayerOptions, counters: "Counters") -> None:
        self.store = store
        self.judge = judge
        self.runtime = runtime
        self.options = options
        self.counters = counters

    def latest_timestamp(self) -> int:
        return self.runtime.retry(lambda: self.judge.web3.eth.get_block("latest")["timestamp"])

    def submit(self, data, source: str, latest: int | None = None, models: dict | None = None) -> Verdict:
        """Judge the receipt document ``data`` (a parsed JSON value) and record the verdict."""
        try:
            document = parse_document(data)
        except ReceiptDocumentError as error:
            return self.refuse(rejected("malformed", str(error)), source)
        if document.signature is None:
            return self.refuse(rejected("unsigned", 'the document has no "signature"'), source)
        receipt, signature = document.receipt, document.signature
        text = canonical(document_json(receipt, signature))
        digest = "0x" + keccak(text=text).hex()
        request = "0x" + receipt.requestId.hex()
        known = self.store.one("SELECT state, reason FROM receipts WHERE digest = ?", digest)
        if known is not None and known[0] == "expired":
            return self.refuse(rejected("expired", known[1].partition(": ")[2], request), source)
        if known is not None and known[0] != "rejected":
            return Verdict("known", None, f"already {known[0]}", request)
        if self._holder(receipt.payer, request, digest) is not None:
            verdict = Verdict("duplicate", "duplicate",
                              f"another receipt for request {request} of {receipt.payer} is already accepted", request)
        else:
            latest = self.latest_timestamp() if latest is None else latest
            verdict = self._judge(receipt, signature, latest, request, models)
        return self._record(verdict, digest, receipt, request, text, source)

    def _holder(self, payer: str, request: str, digest: str):
        return self.store.one("SELECT id FROM receipts WHERE payer = ? AND request_id = ? AND digest != ? "
                              "AND state IN ('queued', 'batched')", payer, request, digest)

    def _judge(self, receipt, signature: bytes, latest: int, request: str, models: dict | None) -> Verdict:
        ahead = receipt.timestamp - latest
        if ahead > self.options.future_tolerance:
            return rejected("future", f"the receipt's timestamp is {ahead} s ahead of the chain (more than "
                                      f"{self.options.future_tolerance} s)", request)
        if receipt.timestamp >= latest:
            # Histories at a second the chain has not passed may still change: check what cannot, and let the
            # receipt wait; it is judged in full when its batch is cut.
            if not self.runtime.retry(lambda: self.judge.signed_by_signer(receipt, signature)):
                return rejected(*fault_reason(Fault.BAD_SIGNATURE), request)
            # Everything else as if it had been signed at the latest block's second: an unstaked key or an
            # unknown model cannot hold a request's place in the queue until it is judged in full.
            probe = receipt.with_changes(timestamp=latest)
            fault = self.runtime.retry(lambda: self.judge.fault_of(probe, signature, latest + 1, models=models,
                                                                   signature_checked=True))
            if fault not in (Fault.NONE, Fault.TIMESTAMP_OUT_OF_BOUNDS):
                return rejected(*fault_reason(fault), request)
            return Verdict("accepted", None, "waits until the chain passes its timestamp", request)
        fault = self.runtime.retry(lambda: self.judge.fault_of(receipt, signature, latest + 1, models=models))
        if fault == Fault.TIMESTAMP_OUT_OF_BOUNDS:
            return rejected("too_old", "the receipt is older than the receipt age limit", request)
        if fault != Fault.NONE:
            return rejected(*fault_reason(fault), request)
        return Verdict("accepted", None, "", request)

    def _record(self, verdict: Verdict, digest: str, receipt, request: str, text: str, source: str) -> Verdict:
        state = "queued" if verdict.status == "accepted" else "rejected"
        reason = None if verdict.reason is None else f"{verdict.reason}: {verdict.message}"
        try:
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO receipts (digest, payer, request_id, timestamp, document, state, reason, source, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET "
                    "state = excluded.state, reason = excluded.reason, source = excluded.source, "
                    "received_at = excluded.received_at WHERE receipts.state = 'rejected'",
                    (digest, receipt.payer, request, receipt.timestamp, text, state, reason, source, time.time()))
                # Only a rejected receipt is judged again: one the other intake queued or batched meanwhile
                # (judging takes node calls) stays as it is.
                current = db.execute("SELECT state FROM receipts WHERE digest = ?", (digest,)).fetchone()[0]
        except sqlite3.IntegrityError:  # another intake accepted this request meanwhile
            return self.refuse(Verdict("duplicate", "duplicate", f"another receipt for request {request} of "
                                         f"{receipt.payer} is already accepted", request), source)
        if current != state:
            return Verdict("known", None, f"already {current}", request)
        if state == "queued":
            self.counters.accepted.inc()
            self.runtime.log("accepted", f"request {request} of {receipt.payer} ({source}){_suffix(verdict.message)}",
                             request=request, payer=receipt.payer, source=source)
            return verdict
        return self.refuse(verdict, source)

    def refuse(self, verdict: Verdict, source: str) -> Verdict:
        """Count and log a refusal."""
        self.counters.rejected.labels(verdict.reason).inc()
        self.runtime.log("rejected", f"{verdict.reason}: {verdict.message} ({source})", level="warn",
                         reason=verdict.reason, request=verdict.request, source=source)
        return verdict


def _suffix(message: str) -> str:
    return f": {message}" if message else ""


class Counters:
    """The relayer's own Prometheus series, next to the runtime's."""

    def __init__(self, metrics) -> None:
        self.accepted = metrics.counter("receipts_accepted", "Receipts accepted into the queue")
        self.rejected = metrics.counter("receipts_rejected", "Receipts refused, by reason", ("reason",))
        self.expired = metrics.counter("receipts_expired", "Queued receipts dropped as too old before batching")
        self.batched = metrics.counter("receipts_batched", "Receipts assigned to a batch")
        self.posted = metrics.counter("batches_posted", "Batches whose root is on chain")
        self.queue = metrics.gauge("queue_depth", "Receipts accepted and not yet batched")


# ---------------------------------------------------------------- the spool


def ingest_spool(directory: Path, intake: Intake, stopping) -> int:
    """Submit every ``*.json`` in ``directory``, then move it to ``accepted/`` or ``rejected/`` (with a
    ``.reason``). The verdict is committed before the move, so a file met again after a crash is a no-op."""
    accepted_dir, rejected_dir = directory / "accepted", directory / "rejected"
    files = sorted(path for path in directory.glob("*.json") if path.is_file() and not path.is_symlink())
    if not files:
        return 0
    latest, models = intake.latest_timestamp(), {}
    for path in files:
        if stopping():
            break
        try:
            data = read_json(path, "receipt document")
        except UserError as error:
            verdict = intake.refuse(rejected("malformed", str(error)), f"spool:{path.name}")
        else:
            verdict = intake.submit(data, f"spool:{path.name}", latest, models)
        if verdict.status in ("accepted", "known"):
            path.replace(_free_name(accepted_dir, path.name))
        else:
            target = _free_name(rejected_dir, path.name)
            write_atomically(target.with_name(target.name + ".reason"), f"{verdict.reason}: {verdict.message}\n")
            path.replace(target)
    return len(files)


def _free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or with a numbered suffix when something is already there (a resubmitted file)."""
    target, number = directory / name, 1
    while target.exists() or target.is_symlink():
        target, number = directory / f"{name}.{number}", number + 1
    return target


# ---------------------------------------------------------------- the HTTP endpoint


class ReceiptServer(ThreadingHTTPServer):
    """``POST /receipts`` (202 accepted, 400 refused with the reason, 409 duplicate) and ``GET /batches/<name>``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], intake: Intake, publish_dir: Path) -> None:
        super().__init__(address, ReceiptHandler)
        self.intake = intake
        self.publish_dir = publish_dir
        self.lock = threading.Lock()  # one connection and one judge for every handler thread

    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="relayer-http", daemon=True).start()


STATUS_OF = {"accepted": HTTPStatus.ACCEPTED, "known": HTTPStatus.ACCEPTED, "rejected": HTTPStatus.BAD_REQUEST,
             "duplicate": HTTPStatus.CONFLICT}


class ReceiptHandler(BaseHTTPRequestHandler):
    server: ReceiptServer
    timeout = 30  # seconds a client may idle mid-request before its connection (and thread) is dropped

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") != "/receipts":
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "POST receipt documents to /receipts"})
        declared = (self.headers.get("Content-Length") or "").strip()
        length = int(declared) if declared.isascii() and declared.isdigit() and len(declared) <= 12 else -1
        if not 0 <= length <= DOCUMENT_LIMIT:
            return self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else HTTPStatus.LENGTH_REQUIRED,
                               {"error": f"send one receipt document of at most {DOCUMENT_LIMIT} bytes "
                                         "with a Content-Length"})
        try:
            data = loads_json(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return self._reply(HTTPStatus.BAD_REQUEST, {"status": "rejected", "reason": "malformed",
                                                        "message": "the body is not a JSON document"})
        try:
            with self.server.lock:
                verdict = self.server.intake.submit(data, "http")
        except Exception as error:  # noqa: BLE001 - the node or the disk failed: the client may retry
            message = explain(error) or f"{type(error).__name__}: {error}"
            self.server.intake.runtime.error("http", message)
            return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": message})
        self._reply(STATUS_OF[verdict.status], verdict.as_json())

    def do_GET(self) -> None:  # noqa: N802
        prefix = "/batches/"
        name = self.path[len(prefix):] if self.path.startswith(prefix) else ""
        path = self.server.publish_dir / name
        if not DOCUMENT_NAME.match(name) or not path.is_file():
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "no such batch document"})
        body = path.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reply(self, status: HTTPStatus, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 - every request is logged by the intake instead
        pass


def serve(address: str, intake: Intake, publish_dir: Path) -> ReceiptServer:
    """Start the HTTP endpoint on ``HOST:PORT`` (port 0: any free port) in a background thread."""
    host, _, port = address.rpartition(":")
    try:
        server = ReceiptServer((host or "127.0.0.1", int(port)), intake, publish_dir)
    except ValueError as error:
        raise UserError(f"--listen {address!r} is not HOST:PORT") from error
    except OSError as error:
        raise UserError(f"cannot listen on {address}: {error.strerror or error}; pick another port") from error
    server.start()
    return server


# ---------------------------------------------------------------- batches


@dataclass(frozen=True)
class BatchRow:
    id: int
    root: str
    count: int
    data_uri: str
    state: str


class Relayer:
    """The main loop's work: ingest the spool, cut batches, publish each document, then post each root once."""

    def __init__(self, operator, batches, judge: LeafJudge, intake: Intake, options: RelayerOptions,
                 spool: Path | None) -> None:
        self.operator = operator
        self.runtime = operator.runtime
        self.store = operator.store
        self.batches = batches
        self.judge = judge
        self.intake = intake
        self.options = options
        self.spool = spool
        self.counters = intake.counters
        self.web3 = judge.web3

    # ------------------------------------------------------------ the loop

    def step(self, flush: bool) -> None:
        """One pass: take in the spool, finish batches a crash interrupted, cut and post new ones."""
        if self.spool is not None:
            ingest_spool(self.spool, self.intake, lambda: self.runtime.stopping)
        self.finish_batches()
        while not self.runtime.stopping and self.cut_batch(flush) is not None:
            self.finish_batches()
        head = self.runtime.retry(lambda: self.web3.eth.block_number)
        self.runtime.metrics.processed_block.set(head)
        self.runtime.metrics.lag.set(0)
        self.counters.queue.set(self.queue_depth())

    def queue_depth(self) -> int:
        return self.store.one("SELECT COUNT(*) FROM receipts WHERE state = 'queued'")[0]

    # ------------------------------------------------------------ cutting

    def cut_batch(self, flush: bool) -> int | None:
        """Assign the next batch's receipts in one transaction; None when no batch is due."""
        latest = self.runtime.retry(lambda: self.web3.eth.get_block("latest")["timestamp"])
        leaves = self.next_leaves(latest)
        if not leaves:
            return None
        full = len(leaves) == self.options.batch_size
        waited = time.time() - min(received for _, _, received in leaves)
        if not (full or flush or waited >= self.options.max_wait):
            return None
        document = BatchDocument(self.operator.chain_id, str(self.batches.address),
                                 tuple(signed for _, signed, _ in leaves))
        root = "0x" + document.batch().root.hex()
        data_uri = f"{self.options.publish_url}/{document_name(bytes.fromhex(root[2:]))}"
        with self.store.transaction() as db:
            batch_id = db.execute("INSERT INTO batches (root, count, data_uri, state, built_at) "
                                  "VALUES (?, ?, ?, 'built', ?)", (root, len(leaves), data_uri, time.time())).lastrowid
            ids = [(batch_id, row_id) for row_id, _, _ in leaves]
            db.executemany("UPDATE receipts SET state = 'batched', batch = ? WHERE id = ? AND state = 'queued'", ids)
        self.counters.batched.inc(len(leaves))
        self.runtime.log("built", f"batch {batch_id}: {len(leaves)} receipts, root {root}", batch=batch_id, root=root,
                         count=len(leaves))
        return batch_id

    def next_leaves(self, latest: int) -> list[tuple[int, SignedReceipt, float]]:
        """Up to a batch of queued receipts strictly older than the latest block, each judged as if posted
        ``post_margin`` seconds from now; those that fail are set aside (expired or rejected) on the way."""
        posted_at, models, leaves, after = latest + self.options.post_margin, {}, [], 0
        max_age = self.runtime.retry(lambda: self.judge.max_receipt_age_at(posted_at))
        while len(leaves) < self.options.batch_size:
            rows = self.store.all("SELECT id, document, received_at FROM receipts WHERE state = 'queued' AND id > ? "
                                  "AND timestamp < ? ORDER BY id LIMIT ?", after, latest,
                                  self.options.batch_size - len(leaves))
            if not rows:
                break
            for row_id, text, received in rows:
                after = row_id
                signed = signed_of(text)
                fault = self.runtime.retry(lambda: self.judge.fault_of(signed.receipt, signed.signature, posted_at,
                                                                       max_age, models))
                if fault == Fault.NONE:
                    leaves.append((row_id, signed, received))
                else:
                    self.set_aside(row_id, signed, fault)
        return leaves

    def set_aside(self, row_id: int, signed: SignedReceipt, fault: Fault) -> None:
        """A queued receipt that may no longer be posted: too old by the time a batch would be mined (expired), or
        faulty now that the chain has passed its timestamp (rejected)."""
        if fault == Fault.TIMESTAMP_OUT_OF_BOUNDS:
            state, reason = "expired", (f"expired: older than the receipt age limit by the time a batch would be "
                                        f"mined (margin {self.options.post_margin} s)")
        else:
            label, message = fault_reason(fault)
            state, reason = "rejected", f"{label}: {message}"
        with self.store.transaction() as db:
            db.execute("UPDATE receipts SET state = ?, reason = ? WHERE id = ? AND state = 'queued'",
                       (state, reason, row_id))
        request = "0x" + signed.receipt.requestId.hex()
        if state == "expired":
            self.counters.expired.inc()
        else:
            self.counters.rejected.labels(reason.split(":")[0]).inc()
        self.runtime.log(state, f"request {request} of {signed.receipt.payer} dropped, not posted: {reason}",
                         level="warn", request=request, payer=signed.receipt.payer)

    # ------------------------------------------------------------ publishing and posting

    def finish_batches(self) -> None:
        """Publish, then post, every batch cut and not yet on chain (in the order they were cut)."""
        rows = self.store.all("SELECT id, root, count, data_uri, state FROM batches "
                              "WHERE state IN ('built', 'published') ORDER BY id")
        for row in map(lambda r: BatchRow(*r), rows):
            if self.runtime.stopping:
                return
            document = self.document_of(row)
            path, _ = publish(self.options.publish_dir, document)
            if row.state == "built":
                with self.store.transaction() as db:
                    db.execute("UPDATE batches SET state = 'published' WHERE id = ?", (row.id,))
                self.runtime.log("published", f"batch {row.id}: {path.name} at {row.data_uri}", batch=row.id,
                                 uri=row.data_uri)
            if not self.post(row, document):
                return

    def document_of(self, row: BatchRow) -> BatchDocument:
        texts = self.store.all("SELECT document FROM receipts WHERE batch = ? AND state = 'batched' ORDER BY id",
                               row.id)
        document = BatchDocument(self.operator.chain_id, str(self.batches.address),
                                 tuple(signed_of(text) for (text,) in texts))
        root = "0x" + document.batch().root.hex()
        if root != row.root or len(texts) != row.count:
            raise RuntimeError(f"batch {row.id}'s receipts rebuild root {root}, not {row.root}")
        return document

    def post(self, row: BatchRow, document: BatchDocument) -> bool:
        """Post ``row``'s root once (the sender pins the nonce under ``post:<root>``); False if it failed."""
        key = f"post:{row.root}"
        reserved = self.store.one("SELECT nonce, from_block, state FROM sends WHERE key = ?", key)
        head = self.runtime.retry(lambda: self.web3.eth.block_number)
        if not self._sent_or_in_flight(reserved) and self.runtime.retry(
                lambda: self.find_posted(row, reserved[1] if reserved else head)) is None and not self.still_valid(
                row, document):
            # Never broadcast, or broadcast and reverted: it would be judged as posted now, so judge it now.
            with self.store.transaction() as db:
                db.execute("DELETE FROM sends WHERE key = ?", (key,))
            self.dissolve(row)
            return True
        account = self.operator.account

        def transact(nonce: int):
            return transact_with_margin(self.batches.postBatch, nonce, row.root, row.count, row.data_uri, sender=account)

        def done(from_block: int) -> bool:
            return self.find_posted(row, from_block) is not None

        try:
            self.runtime.retry(lambda: self.operator.sender.send_once(
                key, transact, done, sleep=self.runtime.wait, stopping=lambda: self.runtime.stopping))
        except StillPending as error:
            self.runtime.error("post-pending", f"batch {row.id} (root {row.root}): {error}; checked again next pass",
                               batch=row.id)
            return False
        except ContractLogicError as error:
            self.runtime.alert("post-failed", f"batch {row.id} (root {row.root}) was not posted: {explain(error)}; "
                                              "it is retried on the next pass", batch=row.id, root=row.root)
            return False
        from_block = self.store.one("SELECT from_block FROM sends WHERE key = ?", key)[0]
        found = self.runtime.retry(lambda: self.find_posted(row, from_block))
        if found is None:
            raise RuntimeError(f"batch {row.id}'s postBatch left no BatchPosted event from block {from_block}")
        onchain_id, tx_hash = found
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET state = 'posted', onchain_id = ?, tx_hash = ? WHERE id = ?",
                       (onchain_id, tx_hash, row.id))
        self.counters.posted.inc()
        self.runtime.log("posted", f"batch {row.id} is #{onchain_id} on chain: {row.count} receipts, root {row.root}, "
                                   f"tx {tx_hash}", batch=row.id, batch_id=onchain_id, root=row.root, count=row.count,
                         tx=tx_hash, uri=row.data_uri)
        return True

    def _sent_or_in_flight(self, reserved) -> bool:
        """Whether the post reserved as ``reserved`` (nonce, from_block, state) was mined or sits in the mempool:
        then nothing can call it back, and the sender waits for it."""
        if reserved is None:
            return False
        if reserved[2] == "mined":
            return True
        return self.runtime.retry(lambda: self.operator.sender.in_mempool(reserved[0]))

    def find_posted(self, row: BatchRow, from_block: int) -> tuple[int, str] | None:
        """(batch id, transaction) of this relayer's ``BatchPosted`` for ``row``'s root since ``from_block``."""
        relayer_topic = "0x" + bytes(12).hex() + self.operator.account.address[2:].lower()
        logs = self.web3.eth.get_logs({"address": str(self.batches.address), "fromBlock": from_block,
                                       "toBlock": "latest", "topics": ["0x" + BATCH_POSTED_TOPIC.hex(), None,
                                                                       relayer_topic]})
        for log in logs:
            data = bytes(log["data"])
            if "0x" + data[:32].hex() == row.root:
                return int.from_bytes(bytes(log["topics"][1]), "big"), "0x" + bytes(log["transactionHash"]).hex()
        return None

    def still_valid(self, row: BatchRow, document: BatchDocument) -> bool:
        """Every leaf still passes as if posted ``post_margin`` seconds from now (a batch resumed after a long
        stop may hold receipts that have grown too old)."""
        latest = self.runtime.retry(lambda: self.web3.eth.get_block("latest")["timestamp"])
        posted_at, models = latest + self.options.post_margin, {}
        max_age = self.runtime.retry(lambda: self.judge.max_receipt_age_at(posted_at))
        return all(signed.receipt.timestamp < latest and self.runtime.retry(
            lambda: self.judge.fault_of(signed.receipt, signed.signature, posted_at, max_age, models)) == Fault.NONE
            for signed in document.leaves)

    def dissolve(self, row: BatchRow) -> None:
        """Give a never-sent batch's receipts back to the queue, where each is judged again."""
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET state = 'dissolved' WHERE id = ?", (row.id,))
            db.execute("UPDATE receipts SET state = 'queued', batch = NULL WHERE batch = ?", (row.id,))
        self.runtime.log("dissolved", f"batch {row.id} (root {row.root}) was never sent and a leaf would no longer "
                                      "pass: its receipts go back to the queue", level="warn", batch=row.id)


def signed_of(text: str) -> SignedReceipt:
    document = parse_document(json.loads(text))
    return SignedReceipt(document.receipt, document.signature)


def throughput(records: list[dict]) -> dict:
    """Receipts per second of one run without --follow, from its --json log: ``accepted`` receipts over the time
    from the ``start`` line to the last ``accepted`` line (judging and committing), and ``batched`` receipts over
    the time from there to the last ``posted`` line (re-judging, cutting, publishing and posting)."""
    times = lambda event: [r["time"] for r in records if r["event"] == event]  # noqa: E731
    started, accepted, posted = times("start")[0], times("accepted"), times("posted")
    batched = sum(r["count"] for r in records if r["event"] == "built")
    return {"accepted": len(accepted), "accepted_per_s": round(len(accepted) / (accepted[-1] - started), 1),
            "batched": batched, "batched_per_s": round(batched / (posted[-1] - accepted[-1]), 1)}
