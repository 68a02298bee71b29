"""NodeStaking fixtures. Module-scoped, so each test module starts from a fresh deployment."""

import pytest

from staking_constants import (
    FUNDING, INFERENCE, JAIL_DURATION, MINIMUM_STAKES, REPORTER_REWARD_BPS, ROLE_BITS, UNBONDING_DELAY,
)


@pytest.fixture(scope="session")
def deploy_staking(project, deployer):
    """Factory: deploy NodeStaking with the default parameters unless overridden."""

    def deploy(token, admin, treasury, **overrides):
        params = dict(
            minimum_stakes=MINIMUM_STAKES,
            unbonding_delay=UNBONDING_DELAY,
            reporter_reward_bps=REPORTER_REWARD_BPS,
            jail_duration=JAIL_DURATION,
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


@pytest.fixture(scope="module")
def stakers(alice, bob, carol, operator, operator2):
    return [operator, operator2, alice, bob, carol]


@pytest.fixture(scope="module")
def staking(deploy_staking, token, gov, treasury, slasher, stakers):
    """NodeStaking with a slasher, and every staker funded with OPG and approved."""
    staking = deploy_staking(token, gov, treasury)
    staking.grantRole(staking.SLASHER_ROLE(), slasher, sender=gov)
    for account in stakers:
        token.transfer(account, FUNDING, sender=treasury)
        token.approve(staking, 2**256 - 1, sender=account)
    return staking


@pytest.fixture(scope="module")
def register(staking):
    """Factory: register ``account`` as an operator (inference role, the minimum self-bond, 10% commission)."""

    def register(account, roles=ROLE_BITS[INFERENCE], self_bond=MINIMUM_STAKES[INFERENCE], commission_bps=1_000):
        return staking.registerOperator(roles, self_bond, commission_bps, sender=account)

    return register
