"""The keeper: the protocol's permissionless upkeep, each action taken at most once.

It follows the settlement's and the staking contract's events into durable tasks, then carries out the tasks
that are due:

* ``report-missed``: a pending result whose proof deadline has passed and that is still owed
  (``ProofRequested``, not ended by ``ProofDelivered`` or ``ProofMissed``) is reported with
  ``reportMissedProof``: the node is slashed and the payer refunded.
* ``apply-slash``: a slash recorded by ``Slashed`` and still pending is applied with ``applySlash``, so the
  stake leaves the pool and the reporter and treasury are paid without waiting for the pool's next action.
* ``release-payment``: a payment held for a batched request (``BatchReceiptRecorded`` while its batch could
  still be challenged) is released with ``releaseBatchPayment`` once the batch is final or rejected; the
  receipt it needs is decoded from the ``claimBatchReceipt`` transaction that recorded it (a claim made through
  another contract cannot be decoded: the task is closed as ``receipt-unavailable`` with a warning).
* ``refresh``: after a ``MinimumStakeSet``, every registered operator whose activity history disagrees with
  its current activity (``wasActiveOperator`` now versus ``isActiveOperator``) for a role it holds gets
  ``refreshActivity``, so that an operator below the new minimum stops counting as active in history.

Logs are read up to the head minus ``confirmations`` blocks; tasks are recorded in the same SQLite transaction
that advances the scan cursor, so a crash never loses nor duplicates one. Each transaction goes through
``Sender.send_once`` under the task's key, so a restart never sends an action twice. A revert because someone
else did the work first closes the task; any other failure is logged and the task retried at the next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

from ape import project
from ape.exceptions import ContractLogicError
from ape.types import LogFilter
from eth_utils import encode_hex, keccak
from web3.exceptions import TransactionNotFound

from opgkit.cli import explain, is_unreachable
from opgkit.operators.command import Operator
from opgkit.operators.sending import Sent, transact_with_margin

ROLE = "keeper"
CHUNK_BLOCKS = 2_000
ZERO_ADDRESS = "0x" + "00" * 20
BATCH_PENDING = 1  # IInferenceSettlement.Status.Pending

SCHEMA = """
-- The keeper's work, one row per action it may have to take. Rows are only ever added by the scan (in the
-- transaction that advances the cursor, meta key 'cursor' = last block scanned) and closed once.
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY,         -- the action and its subject; also the key of its transaction in `sends`:
                                  --   report-missed:<payer>:<requestId>, apply-slash:<operator>:<block>:<logIndex>,
                                  --   release-payment:<payer>:<requestId>:<block>:<logIndex>,
                                  --   refresh:<operator>:<block>:<logIndex> (the block and log of the event)
    kind TEXT NOT NULL,           -- report-missed | apply-slash | release-payment | refresh
    subject TEXT NOT NULL,        -- the payer (report-missed, release-payment) or the operator (apply-slash, refresh)
    detail TEXT,                  -- the request id (report-missed, release-payment), the role number (refresh)
    batch_id INTEGER,             -- release-payment: the batch whose finality releases the payment
    source_tx TEXT,               -- release-payment: the transaction that recorded it (its input has the receipt)
    due_at INTEGER NOT NULL,      -- chain time after which it may be done (the proof deadline; 0: at once, or
                                  --   for release-payment once its batch is final or rejected)
    found_block INTEGER NOT NULL, -- block of the event that created it
    state TEXT NOT NULL,          -- open | done
    outcome TEXT,                 -- once done: sent (by this keeper) | already-done (the chain showed it done) |
                                  --   done-by-other (our transaction reverted: someone did it first) |
                                  --   delivered | reported-on-chain (ended by ProofDelivered / ProofMissed) |
                                  --   receipt-unavailable (release-payment claimed through another contract)
    tx_hash TEXT                  -- this keeper's transaction, when it sent one
);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (state, due_at);
-- Every operator that ever registered (OperatorRegistered), whose activity a new minimum stake may change.
CREATE TABLE IF NOT EXISTS operators (
    operator TEXT PRIMARY KEY,       -- the operator's address
    registered_block INTEGER NOT NULL -- block of its OperatorRegistered event
);
"""


class Role(IntEnum):
    """``INodeStaking.Role``: bit ``1 << role`` of ``Pool.roles``."""

    INFERENCE_NODE = 0
    TEE_NODE = 1
    SETTLEMENT_RELAYER = 2


WATCHED_EVENTS = {
    "settlement": ("ProofRequested", "ProofDelivered", "ProofMissed", "BatchReceiptRecorded"),
    "staking": ("Slashed", "OperatorRegistered", "MinimumStakeSet"),
}


@dataclass(frozen=True)
class Task:
    key: str
    kind: str
    subject: str
    detail: str | None
    batch_id: int | None
    source_tx: str | None


@dataclass(frozen=True)
class Action:
    """How one kind of task is carried out: whether the chain already shows it done, and its transaction."""

    done: Callable[[], bool]
    transact: Callable[[int], object]
    sent_event: str
    sent_message: str
    skipped_event: str
    skipped_message: str
    ready: Callable[[], bool] = lambda: True


class Keeper:
    """Scans the settlement's and staking's events into tasks and carries out the due ones, each at most once.

    @param operator The started operator (runtime, state, sender, account, settlement contract).
    @param confirmations Blocks below the head left unscanned, so a reorganised block's events are not acted on.
    @param from_block First block scanned when the state has no cursor yet.
    """

    def __init__(self, operator: Operator, confirmations: int, from_block: int) -> None:
        self.op = operator
        self.runtime = operator.runtime
        self.store = operator.store
        self.settlement = operator.settlement
        self.confirmations = confirmations
        self.from_block = from_block
        address = self.runtime.retry(lambda: self.settlement.staking())
        self.staking = project.NodeStaking.at(address)
        self.batches = project.BatchSettlement.at(self.runtime.retry(lambda: self.settlement.batchSettlement()))
        metrics = self.runtime.metrics
        self.sent_total = metrics.counter("transactions_sent", "Transactions this keeper sent", ("kind",))
        self.done_total = metrics.counter("tasks_done", "Tasks closed, by kind and outcome", ("kind", "outcome"))
        self.found_total = metrics.counter("tasks_found", "Tasks recorded from events", ("kind",))
        self.pending = metrics.gauge("tasks_pending", "Tasks recorded and not yet done (due or not)")
        self.pending.set(self._open_count())

    # ------------------------------------------------------------ the loop

    def describe(self) -> str:
        cursor = self.store.get("cursor")
        start = f"resuming after block {cursor}" if cursor is not None else f"starting at block {self.from_block}"
        return (f"settlement {self.settlement.address}, staking {self.staking.address} on chain {self.op.chain_id}; "
                f"{start}, {self._open_count()} open tasks, {self.confirmations} confirmations")

    def step(self) -> None:
        """Scan the new confirmed blocks, then carry out every due task."""
        head = self.runtime.retry(lambda: self.op.provider.get_block("latest"))
        self._scan(head.number)
        if not self.runtime.stopping:
            self._execute_due(head.timestamp)
        self.pending.set(self._open_count())

    # ------------------------------------------------------------ scanning

    def _scan(self, head: int) -> None:
        target = head - self.confirmations
        cursor = int(self.store.get("cursor", self.from_block - 1))
        while cursor < target and not self.runtime.stopping:
            stop = min(cursor + CHUNK_BLOCKS, target)
            logs = self.runtime.retry(lambda: list(self.op.provider.get_contract_logs(self._filter(cursor + 1, stop))))
            with self.store.transaction():
                found = [kind for kind in map(self._record, logs) if kind]
                self.store.put("cursor", stop)
            for kind in found:
                self.found_total.labels(kind=kind).inc()
            if found:
                self.runtime.log("tasks-found", f"blocks {cursor + 1}..{stop}: {len(found)} new tasks",
                                 first_block=cursor + 1, last_block=stop, tasks=len(found))
            cursor = stop
            self.runtime.metrics.processed_block.set(stop)
        self.runtime.metrics.lag.set(max(head - cursor, 0))

    def _filter(self, start: int, stop: int) -> LogFilter:
        events = [getattr(getattr(self, name), event).abi for name, names in WATCHED_EVENTS.items() for event in names]
        selectors = [encode_hex(keccak(text=abi.selector)) for abi in events]
        return LogFilter(addresses=[self.settlement.address, self.staking.address], events=events,
                         topic_filter=[selectors], start_block=start, stop_block=stop)

    def _record(self, log) -> str | None:
        """Write what one event means for the tasks (inside the scan's transaction); the kind of a new task."""
        args, where = log.event_arguments, (log.block_number, log.log_index)
        name = log.event_name
        if name == "ProofRequested":
            payer, rid = str(args["payer"]), _hex(args["requestId"])
            return self._add(f"report-missed:{payer}:{rid}", "report-missed", payer, rid, int(args["deadline"]), where)
        if name in ("ProofDelivered", "ProofMissed"):
            key = f"report-missed:{args['payer']}:{_hex(args['requestId'])}"
            self._end(key, "delivered" if name == "ProofDelivered" else "reported-on-chain")
            return None
        if name == "BatchReceiptRecorded":
            payer, rid = str(args["payer"]), _hex(args["requestId"])
            key = f"release-payment:{payer}:{rid}:{where[0]}:{where[1]}"
            return self._add(key, "release-payment", payer, rid, 0, where, int(args["batchId"]),
                             _hex(log.transaction_hash))
        if name == "Slashed":
            operator = str(args["operator"])
            return self._add(f"apply-slash:{operator}:{where[0]}:{where[1]}", "apply-slash", operator, None, 0, where)
        if name == "OperatorRegistered":
            self.store.db.execute("INSERT OR IGNORE INTO operators VALUES (?, ?)", (str(args["operator"]), where[0]))
            return None
        if name == "MinimumStakeSet":
            operators = [row[0] for row in self.store.all("SELECT operator FROM operators ORDER BY operator")]
            for operator in operators:
                self._add(f"refresh:{operator}:{where[0]}:{where[1]}", "refresh", operator, str(int(args["role"])), 0,
                          where)
            return "refresh" if operators else None
        return None

    def _add(self, key: str, kind: str, subject: str, detail: str | None, due_at: int, where: tuple[int, int],
             batch_id: int | None = None, source_tx: str | None = None) -> str | None:
        cursor = self.store.db.execute(
            "INSERT OR IGNORE INTO tasks (key, kind, subject, detail, batch_id, source_tx, due_at, found_block, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')",
            (key, kind, subject, detail, batch_id, source_tx, due_at, where[0]))
        return kind if cursor.rowcount else None

    def _end(self, key: str, outcome: str) -> None:
        changed = self.store.db.execute("UPDATE tasks SET state = 'done', outcome = ? WHERE key = ? AND state = 'open'",
                                        (outcome, key)).rowcount
        if changed:
            self.done_total.labels(kind=key.split(":")[0], outcome=outcome).inc()

    # ------------------------------------------------------------ carrying out

    def _execute_due(self, now: int) -> None:
        rows = self.store.all("SELECT key, kind, subject, detail, batch_id, source_tx FROM tasks "
                              "WHERE state = 'open' AND due_at < ? "
                              "ORDER BY found_block, key", now)
        for row in rows:
            if self.runtime.stopping:
                return
            self._carry_out(Task(*row))

    def _carry_out(self, task: Task) -> None:
        fields = {"key": task.key, "kind": task.kind}
        action = self._action(task)
        try:
            if not self._ask(action.ready):
                return
            sent, tx_hash = self.op.sender.send_once(task.key, action.transact,
                                                     lambda _from_block: self._ask(action.done))
        except ReceiptUnavailable as error:
            self._close(task, "receipt-unavailable", None)
            self.runtime.log("payment-release-impossible", f"{task.key}: {error}", level="warn", **fields)
            return
        except ContractLogicError as error:
            if self._ask(action.done):
                self._close(task, "done-by-other", None)
                self.runtime.log(action.skipped_event, f"{action.skipped_message} (our transaction reverted: "
                                 f"{_reason(error)})", **fields, outcome="done-by-other")
            else:
                self.runtime.error("task-failed", f"{task.key}: unexpected revert ({_reason(error)}); retrying at "
                                   "the next step", **fields)
            return
        except Exception as error:  # noqa: BLE001 - one task's failure must not stop the others; retried next step
            if not is_unreachable(error) and explain(error) is None:
                raise
            self.runtime.error("task-failed", f"{task.key}: {explain(error)}; retrying at the next step", **fields)
            return
        if sent is Sent.SENT:
            self.sent_total.labels(kind=task.kind).inc()
            self._close(task, "sent", tx_hash)
            self.runtime.log(action.sent_event, f"{action.sent_message} (tx {tx_hash})", **fields, tx=tx_hash,
                             outcome="sent")
        else:
            self._close(task, "already-done", tx_hash)
            self.runtime.log(action.skipped_event, action.skipped_message, **fields, outcome="already-done")

    def _close(self, task: Task, outcome: str, tx_hash: str | None) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE tasks SET state = 'done', outcome = ?, tx_hash = ? WHERE key = ?",
                       (outcome, tx_hash, task.key))
        self.done_total.labels(kind=task.kind, outcome=outcome).inc()

    def _ask(self, question: Callable[[], bool]) -> bool:
        return bool(self.runtime.retry(question))

    def _action(self, task: Task) -> Action:
        settlement, staking = self.settlement, self.staking
        subject = task.subject
        if task.kind == "report-missed":
            rid = task.detail
            return Action(
                done=lambda: settlement.custodyOf(subject, rid).node == ZERO_ADDRESS,
                transact=lambda nonce: self._transact(settlement.reportMissedProof, nonce, subject, rid),
                sent_event="missed-proof-reported",
                sent_message=f"payer {subject} request {rid}: proof missed, node slashed and payer refunded",
                skipped_event="missed-proof-not-owed",
                skipped_message=f"payer {subject} request {rid}: delivered or reported by someone else",
            )
        if task.kind == "apply-slash":
            return Action(
                done=lambda: staking.pendingSlash(subject).fractionBps == 0,
                transact=lambda nonce: self._transact(staking.applySlash, nonce, subject),
                sent_event="slash-applied",
                sent_message=f"operator {subject}: pending slash applied to its pool",
                skipped_event="slash-already-applied",
                skipped_message=f"operator {subject}: no pending slash (already applied)",
            )
        if task.kind == "release-payment":
            rid = task.detail
            return Action(
                ready=lambda: self.batches.batchFinality(task.batch_id)[0] != BATCH_PENDING,
                done=lambda: settlement.custodyOf(subject, rid).held == 0,
                transact=lambda nonce: self._transact(settlement.releaseBatchPayment, nonce,
                                                      self._claimed_receipt(task)),
                sent_event="batch-payment-released",
                sent_message=f"payer {subject} request {rid}: payment held for batch {task.batch_id} released",
                skipped_event="batch-payment-not-held",
                skipped_message=f"payer {subject} request {rid}: payment already released or refunded",
            )
        if task.kind == "refresh":
            return Action(
                done=lambda: not self._activity_stale(subject),
                transact=lambda nonce: self._transact(staking.refreshActivity, nonce, subject),
                sent_event="activity-refreshed",
                sent_message=f"operator {subject}: activity history brought up to the new minimum stake",
                skipped_event="activity-current",
                skipped_message=f"operator {subject}: activity history already current",
            )
        raise ValueError(f"unknown task kind {task.kind!r} in the state")

    def _transact(self, method, nonce: int, *args):
        return transact_with_margin(method, nonce, *args, sender=self.op.account)

    def _claimed_receipt(self, task: Task):
        """The receipt a ``claimBatchReceipt`` recorded, from the claim transaction's input."""
        try:
            tx = self.runtime.retry(lambda: self.op.provider.web3.eth.get_transaction(task.source_tx))
        except TransactionNotFound as error:  # pruned by the node, or reorganised away
            raise ReceiptUnavailable(f"the node no longer has transaction {task.source_tx}; release it by hand") from error
        receiver = tx.get("to")
        if receiver is None or receiver.lower() != str(self.batches.address).lower():
            raise ReceiptUnavailable(f"recorded by transaction {task.source_tx} to {receiver}, not a direct "
                                     "claimBatchReceipt: its receipt is not in the input; release it by hand")
        try:
            _method, arguments = self.batches.decode_input(bytes(tx["input"]))
            receipt = arguments["leaf"][0]
        except Exception as error:  # noqa: BLE001 - any undecodable input means the same thing here
            raise ReceiptUnavailable(f"transaction {task.source_tx} is not a claimBatchReceipt ({error})") from error
        if _hex(receipt[0]).lower() != task.detail.lower():
            raise ReceiptUnavailable(f"transaction {task.source_tx} claimed another request")
        return receipt

    def _activity_stale(self, operator: str) -> bool:
        """True when, for a role it holds, the operator's history says otherwise than its current activity."""
        now = self.op.provider.get_block("latest").timestamp
        roles = self.staking.pool(operator).roles
        staking = self.staking
        return any(roles & (1 << role)
                   and staking.isActiveOperator(operator, role) != staking.wasActiveOperator(operator, role, now)
                   for role in Role)

    def _open_count(self) -> int:
        return self.store.one("SELECT COUNT(*) FROM tasks WHERE state = 'open'")[0]


class ReceiptUnavailable(Exception):
    """A held batch payment whose receipt cannot be recovered from the chain's calldata."""


def _hex(value) -> str:
    """A bytes32 as 0x-prefixed lower-case hex, however the decoder returned it."""
    return encode_hex(value) if isinstance(value, (bytes, bytearray)) else str(value).lower()


def _reason(error: ContractLogicError) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
