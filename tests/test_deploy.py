"""opgkit.deploy: the suite is deployed in order, wired, and the wiring check catches mismatches."""

import dataclasses

import pytest

from opgkit.deploy import ProtocolParameters, WiringError, deploy_all, verify_wiring


@pytest.fixture(scope="module")
def suite(deployer, treasury):
    return deploy_all(deployer, treasury.address)


def test_deploy_all__default_parameters__deploys_in_dependency_order(suite):
    assert [d.name for d in suite.deployments] == [
        "OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "ModelRegistry", "AttestorQuorumVerifier", "TEERegistry",
        "TwinMarket",
    ]
    assert [d.block_number for d in suite.deployments] == sorted(d.block_number for d in suite.deployments)


def test_deploy_all__default_parameters__timelock_is_the_only_admin(suite, deployer):
    staking, timelock = suite["NodeStaking"], suite["OPGTimelock"]
    assert staking.hasRole(staking.DEFAULT_ADMIN_ROLE(), timelock)
    assert not staking.hasRole(staking.DEFAULT_ADMIN_ROLE(), deployer)
    assert not timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer)


def test_verify_wiring__parameters_differ__names_each_mismatch(suite, deployer, treasury):
    wrong = dataclasses.replace(ProtocolParameters(), unbonding_delay=3 * 86_400, quorum_percent=10, twin_protocol_fee=1)
    with pytest.raises(WiringError, match="unbonding delay; .*quorum; .*twin market fees"):
        verify_wiring(suite, deployer.address, treasury.address, wrong)


def test_verify_wiring__other_treasury__fails(suite, deployer, alice):
    with pytest.raises(WiringError, match="staking treasury"):
        verify_wiring(suite, deployer.address, alice.address, ProtocolParameters())
