"""A node's reputation: one score from 0 to 100 out of its record (:class:`opgkit.history.record.NodeRecord`).

    success = settled / (settled + missed proofs + rejected batches + slashes)
    uptime  = the fraction of the observed span in which one of the node's TEEs had a heartbeat no older
              than TEERegistry.maxHeartbeatAge() (see opgkit.history.record)
    latency = max(0, 1 − median request latency / LATENCY_TARGET_SECONDS)
    score   = 100 × (SUCCESS_WEIGHT·success + UPTIME_WEIGHT·uptime + LATENCY_WEIGHT·latency)

``settled`` counts the receipts that stand: individual, async (final after their proof) and batched in a
batch not rejected, each answered by the node (a TEE receipt through one of its keys) and paid for by
someone else: receipts a node pays for itself are counted apart and score nothing. The score is evidence, not
proof: a node that pays other accounts to buy free receipts from it can still raise its success part, at the
gas of every receipt. ``rejected batches`` are those the node posted as relayer and that were challenged.

Choices where there is no evidence, so that a part is neither rewarded nor punished for what was not observed:

* success is 1.0 when the denominator is 0 (no work and no fault);
* uptime is 1.0 when the node runs no TEE (nothing to be up);
* latency is 1.0 when the node answered no request (or no requests contract was indexed).

A missed proof also slashes the node, and a rejected batch slashes its relayer: such a fault counts twice in
the denominator (once as the fault, once as its slash), as the formula says. A slash for an offence outside
these contracts (e.g. by governance) counts once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from opgkit.history.record import NodeRecord

SUCCESS_WEIGHT = 0.5
UPTIME_WEIGHT = 0.3
LATENCY_WEIGHT = 0.2
LATENCY_TARGET_SECONDS = 300
"""The median latency at which the latency part reaches 0: five minutes from a request to its answer."""


@dataclass(frozen=True)
class Reputation:
    """The three parts (each 0..1) and the score (0..100)."""

    success: float
    uptime: float
    latency: float
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


def success_rate(record: NodeRecord) -> float:
    settled = record.receipts.settled
    total = settled + record.proofs_missed + record.batches_rejected + record.slashes
    return settled / total if total else 1.0


def latency_score(median_latency: float | None) -> float:
    if median_latency is None:
        return 1.0
    return max(0.0, 1 - median_latency / LATENCY_TARGET_SECONDS)


def reputation(record: NodeRecord) -> Reputation:
    """The reputation of the node ``record`` describes (formula in the module docstring)."""
    success = success_rate(record)
    uptime = 1.0 if record.uptime is None else record.uptime
    latency = latency_score(record.median_latency)
    score = 100 * (SUCCESS_WEIGHT * success + UPTIME_WEIGHT * uptime + LATENCY_WEIGHT * latency)
    return Reputation(success, uptime, latency, score)
