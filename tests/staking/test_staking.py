"""Unit tests of NodeStaking: each behaviour and each failure path."""

import ape
import pytest

from opgkit.testing import advance

from staking_constants import (
    DAY, INFERENCE, JAIL_DURATION, MINIMUM_STAKES, OPG, RELAYER, REPORTER_REWARD_BPS, ROLE_BITS, TEE, UNBONDING_DELAY,
)

def unbonding_id(staking, tx):
    return tx.events.filter(staking.UnbondingStarted)[0].id


EVIDENCE = b"\x01" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


# ------------------------------------------------------------------ deployment


def test_deploy__parameters_given__are_stored_and_emitted(staking, token, treasury, gov):
    assert staking.token() == token.address
    assert staking.treasury() == treasury.address
    assert staking.unbondingDelay() == UNBONDING_DELAY
    assert staking.reporterRewardBps() == REPORTER_REWARD_BPS
    assert staking.jailDuration() == JAIL_DURATION
    assert [staking.minimumStake(role) for role in (INFERENCE, TEE, RELAYER)] == MINIMUM_STAKES
    assert staking.hasRole(staking.DEFAULT_ADMIN_ROLE(), gov)
    assert staking.CLOCK_MODE() == "mode=timestamp"


@pytest.mark.parametrize(
    "override, error",
    [
        ({"unbonding_delay": DAY - 1}, "NodeStakingUnbondingDelayOutOfBounds"),
        ({"unbonding_delay": 28 * DAY + 1}, "NodeStakingUnbondingDelayOutOfBounds"),
        ({"reporter_reward_bps": 5_001}, "NodeStakingReporterRewardOutOfBounds"),
        ({"jail_duration": 28 * DAY + 1}, "NodeStakingJailDurationOutOfBounds"),
        ({"minimum_stakes": [0, 1, 1]}, "NodeStakingMinimumStakeOutOfBounds"),
    ],
)
def test_deploy__parameter_out_of_bounds__reverts(project, deploy_staking, token, gov, treasury, override, error):
    with ape.reverts(getattr(project.NodeStaking, error)):
        deploy_staking(token, gov, treasury, **override)


def test_deploy__zero_treasury__reverts(project, deploy_staking, token, gov):
    with ape.reverts(project.NodeStaking.NodeStakingZeroAddress):
        deploy_staking(token, gov, ZERO_ADDRESS)


@pytest.mark.parametrize("missing", ["token", "admin"])
def test_deploy__zero_token_or_admin__reverts(project, deploy_staking, token, gov, treasury, missing):
    args = {"token": token, "admin": gov} | {missing: ZERO_ADDRESS}
    with ape.reverts(project.NodeStaking.NodeStakingZeroAddress):
        deploy_staking(args["token"], args["admin"], treasury)


# ------------------------------------------------------------------ registration


def test_register__minimum_self_bond__activates_role_and_votes(staking, token, register, operator):
    tx = register(operator)
    assert staking.isActiveOperator(operator, INFERENCE)
    assert not staking.isActiveOperator(operator, TEE)
    assert staking.selfBond(operator) == MINIMUM_STAKES[INFERENCE]
    assert staking.getVotes(operator) == MINIMUM_STAKES[INFERENCE]
    assert staking.delegates(operator) == operator.address
    assert staking.totalBonded() == MINIMUM_STAKES[INFERENCE]
    assert token.balanceOf(staking) == MINIMUM_STAKES[INFERENCE]
    assert staking.OperatorRegistered(operator, 1, 1_000) in tx.events
    assert staking.Staked(operator, operator, MINIMUM_STAKES[INFERENCE], MINIMUM_STAKES[INFERENCE]) in tx.events


def test_register__several_roles__each_checked_against_its_minimum(staking, register, operator):
    register(operator, roles=7, self_bond=MINIMUM_STAKES[RELAYER])
    assert all(staking.isActiveOperator(operator, role) for role in (INFERENCE, TEE, RELAYER))


def test_register__self_bond_below_a_role_minimum__reverts(staking, register, operator):
    with ape.reverts(staking.NodeStakingSelfBondBelowMinimum, required=MINIMUM_STAKES[TEE]):
        register(operator, roles=ROLE_BITS[TEE], self_bond=MINIMUM_STAKES[TEE] - 1)


@pytest.mark.parametrize("roles", [0, 8, 255])
def test_register__invalid_roles__reverts(staking, register, operator, roles):
    with ape.reverts(staking.NodeStakingInvalidRoles, roles=roles):
        register(operator, roles=roles)


