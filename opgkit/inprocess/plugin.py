"""pytest plugin: run the property tests on the in-process chain instead of anvil.

    pytest -p no:ape_test -p opgkit.inprocess.plugin tests -m machine

It replaces ape's ``chain``, ``accounts`` and ``project`` fixtures with in-process ones (the same test accounts
as ``ape-config.yaml``'s mnemonic, the project's compiled contracts from ``.build``) and isolates each module
and each test with snapshots, as ape does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opgkit import testing
from opgkit.inprocess.accounts import TestAccounts
from opgkit.inprocess.contracts import ProjectContracts
from opgkit.inprocess.evm import InProcessChain

_session_chain: InProcessChain | None = None


def pytest_configure(config):
    global _session_chain
    _session_chain = InProcessChain()
    testing.use_chain(_session_chain)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="anvil_only: needs a real node")
    for item in items:
        if item.get_closest_marker("anvil_only"):
            item.add_marker(skip)


def pytest_unconfigure(config):
    testing.use_chain(None)


@pytest.fixture(scope="session")
def chain():
    return _session_chain


@pytest.fixture(scope="session")
def accounts(chain):
    from ape import config

    settings = config.get_config("test")  # ape-config.yaml's `test:` section, with ape's defaults
    return TestAccounts(chain, settings.mnemonic, settings.number_of_accounts, settings.hd_path)


BYTECODE_OVERRIDES_ENV = "OPG_BYTECODE_OVERRIDES"
"""Optional: a JSON file ``{"ContractName": "0x<deployment bytecode>"}`` whose bytecode replaces the compiled
one (same ABI) when a test deploys that contract; ``make mutation`` runs each mutant's tests this way."""


def bytecode_overrides() -> dict[str, str]:
    path = os.environ.get(BYTECODE_OVERRIDES_ENV)
    return json.loads(Path(path).read_text()) if path else {}


@pytest.fixture(scope="session")
def project(chain):
    from ape import project as compiled

    return ProjectContracts(chain, compiled, bytecode_overrides())


@pytest.fixture(scope="module", autouse=True)
def _isolate_module(chain, request):
    # Session fixtures that any test of this module needs are set up before the module's snapshot: set up
    # later, by a test in the middle of the module, their deployments would be undone when the module ends
    # (ape re-bases its snapshots for this; setting them up first is enough here).
    for item in request.session.items:
        if item.module is request.module:
            for name in item.fixturenames:
                definitions = item._fixtureinfo.name2fixturedefs.get(name)
                if definitions and definitions[-1].scope == "session":
                    request.getfixturevalue(name)
    snapshot = chain.snapshot()
    yield
    chain.restore(snapshot)


@pytest.fixture(autouse=True)
def _isolate_test(chain, accounts):
    snapshot, generated = chain.snapshot(), accounts._generated
    yield
    chain.restore(snapshot)
    accounts._generated = generated
