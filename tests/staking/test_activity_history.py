"""NodeStaking.wasActiveOperator: what an operator was active for at a past time, which nothing it does later
changes. Settlement judges every signer by it, so a node cannot un-sign a receipt (and get an honest relayer
slashed) by unbonding, changing roles or being jailed afterwards."""

import pytest

from opgkit.testing import advance
from staking_constants import INFERENCE, JAIL_DURATION, MINIMUM_STAKES, RELAYER, ROLE_BITS, TEE

EVIDENCE = b"\x11" * 32


@pytest.fixture
def now(chain):
    return lambda: chain.blocks.head.timestamp


def test_was_active__after_registration__true_for_its_roles_only(staking, register, operator, now):
    register(operator)
    registered_at = now()
    assert staking.wasActiveOperator(operator, INFERENCE, registered_at)
    assert not staking.wasActiveOperator(operator, TEE, registered_at)
    assert not staking.wasActiveOperator(operator, INFERENCE, registered_at - 1)


def test_was_active__future_timestamp__false(staking, register, operator, now):
    register(operator)
    assert not staking.wasActiveOperator(operator, INFERENCE, now() + 1)


def test_was_active__never_registered__false(staking, alice, now):
    assert not staking.wasActiveOperator(alice, INFERENCE, now())


def test_was_active__unbonded_below_minimum_later__past_unchanged(chain, staking, register, operator, now):
    register(operator)
    active_at = now()
    advance(chain, 10)
    staking.unbond(operator, staking.sharesOf(operator, operator) // 2, sender=operator)
    assert staking.wasActiveOperator(operator, INFERENCE, active_at)
    assert not staking.wasActiveOperator(operator, INFERENCE, now())
    assert staking.isActiveOperator(operator, INFERENCE) == staking.wasActiveOperator(operator, INFERENCE, now())


def test_was_active__roles_changed_later__past_unchanged(chain, staking, register, operator, now):
    bond = max(MINIMUM_STAKES[INFERENCE], MINIMUM_STAKES[RELAYER])
    register(operator, roles=ROLE_BITS[INFERENCE], self_bond=bond)
    before = now()
    advance(chain, 10)
    staking.setRoles(ROLE_BITS[RELAYER], sender=operator)
    assert staking.wasActiveOperator(operator, INFERENCE, before)
    assert not staking.wasActiveOperator(operator, INFERENCE, now())
    assert staking.wasActiveOperator(operator, RELAYER, now())


def test_was_active__jailed_then_unjailed__history_follows(chain, staking, register, operator, slasher, now):
    register(operator, self_bond=MINIMUM_STAKES[INFERENCE] * 3)
    before = now()
    advance(chain, 10)
    staking.slash(operator, 1_000, EVIDENCE, slasher, sender=slasher)
    jailed_at = now()
    assert staking.wasActiveOperator(operator, INFERENCE, before)
    assert not staking.wasActiveOperator(operator, INFERENCE, jailed_at)
    advance(chain, JAIL_DURATION + 1)
    staking.unjail(sender=operator)
    assert staking.wasActiveOperator(operator, INFERENCE, now())
    assert not staking.wasActiveOperator(operator, INFERENCE, jailed_at)
    assert staking.wasActiveOperator(operator, INFERENCE, before)


def test_was_active__self_stake_restores_minimum__active_from_then(chain, staking, register, operator, now):
    register(operator)
    advance(chain, 10)
    staking.unbond(operator, staking.sharesOf(operator, operator) // 2, sender=operator)
    inactive_at = now()
    advance(chain, 10)
    staking.stake(operator, MINIMUM_STAKES[INFERENCE], sender=operator)
    assert not staking.wasActiveOperator(operator, INFERENCE, inactive_at)
    assert staking.wasActiveOperator(operator, INFERENCE, now())


def test_was_active__delegator_moves__operator_history_untouched(chain, staking, register, operator, alice, now):
    register(operator)
    staking.stake(operator, MINIMUM_STAKES[INFERENCE], sender=alice)
    advance(chain, 10)
    staking.unbond(operator, staking.sharesOf(operator, alice), sender=alice)
    assert staking.wasActiveOperator(operator, INFERENCE, now())


def test_was_active__minimum_raised__applies_from_next_change_only(chain, staking, register, operator, gov, now):
    register(operator)
    staking.setMinimumStake(INFERENCE, MINIMUM_STAKES[INFERENCE] * 2, sender=gov)
    # isActiveOperator applies the new minimum at once; recorded history is never rewritten.
    assert not staking.isActiveOperator(operator, INFERENCE)
    assert staking.wasActiveOperator(operator, INFERENCE, now())
    advance(chain, 10)
    staking.unbond(operator, 1, sender=operator)
    assert not staking.wasActiveOperator(operator, INFERENCE, now())


def test_was_active__role_bitmask_history__each_role_separately(staking, register, operator, now):
    bond = max(MINIMUM_STAKES[INFERENCE], MINIMUM_STAKES[TEE])
    register(operator, roles=ROLE_BITS[INFERENCE] | ROLE_BITS[TEE], self_bond=bond)
    assert staking.wasActiveOperator(operator, INFERENCE, now())
    assert staking.wasActiveOperator(operator, TEE, now())
    assert not staking.wasActiveOperator(operator, RELAYER, now())



def test_was_active__delegators_stake_after_minimum_raised__history_unchanged_until_refreshed(
        chain, staking, register, stakers, gov, now):
    # A delegator's stake is no change of the operator's own state, whatever the delegator's address (above or
    # below the operator's): only the operator's own actions, or refreshActivity, bring a raised minimum in.
    by_address = sorted(stakers, key=lambda account: int(account.address, 16))
    operator = by_address[len(by_address) // 2]
    register(operator)
    staking.setMinimumStake(INFERENCE, MINIMUM_STAKES[INFERENCE] * 2, sender=gov)
    advance(chain, 10)
    for delegator in by_address:
        if delegator != operator:
            staking.stake(operator, 1, sender=delegator)
    assert staking.wasActiveOperator(operator, INFERENCE, now())
    staking.refreshActivity(operator, sender=by_address[0])
    assert not staking.wasActiveOperator(operator, INFERENCE, now())
