"""The watchtower: follow every batch, check every leaf, challenge the first fault before the window closes.

For each ``BatchPosted`` in a confirmed block it fetches the batch document behind ``dataUri``, checks that the
leaves rebuild the posted root and count, judges every leaf with the shared ``LeafJudge`` (the contract's own
rules, in Python), asks the contract's ``faultOf`` to confirm the first fault, and challenges it with its own
account. Data that is missing, unreachable or does not match the root is an alert (the protocol's answer to
withheld data is that no faulty leaf can ever be claimed; the watchtower still reports it loudly), as is a batch
whose window closes before it could be checked.

Duplicate requests (the same payer and requestId twice in one batch, or in two batches) are not a fault under
the protocol — only one of them can ever be claimed, and copying an honest leaf must never get a relayer
slashed — so they are reported as warnings and counted, never challenged.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ape import project
from ape.exceptions import ContractLogicError
from eth_abi import decode
from eth_utils import to_checksum_address

from opgkit.batch_document import BATCH_POSTED_TOPIC, BatchDataError, fetch, parse
from opgkit.cli import UserError, is_unreachable, shown
from opgkit.cli.errors import debugging
from opgkit.leaf_faults import Contracts, LeafJudge
from opgkit.operators.command import Operator
from opgkit.operators.sending import StillPending, transact_with_margin
from opgkit.receipts import Fault, ReceiptBatch

SCHEMA = """
-- Next block whose BatchPosted events are still to be read (everything before it is in `batches`).
CREATE TABLE IF NOT EXISTS cursor (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    next_block INTEGER NOT NULL
);
-- One row per batch seen on chain.
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,      -- BatchSettlement batch id
    relayer TEXT NOT NULL,
    root TEXT NOT NULL,                -- 0x-hex Merkle root as posted
    count INTEGER NOT NULL,            -- leaf count as posted
    data_uri TEXT NOT NULL,            -- as posted (undecodable bytes replaced), at most MAX_URI characters
    block INTEGER NOT NULL,            -- block of its BatchPosted event
    posted_at INTEGER NOT NULL,        -- batch(batchId).postedAt
    deadline INTEGER NOT NULL,         -- last second a challenge is accepted
    state TEXT NOT NULL,               -- new | unavailable (data not had yet) | honest | challenged | rejected (by
                                       -- someone else) | mismatch (data not matching the root) | expired (window
                                       -- closed unchecked) | missed (fault found, window closed before a challenge
                                       -- landed) | disputed (no flagged leaf confirmed by faultOf)
    fault TEXT,                        -- Fault name of the leaf challenged (or found)
    request_id TEXT,                   -- that leaf's requestId
    detail TEXT,                       -- last reason, for people
    attempts INTEGER NOT NULL DEFAULT 0,  -- data fetch attempts
    tx_hash TEXT                       -- the challenge transaction
);
-- Every (payer, requestId) seen in a verified batch: duplicates across batches are reported.
CREATE TABLE IF NOT EXISTS requests (
    payer TEXT NOT NULL,
    request_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    PRIMARY KEY (payer, request_id, batch_id)
);
"""

OPEN_STATES = ("new", "unavailable")
LOG_CHUNK = 2_000
MAX_URI = 2_000
FETCH_WORKERS = 8
MAX_CANDIDATES = 32  # flagged leaves confirmed with faultOf before a batch is called disputed


@dataclass
class Settings:
    confirmations: int = 2
    from_block: int | None = None
    fetch_timeout: float = 10.0
    fetch_attempts: int = 3
    follow: bool = False
    allow_files: bool = False


@dataclass
class Verdict:
    """What checking a batch's data found: the leaves the judge flagged (index, fault), in order."""

    batch: ReceiptBatch
    flagged: list


@dataclass(frozen=True)
class OpenBatch:
    batch_id: int
    relayer: str
    root: str
    count: int
    uri: str
    posted_at: int
    deadline: int
    attempts: int
    state: str


class DataMismatch(Exception):
    """The batch data was had but is not the batch posted (unparsable, or another root)."""


