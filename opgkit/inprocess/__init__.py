"""An in-process EVM (revm, through pyrevm) behind the small part of ape's API that the property tests use.

The stateful machines in ``tests/`` are written against ape's objects: contracts, accounts, receipts, events,
custom errors and the chain's clock. On anvil they run through ape (CI: the truth). The pytest plugin in
:mod:`opgkit.inprocess.plugin` hands the same tests a ``project``, ``accounts`` and ``chain`` that run the
project's compiled bytecode in-process instead, which is what lets an audit campaign take thousands of
steps per second. Nothing here is a model of the contracts: it executes their real bytecode.
"""
