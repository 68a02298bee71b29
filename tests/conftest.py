"""Fixtures shared by every test: named roles, deploy fixtures, and the Hypothesis profile."""

from contextlib import nullcontext

import ape
import pytest
from eth_account import Account

from opgkit.deploy import ProtocolParameters
from opgkit.testing import load_hypothesis_profile
from opgkit.toolchain.build import BuildError, ensure_fresh_build
from opgkit.toolchain.coverage_plugin import plugin_from_environment
from opgkit.zkml import pipeline
from opgkit.zkml.models import CREDIT_APPLICANT, CREDIT_LIMIT, LIQUIDATION_RISK, RISKY_POSITION, SAFE_POSITION

load_hypothesis_profile()


def pytest_configure(config):
    compile_in_full_if_stale(config)
    # `make coverage` (OPG_COVERAGE=<dir>): trace every transaction and call for the coverage report.
    plugin = plugin_from_environment()
    if plugin is not None:
        config.pluginmanager.register(plugin, "opg-coverage")


def compile_in_full_if_stale(config):
    """`ape test` alone does what `make compile` does: a full compile first if any source changed since the last.

    Ape's own compile on first use recompiles only the edited files, and would leave the contracts that inherit
    an edited one with their old bytecode. In-process runs without ape's plugin (`make audit`, `make mutation`)
    and xdist workers (their controller checked) leave the build alone.
    """
    if config.getoption("help") or hasattr(config, "workerinput") or not config.pluginmanager.has_plugin("ape_test"):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            rebuilt = ensure_fresh_build(config.rootpath)
    except BuildError as error:
        raise pytest.UsageError(f"the contracts could not be compiled: {error}") from None
    if rebuilt:
        # Ape read .build/ when it started: read again what the full compile wrote there.
        ape.project.load_manifest()


@pytest.fixture(scope="module")
def uri(networks):
    """The test's anvil, for scripts started as processes (`--network <uri>`)."""
    if networks.provider.name != "foundry":
        pytest.skip("the scripts run as their own processes against the test's anvil")
    return networks.provider.uri


@pytest.fixture(scope="session")
def nitro_fixtures():
    """The shared AWS Nitro test data (a real attestation document and AWS's root), beside the repository."""
    from opgkit import PROJECT_ROOT

    folder = PROJECT_ROOT.parent / "shared" / "fixtures" / "nitro"
    if not (folder / "attestation-2024-11-30.cbor").is_file():
        pytest.fail(f"the shared Nitro fixtures are missing: {folder} (../shared beside the repository)")
    return folder


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def treasury(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def alice(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def bob(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def carol(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def gov(accounts):
    """Holds admin roles directly in unit tests (the timelock does in production)."""
    return accounts[5]


@pytest.fixture(scope="session")
def slasher(accounts):
    """Holds SLASHER_ROLE in unit tests (the settlement contract does in production)."""
    return accounts[6]


@pytest.fixture(scope="session")
def operator(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def operator2(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def reporter(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def holders(alice, bob, carol):
    """Plain token holders, for tests that pick among several."""
    return [alice, bob, carol]


@pytest.fixture(scope="session")
def offchain_signer():
    """A fresh key that only ever signs off chain (permits, receipts); it never holds ETH."""
    return Account.create()


@pytest.fixture(scope="session")
def deploy_token(project, deployer):
    """Factory: deploy a new OPG token minting to ``treasury``."""

    def deploy(treasury):
        return deployer.deploy(project.OPGToken, treasury)

    return deploy


@pytest.fixture(scope="session")
def token(deploy_token, treasury):
    return deploy_token(treasury)


@pytest.fixture(scope="module")
def funded_token(token, treasury, holders):
    """The token with 1,000,000 OPG moved from the treasury to each holder."""
    for holder in holders:
        token.transfer(holder, 1_000_000 * 10**18, sender=treasury)
    return token


@pytest.fixture(scope="session")
def deploy_staking(project, deployer):
    """Factory: deploy NodeStaking with `ProtocolParameters` defaults unless overridden."""

    def deploy(token, admin, treasury, **overrides):
        defaults = ProtocolParameters()
        params = dict(
            minimum_stakes=list(defaults.minimum_stakes),
            unbonding_delay=defaults.unbonding_delay,
            reporter_reward_bps=defaults.reporter_reward_bps,
            jail_duration=defaults.jail_duration,
        ) | overrides
        return deployer.deploy(
            project.NodeStaking,
            token,
            admin,
            treasury,
            params["minimum_stakes"],
            params["unbonding_delay"],
            params["reporter_reward_bps"],
            params["jail_duration"],
        )

    return deploy


# ---------------------------------------------------------------- EZKL artifacts and real proofs
# Built once into the git-ignored cache and reused by every later run (and by `make demo`).

@pytest.fixture(scope="session")
def liquidation_artifacts():
    return pipeline.build(LIQUIDATION_RISK)


@pytest.fixture(scope="session")
def credit_artifacts():
    return pipeline.build(CREDIT_LIMIT)


@pytest.fixture(scope="session")
def risky_proof(liquidation_artifacts):
    return pipeline.prove(liquidation_artifacts, RISKY_POSITION)


@pytest.fixture(scope="session")
def safe_proof(liquidation_artifacts):
    return pipeline.prove(liquidation_artifacts, SAFE_POSITION)


@pytest.fixture(scope="session")
def credit_proof(credit_artifacts):
    return pipeline.prove(credit_artifacts, CREDIT_APPLICANT)
