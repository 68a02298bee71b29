"""Watch a TwinMarket's fees: current state, every fee/destination/owner change, alerts, exact restarts.

The monitor reads the market's own events, so the fee history it reports is the chain's, not a guess. A
checkpoint file records the last event reported (block and log index) and is replaced atomically after
each event, so a monitor stopped by SIGINT/SIGTERM and restarted reports every event exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from opgkit.cli import UserError, read_json, require_object, with_backoff, write_atomically

ONE = 10**18
BLOCK_DONE = 2**63  # log index meaning "every event of this block has been reported"
WATCHED_EVENTS = (
    "FeesChanged",
    "FeeChangeScheduled",
    "FeeChangeCancelled",
    "FeeDestinationProposed",
    "FeeDestinationChanged",
    "ClaimManagerChanged",
    "OwnershipTransferStarted",
    "OwnershipTransferred",
)


class MonitorError(UserError):
    """A problem the operator can fix (unreadable checkpoint, another market's checkpoint); the message says how."""


def percent(fraction: int) -> str:
    """1e18-scaled fraction as a percentage string: 5e16 -> '5%'."""
    return f"{fraction * 100 / ONE:g}%"


@dataclass(frozen=True)
class Snapshot:
    protocol_fee: int
    subject_fee: int
    protocol_fee_cap: int
    subject_fee_cap: int
    pending_protocol_fee: int
    pending_subject_fee: int
    pending_eta: int
    fee_destination: str
    owner: str

    @classmethod
    def read(cls, market) -> "Snapshot":
        protocol, subject = market.fees()
        pending = market.pendingFees()
        return cls(
            protocol_fee=protocol,
            subject_fee=subject,
            protocol_fee_cap=market.protocolFeeCap(),
            subject_fee_cap=market.subjectFeeCap(),
            pending_protocol_fee=pending.protocolFeePercent,
            pending_subject_fee=pending.subjectFeePercent,
            pending_eta=pending.eta,
            fee_destination=market.feeDestination(),
            owner=market.owner(),
        )


@dataclass(frozen=True)
class FeeEvent:
    block: int
    log_index: int
    tx_hash: str
    name: str
    args: dict

    @property
    def position(self) -> tuple[int, int]:
        return (self.block, self.log_index)


@dataclass(frozen=True)
class Alert:
    event: FeeEvent
    reason: str


@dataclass(frozen=True)
class AlertRules:
    """Alert when a scheduled or applied fee is above ``above``, or rises by more than ``step`` (1e18 = 100%)."""

    above: int | None = None
    step: int | None = None

    def check(self, event: FeeEvent, fees_before: tuple[int, int] | None = None) -> list[str]:
        """Reasons to alert about ``event``; ``fees_before`` are the fees in force just before it, if known."""
        if event.name not in ("FeesChanged", "FeeChangeScheduled"):
            return []
        reasons = []
        for index, side in enumerate(("protocol", "subject")):
            new = event.args[f"{side}FeePercent"]
            if self.above is not None and new > self.above:
                reasons.append(f"{side} fee {percent(new)} is above {percent(self.above)}")
            if self.step is not None and fees_before is not None and new - fees_before[index] > self.step:
                reasons.append(f"{side} fee rises by {percent(new - fees_before[index])}, more than {percent(self.step)}")
        return reasons


class FeeTracker:
    """The fees in force as the event stream goes by. The constructor's FeesChanged sets the initial fees,
    which is not a rise; the fees before a stream that starts mid-history are unknown until one is seen."""

    def __init__(self) -> None:
        self.fees: tuple[int, int] | None = None
        self._creation_tx: str | None = None

    def before(self, event: FeeEvent) -> tuple[int, int] | None:
        if event.name == "OwnershipTransferred" and int(event.args["previousOwner"], 16) == 0:
            self._creation_tx = event.tx_hash
        if event.name == "FeesChanged" and event.tx_hash == self._creation_tx:
            return None
        if event.name == "FeesChanged":
            return (event.args["previousProtocolFeePercent"], event.args["previousSubjectFeePercent"])
        return self.fees

    def after(self, event: FeeEvent) -> None:
        if event.name == "FeesChanged":
            self.fees = (event.args["protocolFeePercent"], event.args["subjectFeePercent"])


@dataclass
class Checkpoint:
    """Where reporting stopped: the last event reported, per market and chain."""

    path: Path | None
    market: str
    chain_id: int
    last_block: int = -1
    last_log_index: int = -1

    @classmethod
    def load(cls, path: Path | None, market: str, chain_id: int, from_block: int) -> "Checkpoint":
        fresh = cls(path, market, chain_id, last_block=from_block - 1, last_log_index=BLOCK_DONE)
        if path is None or not path.exists():
            return fresh
        data = require_object(read_json(path, "checkpoint"), "checkpoint", path)
        if data.get("market") != market or data.get("chain_id") != chain_id:
            raise MonitorError(
                f"checkpoint {path} belongs to market {data.get('market')} on chain {data.get('chain_id')}; "
                "use another --state file for this market"
            )
        last_block, last_log_index = data.get("last_block"), data.get("last_log_index")
        if not (_position_field(last_block) and _position_field(last_log_index)
                and (last_block >= 0 or last_log_index == BLOCK_DONE)):
            raise MonitorError(f"checkpoint {path} has no valid last_block/last_log_index (integers >= -1); fix it, "
                               "or delete it and give --from-block to start over")
        return cls(path, market, chain_id, last_block, last_log_index)

    def require_within(self, head: int) -> None:
        """A checkpoint past the chain's head belongs to another history (a chain reset, a redeploy at the same
        address): continuing would silently skip every event up to it."""
        if self.last_block > head:
            raise MonitorError(f"checkpoint {self.path} is at block {self.last_block} but the chain's head is {head}: "
                               "the chain was reset or this is another chain; delete the checkpoint to start over")

    @property
    def next_block(self) -> int:
        return self.last_block + 1 if self.last_log_index == BLOCK_DONE else self.last_block

    def is_new(self, event: FeeEvent) -> bool:
        return event.position > (self.last_block, self.last_log_index)

    def advance(self, position: tuple[int, int]) -> None:
        self.last_block, self.last_log_index = position
        self._save()

    def finish_block(self, block: int) -> None:
        """Everything up to and including ``block`` has been reported."""
        if block > self.last_block or (block == self.last_block and self.last_log_index != BLOCK_DONE):
            self.last_block, self.last_log_index = block, BLOCK_DONE
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        write_atomically(self.path, json.dumps({"market": self.market, "chain_id": self.chain_id,
                                                "last_block": self.last_block, "last_log_index": self.last_log_index}))


def _position_field(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= BLOCK_DONE


Retry = Callable[[Callable], object]
"""How the monitor retries a read from the node (``with_backoff`` with the run's policy)."""


def fetch_events(market, start_block: int, stop_block: int) -> list[FeeEvent]:
    """Every watched event of ``market`` in blocks ``start_block``..``stop_block``, in chain order."""
    events = []
    for name in WATCHED_EVENTS:
        for log in getattr(market, name).range(start_block, stop_block + 1):
            events.append(
                FeeEvent(
                    block=log.block_number,
                    log_index=log.log_index,
                    tx_hash=str(log.transaction_hash.hex() if hasattr(log.transaction_hash, "hex") else log.transaction_hash),
                    name=name,
                    args={key: (str(value) if isinstance(value, bytes) else value) for key, value in log.event_arguments.items()},
                )
            )
    return sorted(events, key=lambda event: event.position)


def report_new_events(market, checkpoint: Checkpoint, head: int, rules: AlertRules, emit: Callable[[FeeEvent, list[str]], None],
                      should_stop: Callable[[], bool] = lambda: False, retry: Retry = with_backoff) -> list[Alert]:
    """Emit every event after the checkpoint up to block ``head``, advancing the checkpoint after each."""
    alerts = []
    if checkpoint.next_block > head:
        return alerts
    tracker = FeeTracker()
    for event in retry(lambda: fetch_events(market, checkpoint.next_block, head)):
        fees_before = tracker.before(event)
        tracker.after(event)
        if not checkpoint.is_new(event):
            continue
        if should_stop():
            return alerts
        reasons = rules.check(event, fees_before)
        emit(event, reasons)
        checkpoint.advance(event.position)
        alerts += [Alert(event, reason) for reason in reasons]
    if not should_stop():
        checkpoint.finish_block(head)
    return alerts


def snapshot_alerts(snapshot: Snapshot, rules: AlertRules) -> list[str]:
    """Alerts about the fees in force and a pending change, independent of history."""
    reasons = []
    for label, value in (
        ("protocol fee", snapshot.protocol_fee),
        ("subject fee", snapshot.subject_fee),
        ("scheduled protocol fee", snapshot.pending_protocol_fee if snapshot.pending_eta else 0),
        ("scheduled subject fee", snapshot.pending_subject_fee if snapshot.pending_eta else 0),
    ):
        if rules.above is not None and value > rules.above:
            reasons.append(f"{label} {percent(value)} is above {percent(rules.above)}")
    return reasons


def follow_heads(get_head: Callable[[], int], poll_seconds: float, should_stop: Callable[[], bool], sleep=time.sleep,
                 retry: Retry = with_backoff) -> Iterator[int]:
    """Yield the chain head each time it moves, until ``should_stop()``."""
    last = None
    while not should_stop():
        head = retry(get_head)
        if head != last:
            last = head
            yield head
        else:
            sleep(poll_seconds)


def event_json(event: FeeEvent, reasons: list[str]) -> str:
    return json.dumps({"type": "event", **asdict(event), "alerts": reasons}, default=str)


def event_line(event: FeeEvent, reasons: list[str]) -> str:
    args = ", ".join(
        f"{key}={percent(value) if key.endswith('FeePercent') else value}" for key, value in event.args.items()
    )
    line = f"block {event.block:>8}  #{event.log_index:<3} {event.name:<24} {args}"
    return line + "".join(f"\n  ALERT: {reason}" for reason in reasons)
