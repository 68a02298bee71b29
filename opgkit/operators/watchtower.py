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
from dataclasses import dataclass

from ape import project
from ape.exceptions import ContractLogicError

from opgkit.batch_document import BatchDataError, fetch, parse
from opgkit.cli import UserError, is_unreachable, shown
from opgkit.leaf_faults import Contracts, LeafJudge
from opgkit.operators.command import Operator
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
    data_uri TEXT NOT NULL,
    block INTEGER NOT NULL,            -- block of its BatchPosted event
    posted_at INTEGER NOT NULL,        -- batch(batchId).postedAt
    deadline INTEGER NOT NULL,         -- last second a challenge is accepted
    state TEXT NOT NULL,               -- new | honest | challenged | rejected (by someone else) | unavailable
                                       -- | mismatch | expired (window closed unchecked) | missed (fault, not challenged)
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

OPEN_STATES = ("new", "unavailable", "mismatch")
LOG_CHUNK = 2_000


@dataclass
class Settings:
    confirmations: int = 2
    from_block: int = 0
    fetch_timeout: float = 10.0
    fetch_attempts: int = 3
    follow: bool = False
    allow_files: bool = False


@dataclass
class Verdict:
    """What checking a batch's data found: the first faulty leaf (index into the batch) and its fault."""

    batch: ReceiptBatch
    fault: Fault = Fault.NONE
    index: int | None = None
    duplicates: int = 0


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
        with self.store.transaction() as db:
            db.execute("INSERT OR IGNORE INTO cursor VALUES (0, ?)", (settings.from_block,))

    # ------------------------------------------------------------ one pass

    def step(self) -> None:
        head = self.runtime.retry(lambda: self.op.provider.get_block("latest"))
        confirmed = head.number - self.settings.confirmations
        self._read_batches(confirmed)
        self.runtime.metrics.lag.set(max(0, head.number - self._next_block() + 1))
        self.runtime.metrics.processed_block.set(self._next_block() - 1)
        now = head.timestamp
        for (batch_id,) in self.store.all(
                f"SELECT batch_id FROM batches WHERE state IN {OPEN_STATES} ORDER BY batch_id"):
            if self.runtime.stopping:
                return
            try:
                self._watch(batch_id, now)
            except Exception as error:  # noqa: BLE001 - one batch must never stop the watch over the others
                if is_unreachable(error):
                    raise
                self.runtime.alert("batch-error", f"batch {batch_id} could not be checked ({type(error).__name__}: "
                                   f"{shown(error)}); retrying next pass, the other batches go on", batch=batch_id)
        self.open.set(self.store.one(f"SELECT count(*) FROM batches WHERE state IN {OPEN_STATES}")[0])

    def _next_block(self) -> int:
        return self.store.one("SELECT next_block FROM cursor")[0]

    def _read_batches(self, confirmed: int) -> None:
        """Record every BatchPosted up to block ``confirmed``, advancing the cursor with each chunk."""
        start = self._next_block()
        while start <= confirmed and not self.runtime.stopping:
            stop = min(confirmed, start + LOG_CHUNK - 1)
            logs = self.runtime.retry(lambda: list(self.batches.BatchPosted.range(start, stop + 1)))
            rows = []
            for log in logs:
                batch_id = int(log.event_arguments["batchId"])
                onchain = self.runtime.retry(lambda: self.batches.batch(batch_id))
                args = log.event_arguments
                rows.append((batch_id, str(args["relayer"]), "0x" + bytes(args["root"]).hex(), int(args["count"]),
                             str(args["dataUri"]), log.block_number, int(onchain.postedAt),
                             int(onchain.challengeDeadline)))
            with self.store.transaction() as db:
                for row in rows:
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO batches (batch_id, relayer, root, count, data_uri, block, posted_at, "
                        "deadline, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'new')", row).rowcount
                    if inserted:
                        self.seen.inc()
                db.execute("UPDATE cursor SET next_block = ?", (stop + 1,))
            for row in rows:
                self.runtime.log("batch-seen", f"batch {row[0]} by {row[1]}: {row[3]} leaves at {row[4]}, "
                                 f"challengeable until {row[7]}", batch=row[0], relayer=row[1], count=row[3])
            start = stop + 1

    # ------------------------------------------------------------ one batch

    def _watch(self, batch_id: int, now: int) -> None:
        relayer, root, count, uri, posted_at, deadline, attempts = self.store.one(
            "SELECT relayer, root, count, data_uri, posted_at, deadline, attempts FROM batches WHERE batch_id = ?",
            batch_id)
        if self.runtime.retry(lambda: self.batches.batch(batch_id)).rejected:
            self._record_rejection(batch_id)
            return
        if now > deadline:
            self._settle(batch_id, "expired", "the challenge window closed before its data could be checked")
            self.runtime.alert("window-closed", f"batch {batch_id} by {relayer}: its challenge window closed "
                               f"(at {deadline}) before its data could be checked; it is final unchecked",
                               batch=batch_id)
            return
        started = time.perf_counter()
        for attempt in range(1, self.settings.fetch_attempts + 1):
            try:
                verdict = self._check(batch_id, root, count, uri, posted_at)
                break
            except BatchDataError as error:
                self.unavailable.inc()
                if attempt == self.settings.fetch_attempts or self.runtime.stopping:
                    self._data_problem(batch_id, relayer, uri, attempts + attempt, str(error))
                    return
                self.runtime.error("data-retry", f"batch {batch_id}: {error}; attempt {attempt} of "
                                   f"{self.settings.fetch_attempts}", batch=batch_id)
                self.runtime.wait(min(0.5 * 2 ** (attempt - 1), 10))
        seconds = time.perf_counter() - started
        if verdict.fault == Fault.NONE:
            self._settle(batch_id, "honest", f"{count} leaves valid")
            self.verified.inc()
            self.runtime.log("batch-valid", f"batch {batch_id}: all {count} leaves valid ({seconds:.2f} s)",
                             batch=batch_id, leaves=count, seconds=round(seconds, 3))
            return
        self._challenge(batch_id, verdict)

    def _check(self, batch_id: int, root: str, count: int, uri: str, posted_at: int) -> Verdict:
        raw = fetch(uri, self.settings.fetch_timeout, allow_files=self.settings.allow_files)
        document = parse(raw, self.op.chain_id, str(self.batches.address))
        batch = document.batch()
        if "0x" + batch.root.hex() != root or len(batch) != count:
            raise BatchDataError(f"the data at {uri} rebuilds root 0x{batch.root.hex()} with {len(batch)} leaves, "
                                 f"not the posted {root} with {count}")
        verdict = Verdict(batch)
        max_age = self.runtime.retry(lambda: self.judge.max_receipt_age_at(posted_at))
        models: dict = {}
        seen = set()
        for index, signed in enumerate(batch.signed):
            fault = self.runtime.retry(
                lambda: self.judge.fault_of(signed.receipt, signed.signature, posted_at, max_age, models))
            self.leaves.inc()
            if fault != Fault.NONE and verdict.index is None:
                verdict.fault, verdict.index = fault, index
            key = (signed.receipt.payer, "0x" + signed.receipt.requestId.hex())
            if key in seen or self.store.one("SELECT 1 FROM requests WHERE payer = ? AND request_id = ? AND "
                                             "batch_id <> ?", *key, batch_id):
                verdict.duplicates += 1
                self.duplicates.inc()
                self.runtime.log("duplicate-request", f"batch {batch_id} leaf {index}: request {key[1]} of payer "
                                 f"{key[0]} appears again; not a fault (only one can be claimed)", level="warn",
                                 batch=batch_id, payer=key[0], request_id=key[1])
            seen.add(key)
        with self.store.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO requests VALUES (?, ?, ?)",
                           [(payer, request_id, batch_id) for payer, request_id in seen])
        return verdict

    def _data_problem(self, batch_id: int, relayer: str, uri: str, attempts: int, reason: str) -> None:
        """Alert about data that cannot be had or does not match: once when a follower first meets it, at every
        run of a one-shot watchtower (each run reports what is wrong now). Retried until the window closes."""
        state = "mismatch" if "rebuilds root" in reason else "unavailable"
        previous = self.store.one("SELECT state FROM batches WHERE batch_id = ?", batch_id)[0]
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET state = ?, attempts = ?, detail = ? WHERE batch_id = ?",
                       (state, attempts, reason, batch_id))
        message = f"batch {batch_id} by {relayer}: {reason}"
        if previous == state and self.settings.follow:
            self.runtime.error(f"data-{state}", f"{message} (attempt {attempts}); retrying", batch=batch_id)
            return
        consequence = ("its leaves cannot be checked, and none can be claimed without matching the root"
                       if state == "mismatch" else "its leaves cannot be checked")
        self.runtime.alert(f"data-{state}", f"{message}: {consequence}; retrying until its window closes",
                           batch=batch_id, uri=uri, attempts=attempts)

    def _challenge(self, batch_id: int, verdict: Verdict) -> None:
        index = verdict.index
        signed = verdict.batch.signed[index]
        leaf = verdict.batch.leaf(index)
        request = "0x" + signed.receipt.requestId.hex()
        onchain = Fault(self.runtime.retry(lambda: self.batches.faultOf(batch_id, leaf)))
        if onchain != verdict.fault:
            self._settle(batch_id, "missed", f"judged {verdict.fault.name}, the contract says {onchain.name}")
            self.runtime.alert("judge-disagrees", f"batch {batch_id} leaf {index}: judged {verdict.fault.name} here but "
                               f"faultOf says {onchain.name}; not challenged (report this as a bug)", batch=batch_id)
            return

        def transact(nonce: int):
            return self.batches.challenge(batch_id, leaf, sender=self.op.account, nonce=nonce)

        def done(from_block: int) -> bool:
            return bool(self.batches.batch(batch_id).rejected)

        try:
            outcome, tx_hash = self.op.sender.send_once(f"challenge:{batch_id}", transact, done)
        except ContractLogicError as error:
            reason = str(error)
            if "BatchSettlementBatchRejected" in reason or self.batches.batch(batch_id).rejected:
                self._record_rejection(batch_id)
                return
            if "BatchSettlementChallengeWindowClosed" in reason:
                self._settle(batch_id, "missed", f"{verdict.fault.name} in leaf {index}, found after the window closed",
                             fault=verdict.fault.name, request_id=request)
                self.runtime.alert("challenge-too-late", f"batch {batch_id}: leaf {index} (request {request}) is "
                                   f"{verdict.fault.name} but the challenge window closed first; the batch is final "
                                   "(its faulty leaf still cannot be claimed)", batch=batch_id)
                return
            self.runtime.error("challenge-failed", f"batch {batch_id}: the challenge reverted ({reason[:200]}); "
                               "trying again", batch=batch_id)
            return
        self._settle(batch_id, "challenged", f"{verdict.fault.name} in leaf {index}", fault=verdict.fault.name,
                     request_id=request, tx_hash=tx_hash)
        self.challenged.inc()
        self.runtime.log("batch-challenged", f"batch {batch_id}: leaf {index} (request {request}) is "
                         f"{verdict.fault.name}; challenged ({outcome.value}), the batch is rejected and its relayer "
                         "slashed", batch=batch_id, fault=verdict.fault.name, request_id=request, tx=tx_hash)

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
