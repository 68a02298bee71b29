"""Transactions an operator sends at most once, across crashes and restarts.

Before a transaction is sent, the nonce it will use is committed to the operator's state under a key naming
the action (``post:<root>``, ``challenge:<batchId>``, ``report-missed:<payer>:<requestId>``). A restart finds
the key: if the chain shows the action done (``done()``), nothing is sent; if the account's nonce has not moved,
the same transaction is sent again with the same nonce, so at most one of the two can ever be mined; if the
nonce was used by something else, the action is checked and sent afresh. The signing account should serve only
this operator, so that its nonces are this operator's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

from opgkit.operators.store import Store
from opgkit.quiet import stdout_to_stderr

SENDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    key TEXT PRIMARY KEY,          -- the action, e.g. challenge:7
    nonce INTEGER NOT NULL,        -- the account nonce reserved for it
    from_block INTEGER NOT NULL,   -- chain head when it was reserved (where to look for its effect)
    state TEXT NOT NULL,           -- pending (maybe sent) | mined
    tx_hash TEXT
);
"""


class StillPending(Exception):
    """The action's transaction is still in the mempool after the wait: try again later, never send a copy."""


class Sent(Enum):
    SENT = "sent"
    ALREADY_DONE = "already done"


class Sender:
    def __init__(self, store: Store, account, provider) -> None:
        self.store = store
        self.account = account
        self.provider = provider

    def send_once(self, key: str, transact: Callable[[int], object], done: Callable[[int], bool],
                  wait_seconds: float = 120.0, sleep: Callable[[float], None] = time.sleep,
                  stopping: Callable[[], bool] = lambda: False) -> tuple[Sent, str | None]:
        """Run ``transact(nonce)`` (send and wait for the receipt) unless ``done(from_block)`` says the chain already
        shows the action. Raises whatever ``transact`` raises (a revert: nothing more is sent for this key until
        it is called again)."""
        row = self.store.one("SELECT nonce, from_block, state, tx_hash FROM sends WHERE key = ?", key)
        if row is not None and row[2] == "mined":
            return Sent.ALREADY_DONE, row[3]
        head = self.provider.get_block("latest").number
        nonce, from_block = (row[0], row[1]) if row is not None else (None, head)
        if nonce is not None and not self._wait_while_in_mempool(nonce, wait_seconds, sleep, stopping):
            if done(from_block):
                self._mark(key, None, from_block)
                return Sent.ALREADY_DONE, None
            raise StillPending(f"its transaction (nonce {nonce}) is still waiting to be mined")
        if done(from_block):
            self._mark(key, None, from_block)
            return Sent.ALREADY_DONE, None
        if nonce is None or self._nonce("latest") > nonce:
            # First attempt, or the reserved nonce was used (by this action, which then reverted, or by another
            # transaction of the account): reserve the next free one, counting transactions still in the mempool.
            nonce, from_block = self._nonce("pending"), head
            with self.store.transaction() as db:
                db.execute("INSERT INTO sends (key, nonce, from_block, state) VALUES (?, ?, ?, 'pending') "
                           "ON CONFLICT(key) DO UPDATE SET nonce = excluded.nonce, from_block = excluded.from_block",
                           (key, nonce, from_block))
        receipt = transact(nonce)
        tx_hash = getattr(receipt, "txn_hash", None)
        self._mark(key, None if tx_hash is None else str(tx_hash), from_block)
        return Sent.SENT, None if tx_hash is None else str(tx_hash)

    def in_mempool(self, nonce: int) -> bool:
        """A transaction of this account with ``nonce`` was broadcast and is not mined yet."""
        return self._nonce("latest") <= nonce < self._nonce("pending")

    def _nonce(self, block_id: str) -> int:
        return self.provider.get_nonce(self.account.address, block_id=block_id)

    def _wait_while_in_mempool(self, nonce: int, wait_seconds: float, sleep, stopping) -> bool:
        """Wait while a transaction with the reserved nonce is pending (sent before a crash): let it be mined
        rather than race it with a copy. False if it is still pending when the wait ends or a stop is asked."""
        deadline = time.monotonic() + wait_seconds
        while self.in_mempool(nonce):
            if stopping() or time.monotonic() >= deadline:
                return False
            sleep(1.0)
        return True

    def _mark(self, key: str, tx_hash: str | None, from_block: int) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO sends (key, nonce, from_block, state, tx_hash) VALUES (?, -1, ?, 'mined', ?) "
                       "ON CONFLICT(key) DO UPDATE SET state = 'mined', tx_hash = excluded.tx_hash", (key, from_block, tx_hash))


GAS_MARGIN_PERCENT, GAS_MARGIN = 150, 100_000


def transact_with_margin(method, nonce: int, *args, sender):
    """Send ``method(*args)`` with ``nonce`` and a gas limit well above the estimate; a revert is raised by the
    estimate, before anything is sent.

    The estimate runs in the pending block's second and the transaction may be mined in a later one: a slash
    then writes new checkpoints (votes, supply, activity are keyed by time) instead of updating the last ones,
    tens of thousands of gas more. Out of gas, it would spend the nonce and do nothing."""
    with stdout_to_stderr():  # ape prints a revert's call trace on stdout: keep --json output JSON only
        estimate = method.estimate_gas_cost(*args, sender=sender)
        return method(*args, sender=sender, nonce=nonce, gas_limit=estimate * GAS_MARGIN_PERCENT // 100 + GAS_MARGIN)
