"""Gas benchmarks: each module measures its contracts on a live chain and returns rows for the gas table."""

from __future__ import annotations

from dataclasses import dataclass

from ape import chain

BLOCK_TIME = 12


@dataclass(frozen=True)
class GasRow:
    """Gas used by one operation, next to the anchor figure it is judged against and the target it must meet."""

    contract: str
    operation: str
    gas: int
    anchor: int | None
    anchor_source: str
    target: int | None = None

    @property
    def delta(self) -> str:
        if not self.anchor:
            return "—"
        return f"{(self.gas - self.anchor) / self.anchor:+.1%}"

    @property
    def target_met(self) -> bool | None:
        return None if self.target is None else self.gas <= self.target

    @property
    def target_cell(self) -> str:
        if self.target is None:
            return "—"
        return f"≤ {self.target:,} {'met' if self.target_met else '**not met**'}"


def render_table(rows: list[GasRow], header: str) -> str:
    """The Markdown gas table, one row per operation."""
    lines = [
        header.rstrip(),
        "",
        "| contract | operation | gas | anchor | vs anchor | target | anchor source |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        anchor = f"{row.anchor:,}" if row.anchor else "—"
        lines.append(f"| {row.contract} | {row.operation} | {row.gas:,} | {anchor} | {row.delta} | {row.target_cell} "
                     f"| {row.anchor_source} |")
    return "\n".join(lines) + "\n"


def gas_of(send) -> int:
    """Gas of the transaction ``send()`` makes, mined one block time after the previous block.

    Spacing blocks keeps each vote checkpoint in a block of its own, as on a live chain; two operations in
    one second would share a checkpoint and look cheaper than they are.
    """
    chain.pending_timestamp = chain.blocks.head.timestamp + BLOCK_TIME
    return send().gas_used