def test_register__twice__reverts(staking, register, operator):
    register(operator)
    with ape.reverts(staking.NodeStakingAlreadyRegistered, operator=operator.address):
        register(operator)


def test_register__commission_above_cap__reverts(staking, register, operator):
    with ape.reverts(staking.NodeStakingCommissionTooHigh, commissionBps=5_001, maximum=5_000):
        register(operator, commission_bps=5_001)


def test_set_roles__covered__changes_roles_and_emits(staking, register, operator):
    register(operator, self_bond=MINIMUM_STAKES[TEE])
    tx = staking.setRoles(ROLE_BITS[TEE], sender=operator)
    assert staking.isActiveOperator(operator, TEE) and not staking.isActiveOperator(operator, INFERENCE)
    assert tx.events == [staking.OperatorRolesChanged(operator, ROLE_BITS[TEE])]


def test_set_roles__not_covered__reverts(staking, register, operator):
    register(operator)
    with ape.reverts(staking.NodeStakingSelfBondBelowMinimum):
        staking.setRoles(ROLE_BITS[RELAYER], sender=operator)


def test_set_roles__not_an_operator__reverts(staking, alice):
    with ape.reverts(staking.NodeStakingNotOperator, account=alice.address):
        staking.setRoles(1, sender=alice)


def test_is_active__self_bond_unbonded_below_minimum__turns_false(staking, register, operator):
    register(operator)
    staking.unbond(operator, 1, sender=operator)
    assert not staking.isActiveOperator(operator, INFERENCE)


# ------------------------------------------------------------------ commission


def test_commission__decrease__applies_at_once(staking, register, operator):
    register(operator)
    tx = staking.setCommission(0, sender=operator)
    assert staking.pool(operator).commissionBps == 0
    assert tx.events == [staking.CommissionChanged(operator, 1_000, 0)]


def test_commission__increase_within_step_after_interval__applies(chain, staking, register, operator):
    register(operator)
    advance(chain, DAY)
    staking.setCommission(1_500, sender=operator)
    assert staking.pool(operator).commissionBps == 1_500


def test_commission__increase_too_soon__reverts(staking, register, operator):
    register(operator)
    with ape.reverts(staking.NodeStakingCommissionChangeTooSoon):
        staking.setCommission(1_100, sender=operator)


def test_commission__increase_beyond_step__reverts(chain, staking, register, operator):
    register(operator)
    advance(chain, DAY)
    with ape.reverts(staking.NodeStakingCommissionIncreaseTooLarge, currentBps=1_000, requestedBps=1_501):
        staking.setCommission(1_501, sender=operator)


def test_commission__above_cap__reverts(staking, register, operator):
    register(operator, commission_bps=5_000)
    with ape.reverts(staking.NodeStakingCommissionTooHigh):
        staking.setCommission(5_001, sender=operator)


# ------------------------------------------------------------------ delegation and unbonding


def test_stake__delegator__mints_shares_at_rate_and_gives_operator_votes(staking, register, operator, alice):
    register(operator)
    tx = staking.stake(operator, 5_000 * OPG, sender=alice)
    assert staking.sharesOf(operator, alice) == 5_000 * OPG
    assert staking.stakeOf(operator, alice) == 5_000 * OPG
    assert staking.getVotes(operator) == MINIMUM_STAKES[INFERENCE] + 5_000 * OPG
    assert staking.getVotes(alice) == 0
    assert staking.Staked(operator, alice, 5_000 * OPG, 5_000 * OPG) in tx.events


def test_stake__zero__reverts(staking, register, operator, alice):
    register(operator)
    with ape.reverts(staking.NodeStakingZeroAmount):
        staking.stake(operator, 0, sender=alice)


def test_stake__unknown_operator__reverts(staking, alice, bob):
    with ape.reverts(staking.NodeStakingNotOperator, account=bob.address):
        staking.stake(bob, OPG, sender=alice)


