"""Execution history: every node's and model's work and faults, rebuilt from chain events.

* :mod:`opgkit.history.index` reads the settlement, batch, staking, TEE and request events into SQLite,
  incrementally and resumably (one table per event kind, one cursor per contract).
* :mod:`opgkit.history.record` builds a node's or a model's record from that database alone.
* :mod:`opgkit.history.reputation` scores a node's record.

`ape run history` (scripts/history.py) indexes up to the head and prints a record.
"""
