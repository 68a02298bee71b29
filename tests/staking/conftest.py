"""NodeStaking fixtures. Module-scoped, so each test module starts from a fresh deployment."""

import pytest

from staking_constants import FUNDING, INFERENCE, MINIMUM_STAKES, ROLE_BITS


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