def test_stake__after_slash__halves_value_and_doubles_new_shares_per_token(
    chain, staking, register, operator, alice, bob, slasher
):
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    staking.stake(operator, 10_000 * OPG, sender=alice)
    staking.slash(operator, 5_000, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    assert staking.stakeOf(operator, alice) == 5_000 * OPG
    advance(chain, JAIL_DURATION)
    staking.unjail(sender=operator)
    staking.stake(operator, 1_000 * OPG, sender=bob)
    assert staking.sharesOf(operator, bob) == 2_000 * OPG
    assert staking.stakeOf(operator, bob) == 1_000 * OPG


def test_stake__jailed_operator__reverts(staking, register, operator, alice, slasher):
    register(operator)
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    with ape.reverts(staking.NodeStakingOperatorJailed, operator=operator.address):
        staking.stake(operator, OPG, sender=alice)


def test_unbond__shares__moves_value_to_unbonding_and_removes_votes(chain, staking, register, operator, alice):
    register(operator)
    staking.stake(operator, 5_000 * OPG, sender=alice)
    tx = staking.unbond(operator, 2_000 * OPG, sender=alice)
    entry_id = unbonding_id(staking, tx)
    assert entry_id == int(alice.address, 16) << 96 | staking.pool(operator).index << 64 | 1, "owner, pool, number"
    entry = staking.unbonding(entry_id)
    assert entry.owner == alice.address and entry.operator == operator.address
    assert entry.maturity == chain.blocks.head.timestamp + UNBONDING_DELAY
    assert staking.unbondingValue(entry_id) == 2_000 * OPG
    assert staking.sharesOf(operator, alice) == 3_000 * OPG
    assert staking.totalUnbonding() == 2_000 * OPG
    assert staking.getVotes(operator) == MINIMUM_STAKES[INFERENCE] + 3_000 * OPG
    assert staking.UnbondingStarted(entry_id, operator, alice, 2_000 * OPG, 2_000 * OPG, entry.maturity) in tx.events
    assert unbonding_id(staking, staking.unbond(operator, OPG, sender=alice)) == entry_id + 1


def test_unbond__more_than_held__reverts(staking, register, operator, alice):
    register(operator)
    staking.stake(operator, OPG, sender=alice)
    with ape.reverts(staking.NodeStakingInsufficientShares, available=OPG, requested=OPG + 1):
        staking.unbond(operator, OPG + 1, sender=alice)


def test_unbond__zero__reverts(staking, register, operator):
    register(operator)
    with ape.reverts(staking.NodeStakingZeroAmount):
        staking.unbond(operator, 0, sender=operator)


def test_withdraw__at_maturity__pays_owner(chain, staking, token, register, operator, alice, bob):
    register(operator)
    staking.stake(operator, 5_000 * OPG, sender=alice)
    entry_id = unbonding_id(staking, staking.unbond(operator, 5_000 * OPG, sender=alice))
    advance(chain, UNBONDING_DELAY)
    before = token.balanceOf(alice)
    tx = staking.withdraw(entry_id, sender=bob)  # anyone may trigger; the owner is paid
    assert token.balanceOf(alice) == before + 5_000 * OPG
    assert staking.totalUnbonding() == 0
    assert staking.unbonding(entry_id).owner == ZERO_ADDRESS
    assert tx.events[-1] == staking.Withdrawn(entry_id, alice, 5_000 * OPG)


def test_withdraw__before_maturity__reverts(chain, staking, register, operator):
    register(operator)
    entry_id = unbonding_id(staking, staking.unbond(operator, OPG, sender=operator))
    maturity = staking.unbonding(entry_id).maturity
    chain.pending_timestamp = maturity - 1
    with ape.reverts(staking.NodeStakingNotMatured, id=entry_id, maturity=maturity):
        staking.withdraw(entry_id, sender=operator)


def test_withdraw__twice__reverts(chain, staking, register, operator):
    register(operator)
    entry_id = unbonding_id(staking, staking.unbond(operator, OPG, sender=operator))
    advance(chain, UNBONDING_DELAY)
    staking.withdraw(entry_id, sender=operator)
    with ape.reverts(staking.NodeStakingUnknownUnbonding, id=entry_id):
        staking.withdraw(entry_id, sender=operator)


# ------------------------------------------------------------------ slashing


def test_slash__fraction__announces_amounts_jails_and_values_drop_at_once(
    staking, token, register, operator, alice, slasher, reporter, treasury
):
    register(operator)
    staking.stake(operator, 10_000 * OPG, sender=alice)
    entry_id = unbonding_id(staking, staking.unbond(operator, 4_000 * OPG, sender=alice))
    treasury_before = token.balanceOf(treasury)
    tx = staking.slash(operator, 2_500, EVIDENCE, reporter, sender=slasher)

    from_bonded, from_unbonding = 16_000 * OPG // 4, 4_000 * OPG // 4
    reward = (from_bonded + from_unbonding) * REPORTER_REWARD_BPS // 10_000
    assert staking.Slashed(operator, EVIDENCE, reporter, 2_500, from_bonded, from_unbonding, reward) in tx.events
    until = staking.pool(operator).jailedUntil
    assert staking.Jailed(operator, until) in tx.events
    assert not staking.isActiveOperator(operator, INFERENCE)
    # What each position is worth drops at once; stake, votes and tokens move when the slash is applied.
    assert staking.stakeOf(operator, alice) == 6_000 * OPG * 3 // 4
    assert staking.selfBond(operator) == 10_000 * OPG * 3 // 4
    assert staking.unbondingValue(entry_id) == 3_000 * OPG
    pending = staking.pendingSlash(operator)
    assert (pending.reporter, pending.fractionBps, pending.reporterRewardBps) == (reporter.address, 2_500, REPORTER_REWARD_BPS)
    assert staking.getVotes(operator) == 16_000 * OPG
    assert token.balanceOf(treasury) == treasury_before


def test_apply_slash__by_anyone__moves_exactly_the_announced_amounts(
    staking, token, register, operator, alice, bob, slasher, reporter, treasury
):
    register(operator)
    staking.stake(operator, 10_000 * OPG, sender=alice)
    entry_id = unbonding_id(staking, staking.unbond(operator, 4_000 * OPG, sender=alice))
    announced = staking.slash(operator, 2_500, EVIDENCE, reporter, sender=slasher).events.filter(staking.Slashed)[0]
    treasury_before, bonded_before = token.balanceOf(treasury), staking.totalBonded()

    tx = staking.applySlash(operator, sender=bob)

    assert tx.events.filter(staking.SlashApplied) == [
        staking.SlashApplied(operator, announced.fromBonded, announced.fromUnbonding, announced.reporterReward)
    ]
    assert staking.getVotes(operator) == 12_000 * OPG == staking.pool(operator).totalStake
    assert staking.totalBonded() == bonded_before - announced.fromBonded
    assert staking.totalUnbonding() == 3_000 * OPG
    assert token.balanceOf(reporter) == announced.reporterReward
    assert token.balanceOf(treasury) == (
        treasury_before + announced.fromBonded + announced.fromUnbonding - announced.reporterReward
    )
    assert staking.stakeOf(operator, alice) == 6_000 * OPG * 3 // 4, "applying changes no position's value"
    assert staking.unbondingValue(entry_id) == 3_000 * OPG
    assert staking.pendingSlash(operator).fractionBps == 0


def test_apply_slash__nothing_pending__reverts(staking, register, operator, alice, slasher):
    register(operator)
    with ape.reverts(staking.NodeStakingNoPendingSlash, operator=operator.address):
        staking.applySlash(operator, sender=alice)
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    staking.applySlash(operator, sender=alice)
    with ape.reverts(staking.NodeStakingNoPendingSlash, operator=operator.address):
        staking.applySlash(operator, sender=alice)


@pytest.mark.parametrize("action", ["unbond", "withdraw", "set_roles", "unjail", "delegate", "refresh", "second_slash"])
def test_slash__pending__applied_before_any_later_action_on_the_pool(
    chain, staking, register, operator, alice, bob, slasher, action
):
    """Nothing that reads or moves the pool's stake or votes runs on the pre-slash numbers."""
    register(operator, self_bond=4 * MINIMUM_STAKES[INFERENCE])
    staking.stake(operator, 10_000 * OPG, sender=alice)
    entry_id = unbonding_id(staking, staking.unbond(operator, 1_000 * OPG, sender=alice))
    advance(chain, UNBONDING_DELAY)
    tx = staking.slash(operator, 1_000, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    announced = tx.events.filter(staking.Slashed)[0]
    advance(chain, JAIL_DURATION)
    run = {
        "unbond": lambda: staking.unbond(operator, OPG, sender=alice),
        "withdraw": lambda: staking.withdraw(entry_id, sender=bob),
        "set_roles": lambda: staking.setRoles(ROLE_BITS[INFERENCE], sender=operator),
        "unjail": lambda: staking.unjail(sender=operator),
        # `staking.delegate` is ape's EIP-7702 property of any address, so the method is called by name.
        "delegate": lambda: staking.invoke_transaction("delegate", bob, sender=operator),
        "refresh": lambda: staking.refreshActivity(operator, sender=bob),
        "second_slash": lambda: staking.slash(operator, 100, b"\x02" * 32, ZERO_ADDRESS, sender=slasher),
    }[action]
    tx = run()
    applied = tx.events.filter(staking.SlashApplied)
    assert applied == [staking.SlashApplied(operator, announced.fromBonded, announced.fromUnbonding, 0)]
    assert staking.totalBonded() == staking.getVotes(operator) + staking.getVotes(bob) == staking.pool(operator).totalStake
    if action == "withdraw":
        assert tx.events.filter(staking.Withdrawn)[0].amount == 900 * OPG
    if action == "second_slash":
        assert staking.pendingSlash(operator).fractionBps == 100, "the second slash waits in turn"


def test_slash__jail__ends_activity_at_the_slash_in_history_before_and_after_applying(
    chain, staking, register, operator, slasher
):
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    advance(chain, 10)
    before = chain.blocks.head.timestamp
    advance(chain, 10)
    slashed_at = staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher).timestamp
    advance(chain, 10)
    for applied in (False, True):
        if applied:
            staking.applySlash(operator, sender=slasher)
            advance(chain, 10)
        assert staking.wasActiveOperator(operator, INFERENCE, before)
        assert not staking.wasActiveOperator(operator, INFERENCE, slashed_at)
        assert not staking.wasActiveOperator(operator, INFERENCE, slashed_at + 5)
        assert not staking.wasActiveOperator(operator, INFERENCE, chain.blocks.head.timestamp)
    assert staking.pendingSlash(operator).slashedAt == slashed_at


def test_slash__same_evidence_twice__reverts(staking, register, operator, operator2, slasher):
    register(operator)
    register(operator2)
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    with ape.reverts(staking.NodeStakingEvidenceAlreadyUsed, evidenceId=EVIDENCE):
        staking.slash(operator2, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)


@pytest.mark.parametrize("fraction", [0, 5_001])
def test_slash__fraction_out_of_bounds__reverts(staking, register, operator, slasher, fraction):
    register(operator)
    with ape.reverts(staking.NodeStakingSlashFractionOutOfBounds, fractionBps=fraction):
        staking.slash(operator, fraction, EVIDENCE, ZERO_ADDRESS, sender=slasher)


def test_slash__zero_evidence__reverts(staking, register, operator, slasher):
    register(operator)
    with ape.reverts(staking.NodeStakingZeroEvidence):
        staking.slash(operator, 100, b"\x00" * 32, ZERO_ADDRESS, sender=slasher)


def test_slash__unknown_operator__reverts(staking, alice, slasher):
    with ape.reverts(staking.NodeStakingNotOperator):
        staking.slash(alice, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)


def test_slash__unbonding_just_before__does_not_escape_it(chain, staking, token, register, operator, alice, slasher):
    """Regression: a delegator who sees a slash coming and unbonds first still loses the same fraction."""
    register(operator)
    staking.stake(operator, 10_000 * OPG, sender=alice)
    entry_id = unbonding_id(staking, staking.unbond(operator, staking.sharesOf(operator, alice), sender=alice))
    staking.slash(operator, 5_000, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    advance(chain, UNBONDING_DELAY)
    before = token.balanceOf(alice)
    staking.withdraw(entry_id, sender=alice)
    assert token.balanceOf(alice) - before == 5_000 * OPG


def test_unbonding_value__unknown_id__is_zero(staking, register, operator, alice):
    register(operator)
    staking.stake(operator, 1_000 * OPG, sender=alice)
    unknown = int(alice.address, 16) << 96 | staking.pool(operator).index << 64 | 7
    assert staking.unbonding(unknown).owner == ZERO_ADDRESS
    assert staking.unbondingValue(unknown) == 0


def test_slash__again_after_the_jail_was_shortened__keeps_the_longer_term(chain, staking, register, operator, slasher,
                                                                           gov):
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    first_term = staking.pool(operator).jailedUntil
    staking.setJailDuration(JAIL_DURATION // 4, sender=gov)
    staking.slash(operator, 100, b"\x02" * 32, ZERO_ADDRESS, sender=slasher)
    assert staking.pool(operator).jailedUntil == first_term
    advance(chain, JAIL_DURATION // 4)
    with ape.reverts(staking.NodeStakingJailNotOver):
        staking.unjail(sender=operator)


def test_unjail__after_term_with_bond__reactivates(chain, staking, register, operator, slasher):
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    advance(chain, JAIL_DURATION)
    tx = staking.unjail(sender=operator)
    assert staking.isActiveOperator(operator, INFERENCE)
    assert tx.events.filter(staking.Unjailed) == [staking.Unjailed(operator)]


def test_unjail__before_term__reverts(staking, register, operator, slasher):
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    with ape.reverts(staking.NodeStakingJailNotOver):
        staking.unjail(sender=operator)


def test_unjail__self_bond_below_minimum__reverts(chain, staking, register, operator, slasher):
    register(operator)
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    advance(chain, JAIL_DURATION)
    with ape.reverts(staking.NodeStakingSelfBondBelowMinimum):
        staking.unjail(sender=operator)


def test_stake__jailed_operator_tops_up_its_own_bond__pending_slash_first_then_unjail(
    chain, staking, register, operator, slasher
):
    """A slash that leaves the self-bond below the minimum is not a life sentence: the operator (only it) may top
    up while jailed; its pending slash is applied first, so the new stake is not cut by it."""
    register(operator)
    announced = staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher).events.filter(staking.Slashed)[0]
    tx = staking.stake(operator, MINIMUM_STAKES[INFERENCE] // 100, sender=operator)
    assert tx.events.filter(staking.SlashApplied)[0].fromBonded == announced.fromBonded
    assert staking.selfBond(operator) == MINIMUM_STAKES[INFERENCE] - announced.fromBonded + MINIMUM_STAKES[INFERENCE] // 100
    advance(chain, JAIL_DURATION)
    staking.unjail(sender=operator)
    assert staking.isActiveOperator(operator, INFERENCE)


def test_unjail__not_jailed__reverts(staking, register, operator):
    register(operator)
    with ape.reverts(staking.NodeStakingNotJailed, operator=operator.address):
        staking.unjail(sender=operator)


# ------------------------------------------------------------------ rewards


def test_notify_reward__pool_with_stake__commission_then_pro_rata(staking, token, register, operator, alice, bob):
    register(operator)  # 10,000 OPG self-bond, 10% commission
    staking.stake(operator, 30_000 * OPG, sender=alice)
    tx = staking.notifyReward(operator, 1_000 * OPG, sender=bob)
    assert staking.claimableRewards(operator, operator) == 100 * OPG + 900 * OPG // 4
    assert staking.claimableRewards(operator, alice) == 900 * OPG * 3 // 4
    assert staking.rewardReserve() == 1_000 * OPG
    assert tx.events[-1] == staking.RewardNotified(operator, bob, 1_000 * OPG, 100 * OPG)


def test_notify_reward__pool_without_shares__goes_to_treasury(chain, staking, token, register, operator, bob, treasury):
    register(operator)
    staking.unbond(operator, staking.sharesOf(operator, operator), sender=operator)
    before = token.balanceOf(treasury)
    tx = staking.notifyReward(operator, 50 * OPG, sender=bob)
    assert token.balanceOf(treasury) == before + 50 * OPG
    assert staking.rewardReserve() == 0
    assert staking.RewardToTreasury(operator, 50 * OPG) in tx.events


def test_notify_reward__zero__reverts(staking, register, operator, bob):
    register(operator)
    with ape.reverts(staking.NodeStakingZeroAmount):
        staking.notifyReward(operator, 0, sender=bob)


def test_claim__accrued__pays_and_resets(staking, token, register, operator, alice, bob):
    register(operator, commission_bps=0)
    staking.stake(operator, 10_000 * OPG, sender=alice)
    staking.notifyReward(operator, 100 * OPG, sender=bob)
    before = token.balanceOf(alice)
    tx = staking.claimRewards(operator, sender=alice)
    assert token.balanceOf(alice) == before + 50 * OPG
    assert staking.claimableRewards(operator, alice) == 0
    assert tx.events[-1] == staking.RewardClaimed(operator, alice, 50 * OPG)
    with ape.reverts(staking.NodeStakingNothingToClaim):
        staking.claimRewards(operator, sender=alice)


def test_claim__staked_after_reward__earns_nothing_from_it(staking, register, operator, alice, bob):
    register(operator, commission_bps=0)
    staking.notifyReward(operator, 100 * OPG, sender=bob)
    staking.stake(operator, 10_000 * OPG, sender=alice)
    assert staking.claimableRewards(operator, alice) == 0


def test_claim__after_unbonding__keeps_rewards_earned_before(staking, register, operator, alice, bob):
    register(operator, commission_bps=0)
    staking.stake(operator, 10_000 * OPG, sender=alice)
    staking.notifyReward(operator, 100 * OPG, sender=bob)
    entry_id = unbonding_id(staking, staking.unbond(operator, staking.sharesOf(operator, alice), sender=alice))
    staking.notifyReward(operator, 100 * OPG, sender=bob)
    assert staking.claimableRewards(operator, alice) == 50 * OPG


# ------------------------------------------------------------------ governance parameters


@pytest.mark.parametrize(
    "setter, getter, previous, value, event",
    [
        ("setUnbondingDelay", "unbondingDelay", UNBONDING_DELAY, 14 * DAY, "UnbondingDelaySet"),
        ("setReporterReward", "reporterRewardBps", REPORTER_REWARD_BPS, 2_000, "ReporterRewardSet"),
        ("setJailDuration", "jailDuration", JAIL_DURATION, 2 * DAY, "JailDurationSet"),
    ],
)
def test_parameter__set_by_admin__stored_and_emitted(staking, gov, setter, getter, previous, value, event):
    tx = getattr(staking, setter)(value, sender=gov)
    assert getattr(staking, getter)() == value
    assert tx.events == [getattr(staking, event)(previous, value)]


def test_set_minimum_stake__by_admin__stored_and_emitted(staking, gov):
    tx = staking.setMinimumStake(TEE, 30_000 * OPG, sender=gov)
    assert staking.minimumStake(TEE) == 30_000 * OPG
    assert tx.events == [staking.MinimumStakeSet(TEE, MINIMUM_STAKES[TEE], 30_000 * OPG)]


def test_set_treasury__by_admin__stored_and_emitted(staking, gov, treasury, alice):
    tx = staking.setTreasury(alice, sender=gov)
    assert staking.treasury() == alice.address
    assert tx.events == [staking.TreasurySet(treasury, alice)]


def test_set_treasury__zero__reverts(staking, gov):
    with ape.reverts(staking.NodeStakingZeroAddress):
        staking.setTreasury(ZERO_ADDRESS, sender=gov)


def test_set_unbonding_delay__out_of_bounds__reverts(staking, gov):
    with ape.reverts(staking.NodeStakingUnbondingDelayOutOfBounds, delay=29 * DAY):
        staking.setUnbondingDelay(29 * DAY, sender=gov)


def test_slash__later_one_with_shorter_jail__does_not_shorten_the_jail(staking, register, operator, slasher, gov):
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher)
    until = staking.pool(operator).jailedUntil
    staking.setJailDuration(0, sender=gov)
    staking.slash(operator, 100, b"\x02" * 32, ZERO_ADDRESS, sender=slasher)
    assert staking.pool(operator).jailedUntil == until


def test_slash__zero_jail_duration__jail_still_outlasts_its_second(chain, staking, register, operator, slasher, gov):
    """An unjail in the slash's own second would overwrite the jail's activity checkpoint."""
    register(operator, self_bond=2 * MINIMUM_STAKES[INFERENCE])
    staking.setJailDuration(0, sender=gov)
    slashed_at = staking.slash(operator, 100, EVIDENCE, ZERO_ADDRESS, sender=slasher).timestamp
    assert staking.pool(operator).jailedUntil == slashed_at + 1
    advance(chain, 1)
    staking.unjail(sender=operator)
    assert not staking.wasActiveOperator(operator, INFERENCE, slashed_at)


def test_reward_per_share_poisoning__reward_into_a_one_wei_pool_cannot_block_later_stakes(
    staking, register, operator, alice, bob
):
    """An emptied pool, 1 wei staked, then a reward: rewards per share become huge; every later position's
    reward debt must still be representable, so the operator can bond again and delegators can join."""
    register(operator)
    staking.unbond(operator, staking.sharesOf(operator, operator), sender=operator)
    staking.stake(operator, 1, sender=alice)
    staking.notifyReward(operator, OPG, sender=alice)
    staking.claimRewards(operator, sender=alice)
    staking.stake(operator, MINIMUM_STAKES[INFERENCE], sender=operator)
    staking.stake(operator, 1_000 * OPG, sender=bob)
    assert staking.isActiveOperator(operator, INFERENCE)
    staking.notifyReward(operator, OPG, sender=alice)
    assert staking.claimableRewards(operator, bob) > 0