class Watchtower:
    def __init__(self, operator: Operator, settings: Settings) -> None:
        self.op = operator
        self.settings = settings
        self.runtime = operator.runtime
        self.store = operator.store
        contracts = self.runtime.retry(lambda: Contracts.of(operator.settlement))
        if contracts.batches is None:
            raise UserError(f"InferenceSettlement {operator.settlement.address} has no BatchSettlement connected: "
                            "there are no batches to watch")
        self.batches = project.BatchSettlement.at(contracts.batches)
        self.judge = LeafJudge(operator.provider.web3, contracts)
        metrics = self.runtime.metrics
        self.seen = metrics.counter("batches_seen", "Batches read from BatchPosted events")
        self.verified = metrics.counter("batches_verified", "Batches whose every leaf was checked and found valid")
        self.challenged = metrics.counter("batches_challenged", "Batches this watchtower challenged successfully")
        self.leaves = metrics.counter("leaves_checked", "Leaves judged")
        self.unavailable = metrics.counter("batches_data_unavailable", "Batch data fetches that failed")
        self.duplicates = metrics.counter("duplicate_leaves", "Leaves repeating a (payer, requestId) already seen")
        self.open = metrics.gauge("batches_open", "Batches seen and not yet settled by the watchtower")
        if self.store.one("SELECT next_block FROM cursor") is None:
            with self.store.transaction() as db:
                db.execute("INSERT INTO cursor VALUES (0, ?)", (settings.from_block or 0,))
                self.store.put("first_block", settings.from_block or 0)
        elif settings.from_block is not None:
            self.runtime.log("from-block-ignored", f"--from-block {settings.from_block} ignored: the state file "
                             f"continues from block {self._next_block()}", level="warn")

    # ------------------------------------------------------------ one pass

    def step(self) -> None:
        """Read new batches, then check every open one, nearest deadline first (new batches before retries); after
        a reorg is found, once more over the blocks read again."""
        for _ in range(3):
            self._reorged = False
            self._pass()
            if not self._reorged or self.runtime.stopping:
                return

    def _pass(self) -> None:
        head = self.runtime.retry(lambda: self.op.provider.get_block("latest"))
        self._check_reorgs(head.timestamp)
        self._read_batches(head.number - self.settings.confirmations)
        self.runtime.metrics.lag.set(max(0, head.number - self._next_block() + 1))
        self.runtime.metrics.processed_block.set(self._next_block() - 1)
        rows = self.store.all("SELECT batch_id, relayer, root, count, data_uri, posted_at, deadline, attempts, state "
                              f"FROM batches WHERE state IN {OPEN_STATES} ORDER BY state <> 'new', deadline, batch_id")
        pending = [batch for batch in map(lambda row: OpenBatch(*row), rows) if self._still_open(batch, head.timestamp)]
        # A window of documents at a time: fetched in parallel, judged, then dropped (memory stays bounded).
        for first in range(0, len(pending), FETCH_WORKERS):
            window = pending[first:first + FETCH_WORKERS]
            documents = self._fetch_all(window)
            for batch in window:
                if self.runtime.stopping:
                    return
                self._guarded(batch.batch_id, lambda: self._watch(batch, documents[batch.batch_id]))
            del documents
        self.open.set(self.store.one(f"SELECT count(*) FROM batches WHERE state IN {OPEN_STATES}")[0])

    def _guarded(self, batch_id: int, work) -> None:
        try:
            work()
        except Exception as error:  # noqa: BLE001 - one batch must never stop the watch over the others
            if is_unreachable(error):
                raise
            if debugging():
                traceback.print_exc()
            self.runtime.alert("batch-error", f"batch {batch_id} could not be checked ({type(error).__name__}: "
                               f"{shown(error)}); retrying next pass, the other batches go on (OPG_DEBUG=1 prints "
                               "the traceback)", batch=batch_id)

    def _next_block(self) -> int:
        return self.store.one("SELECT next_block FROM cursor")[0]

    def _read_batches(self, confirmed: int) -> None:
        """Record every BatchPosted up to block ``confirmed``, advancing the cursor with each chunk. The event is
        decoded here, leniently: a dataUri that is not UTF-8 must not stop the watch."""
        start = self._next_block()
        while start <= confirmed and not self.runtime.stopping:
            stop = min(confirmed, start + LOG_CHUNK - 1)
            logs = self.runtime.retry(lambda: self.op.provider.web3.eth.get_logs({
                "address": str(self.batches.address), "fromBlock": start, "toBlock": stop,
                "topics": ["0x" + BATCH_POSTED_TOPIC.hex()]}))
            rows = []
            for log in logs:
                batch_id = int.from_bytes(bytes(log["topics"][1]), "big")
                onchain = self.runtime.retry(lambda: self.batches.batch(batch_id))
                if onchain.postedAt == 0:  # a node behind the log's block: read again next pass
                    stop = log["blockNumber"] - 1
                    break
                root, count, uri = decode(["bytes32", "uint32", "bytes"], bytes(log["data"]))
                rows.append((batch_id, to_checksum_address(bytes(log["topics"][2])[-20:]), "0x" + root.hex(), count,
                             uri.decode("utf-8", errors="replace")[:MAX_URI + 1], log["blockNumber"],
                             int(onchain.postedAt), int(onchain.challengeDeadline)))
            with self.store.transaction() as db:
                for row in rows:
                    if db.execute("INSERT OR IGNORE INTO batches (batch_id, relayer, root, count, data_uri, block, "
                                  "posted_at, deadline, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'new')", row).rowcount:
                        self.seen.inc()
                db.execute("UPDATE cursor SET next_block = ?", (stop + 1,))
            for row in rows:
                self.runtime.log("batch-seen", f"batch {row[0]} by {row[1]}: {row[3]} leaves at {row[4][:200]}, "
                                 f"challengeable until {row[7]}", batch=row[0], relayer=row[1], count=row[3])
            if stop < start:
                return
            start = stop + 1

    # ------------------------------------------------------------ one batch

    def _still_open(self, batch: OpenBatch, now: int) -> bool:
        """False once the batch needs no more work: rejected on chain, replaced by a reorg, or its window closed."""
        onchain = self.runtime.retry(lambda: self.batches.batch(batch.batch_id))
        if "0x" + bytes(onchain.root).hex() != batch.root or onchain.postedAt != batch.posted_at:
            self._forget_reorged(batch.batch_id)
            return False
        if onchain.rejected:
            self._record_rejection(batch.batch_id)
            return False
        if now > batch.deadline:
            self._settle(batch.batch_id, "expired", "the challenge window closed before its data could be checked")
            self.runtime.alert("window-closed", f"batch {batch.batch_id} by {batch.relayer}: its challenge window "
                               f"closed (at {batch.deadline}) before its data could be checked; it is final unchecked",
                               batch=batch.batch_id)
            return False
        return True

    def _check_reorgs(self, now: int) -> None:
        """Every batch still challengeable must be the one on chain: a reorg deeper than --confirmations may have
        given its id to another batch, even after it was judged."""
        rows = self.store.all("SELECT batch_id, root, posted_at, state FROM batches WHERE deadline >= ? AND state <> "
                              "'rejected' ORDER BY batch_id", now)
        for batch_id, root, posted_at, state in rows:
            onchain = self.runtime.retry(lambda: self.batches.batch(batch_id))
            if onchain.postedAt == 0:  # a node behind the block that posted it: nothing to conclude yet
                return
            replaced = "0x" + bytes(onchain.root).hex() != root or onchain.postedAt != posted_at
            if replaced or (state == "challenged" and not onchain.rejected):  # our challenge was reorganised away
                self._forget_reorged(batch_id)
                return

    def _forget_reorged(self, batch_id: int) -> None:
        """The chain no longer holds the batch read as ``batch_id`` (a reorg deeper than --confirmations): forget it
        and every later one, and read again from the block of the batch before it (ids are sequential, so the new
        ``batch_id`` cannot come earlier)."""
        previous = self.store.one("SELECT max(block) FROM batches WHERE batch_id < ?", batch_id)[0]
        block = previous if previous is not None else int(self.store.get("first_block", "0"))
        with self.store.transaction() as db:
            db.execute("DELETE FROM batches WHERE batch_id >= ?", (batch_id,))
            db.execute("DELETE FROM requests WHERE batch_id >= ?", (batch_id,))
            # A challenge of the old batch under this id says nothing about the new one.
            db.execute("DELETE FROM sends WHERE key LIKE 'challenge:%' AND CAST(substr(key, 11) AS INTEGER) >= ?",
                       (batch_id,))
            db.execute("UPDATE cursor SET next_block = min(next_block, ?)", (block,))
        self._reorged = True
        self.runtime.alert("reorg", f"batch {batch_id} changed on chain since it was read (a reorg deeper than "
                           f"--confirmations); reading again from block {block}", batch=batch_id)

    def _fetch_all(self, batches: list[OpenBatch]) -> dict:
        """Every open batch's document, fetched in parallel (a slow or black-holed dataUri costs one timeout, not
        one per batch): bytes, or the BatchDataError of its last attempt. A one-shot run retries each failure up to
        --fetch-attempts times; a follower tries once per pass."""
        results: dict = {}
        remaining = list(batches)
        attempts = 1 if self.settings.follow else self.settings.fetch_attempts
        for attempt in range(1, attempts + 1):
            with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
                for batch, outcome in zip(remaining, pool.map(self._fetch_one, remaining)):
                    results[batch.batch_id] = outcome
            remaining = [batch for batch in remaining if isinstance(results[batch.batch_id], BatchDataError)]
            if not remaining or attempt == attempts or self.runtime.stopping:
                break
            for batch in remaining:
                self.runtime.error("data-retry", f"batch {batch.batch_id}: {results[batch.batch_id]}; attempt "
                                   f"{attempt} of {attempts}", batch=batch.batch_id)
            self.runtime.wait(min(0.5 * 2 ** (attempt - 1), 10))
        return results

    def _fetch_one(self, batch: OpenBatch):
        if len(batch.uri) > MAX_URI:
            return BatchDataError(f"the dataUri is longer than {MAX_URI:,} characters")
        try:
            return fetch(batch.uri, self.settings.fetch_timeout, allow_files=self.settings.allow_files)
        except BatchDataError as error:
            return error
        except Exception as error:  # noqa: BLE001 - whatever a relayer-chosen address does, it is unavailable data
            return BatchDataError(f"the dataUri cannot be fetched ({type(error).__name__}: {shown(error)})")

    def _watch(self, batch: OpenBatch, document) -> None:
        if isinstance(document, BatchDataError):
            self.unavailable.inc()
            attempts = batch.attempts + (1 if self.settings.follow else self.settings.fetch_attempts)
            self._data_unavailable(batch, attempts, str(document))
            return
        started = time.perf_counter()
        try:
            verdict = self._check(batch, document)
        except DataMismatch as error:
            self._settle(batch.batch_id, "mismatch", str(error))
            self.runtime.alert("data-mismatch", f"batch {batch.batch_id} by {batch.relayer}: {error}; its leaves "
                               "cannot be checked, and none can be claimed without a proof under the root",
                               batch=batch.batch_id, uri=batch.uri[:200])
            return
        seconds = time.perf_counter() - started
        if not verdict.flagged:
            self._settle(batch.batch_id, "honest", f"{len(verdict.batch)} leaves valid")
            self.verified.inc()
            self.runtime.log("batch-valid", f"batch {batch.batch_id}: all {len(verdict.batch)} leaves valid "
                             f"({seconds:.2f} s)", batch=batch.batch_id, leaves=len(verdict.batch),
                             seconds=round(seconds, 3))
            return
        self._challenge(batch.batch_id, verdict)

    def _check(self, batch: OpenBatch, raw: bytes) -> Verdict:
        try:
            tree = parse(raw, self.op.chain_id, str(self.batches.address)).batch()
        except BatchDataError as error:
            raise DataMismatch(str(error)) from error
        if "0x" + tree.root.hex() != batch.root:
            raise DataMismatch(f"the data rebuilds root 0x{tree.root.hex()}, not the posted {batch.root}")
        if len(tree) != batch.count:
            # The root is what a challenge proves against; the count is only announced. Still judge every leaf.
            self.runtime.alert("count-mismatch", f"batch {batch.batch_id} by {batch.relayer}: posted as {batch.count} "
                               f"leaves, its tree has {len(tree)}; judging them all", batch=batch.batch_id)
        verdict = Verdict(tree, [])
        max_age = self.runtime.retry(lambda: self.judge.max_receipt_age_at(batch.posted_at))
        models: dict = {}
        seen = set()
        for index, signed in enumerate(tree.signed):
            fault = self.runtime.retry(
                lambda: self.judge.fault_of(signed.receipt, signed.signature, batch.posted_at, max_age, models))
            self.leaves.inc()
            if fault != Fault.NONE and len(verdict.flagged) < MAX_CANDIDATES:
                verdict.flagged.append((index, fault))
            key = (signed.receipt.payer, "0x" + signed.receipt.requestId.hex())
            if key in seen or self.store.one("SELECT 1 FROM requests WHERE payer = ? AND request_id = ? AND "
                                             "batch_id <> ?", *key, batch.batch_id):
                self.duplicates.inc()
                self.runtime.log("duplicate-request", f"batch {batch.batch_id} leaf {index}: request {key[1]} of "
                                 f"payer {key[0]} appears again; not a fault (only one can be claimed)", level="warn",
                                 batch=batch.batch_id, payer=key[0], request_id=key[1])
            seen.add(key)
        with self.store.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO requests VALUES (?, ?, ?)",
                           [(payer, request_id, batch.batch_id) for payer, request_id in seen])
        return verdict

    def _data_unavailable(self, batch: OpenBatch, attempts: int, reason: str) -> None:
        """Alert about data that cannot be had: once when a follower has tried --fetch-attempts times, at every
        run of a one-shot watchtower (each run reports what is wrong now). Retried until the window closes."""
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET state = 'unavailable', attempts = ?, detail = ? WHERE batch_id = ?",
                       (attempts, reason, batch.batch_id))
        message = f"batch {batch.batch_id} by {batch.relayer}: {reason}"
        if self.settings.follow and attempts != self.settings.fetch_attempts:
            self.runtime.error("data-unavailable", f"{message} (attempt {attempts}); retrying", batch=batch.batch_id)
            return
        self.runtime.alert("data-unavailable", f"{message}: its leaves cannot be checked; retrying until its window "
                           "closes", batch=batch.batch_id, uri=batch.uri[:200], attempts=attempts)

    def _confirmed_fault(self, batch_id: int, verdict: Verdict) -> tuple[int, Fault] | None:
        """The first flagged leaf the contract's own faultOf confirms: the contract is the arbiter."""
        for index, fault in verdict.flagged:
            leaf = verdict.batch.leaf(index)
            onchain = Fault(self.runtime.retry(lambda: self.batches.faultOf(batch_id, leaf)))
            if onchain != Fault.NONE:
                if onchain != fault:
                    self.runtime.log("judge-differs", f"batch {batch_id} leaf {index}: judged {fault.name} here, "
                                     f"faultOf says {onchain.name}; the contract's answer is used", level="warn",
                                     batch=batch_id)
                return index, onchain
        return None

    def _challenge(self, batch_id: int, verdict: Verdict) -> None:
        confirmed = self._confirmed_fault(batch_id, verdict)
        if confirmed is None:
            self._settle(batch_id, "disputed", f"{len(verdict.flagged)} leaves flagged, none confirmed by faultOf")
            self.runtime.alert("judge-disagrees", f"batch {batch_id}: {len(verdict.flagged)} leaves judged faulty here "
                               "but faultOf finds none; not challenged (report this as a bug)", batch=batch_id)
            return
        index, fault = confirmed
        signed, leaf = verdict.batch.signed[index], verdict.batch.leaf(index)
        request = "0x" + signed.receipt.requestId.hex()
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET fault = ?, request_id = ? WHERE batch_id = ?", (fault.name, request, batch_id))

        def transact(nonce: int):
            return transact_with_margin(self.batches.challenge, nonce, batch_id, leaf, sender=self.op.account)

        def done(from_block: int) -> bool:
            return bool(self.batches.batch(batch_id).rejected)

        try:
            outcome, tx_hash = self.op.sender.send_once(f"challenge:{batch_id}", transact, done,
                                                        sleep=self.runtime.wait,
                                                        stopping=lambda: self.runtime.stopping)
        except StillPending as error:
            self.runtime.error("challenge-pending", f"batch {batch_id}: {error}; checked again next pass",
                               batch=batch_id)
            return
        except ContractLogicError as error:
            reason = str(error)
            if "BatchSettlementBatchRejected" in reason or self.batches.batch(batch_id).rejected:
                self._record_rejection(batch_id)
            elif "BatchSettlementChallengeWindowClosed" in reason:
                self._settle(batch_id, "missed", f"{fault.name} in leaf {index}, challenged after the window closed")
                self.runtime.alert("challenge-too-late", f"batch {batch_id}: leaf {index} (request {request}) is "
                                   f"{fault.name} but the challenge window closed first; the batch is final (its "
                                   "faulty leaf still cannot be claimed)", batch=batch_id)
            else:
                self.runtime.alert("challenge-failed", f"batch {batch_id}: leaf {index} (request {request}) is "
                                   f"{fault.name} but the challenge reverted ({shown(error)}); trying again next pass",
                                   batch=batch_id)
            return
        self._settle(batch_id, "challenged", f"{fault.name} in leaf {index}", tx_hash=tx_hash)
        self.challenged.inc()
        self.runtime.log("batch-challenged", f"batch {batch_id}: leaf {index} (request {request}) is {fault.name}; "
                         f"challenged ({outcome.value}), the batch is rejected and its relayer slashed",
                         batch=batch_id, fault=fault.name, request_id=request, tx=tx_hash)

    def _record_rejection(self, batch_id: int) -> None:
        """The batch is rejected on chain: by this watchtower before a restart, or by someone else."""
        block = self.store.one("SELECT block FROM batches WHERE batch_id = ?", batch_id)[0]
        head = self.runtime.retry(lambda: self.op.provider.get_block("latest").number)
        logs = self.runtime.retry(lambda: list(self.batches.BatchChallenged.range(
            block, head + 1, search_topics={"batchId": batch_id})))
        log = logs[0] if logs else None
        if log is not None and str(log.challenger) == str(self.op.account.address):
            fault = Fault(int(log.fault)).name
            self._settle(batch_id, "challenged", f"{fault}, challenged before a restart", fault=fault,
                         request_id="0x" + bytes(log.requestId).hex(), tx_hash=str(log.transaction_hash))
            self.runtime.log("batch-challenged", f"batch {batch_id}: challenged by this watchtower before it "
                             f"restarted ({fault})", batch=batch_id, fault=fault)
            return
        by = f" by {log.challenger}" if log is not None else ""
        self._settle(batch_id, "rejected", f"rejected on chain{by}")
        self.runtime.log("batch-rejected", f"batch {batch_id} was already rejected{by}", batch=batch_id)

    def _settle(self, batch_id: int, state: str, detail: str, fault: str | None = None, request_id: str | None = None,
                tx_hash: str | None = None) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET state = ?, detail = ?, fault = coalesce(?, fault), request_id = "
                       "coalesce(?, request_id), tx_hash = coalesce(?, tx_hash) WHERE batch_id = ?",
                       (state, detail, fault, request_id, tx_hash, batch_id))
