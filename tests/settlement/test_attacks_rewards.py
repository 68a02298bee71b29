"""Attack regressions for finding A8: stakers' rewards taken by whoever held pool shares when they were distributed.

Settlement v1 kept each price's stakers' share until someone called `distributeStakerRewards`, so the stake that
shared it was the stake bonded at that call, at the commission of that moment. Now the share is paid into the pool
as the price is split. Each test plays the attacker's best sequence; the step "trigger the distribution" is the
call v1 offered and does nothing once there is nothing left to distribute.
"""

import pytest

from opgkit.testing import advance
from settlement_helpers import OPG, PRICE, receipt

BPS = 10_000
STAKERS_BPS = 1_000  # the default fee split's stakers' share
COMMISSION_BPS = 1_000  # `operator`'s commission in conftest.py
NODE_BOND = 50_000 * OPG  # as in conftest.py
DAY = 86_400
# Rewards per share are kept to 36 decimals: a position loses less than 1 wei per reward.
DUST = 2


def trigger_distribution_if_deferred(settlement, operator, sender):
    """The attacker's call right after it staked: v1's `distributeStakerRewards`; v2 has nothing to distribute."""
    if any(method.name == "distributeStakerRewards" for method in settlement.contract_type.mutable_methods):
        settlement.invoke_transaction("distributeStakerRewards", operator, sender=sender)


@pytest.fixture
def earn(settlement, open_model, operator, bob, sign, now):
    """Settle ``count`` priced VANILLA receipts of `operator`, paid by bob; returns the stakers' total share."""

    def earn(label, count):
        for i in range(count):
            r = receipt(f"{label} {i}", open_model, operator.address, now(), payer=bob.address, price=PRICE)
            settlement.settle(r.as_args(), sign(r, operator), sender=bob)
        return count * PRICE * STAKERS_BPS // BPS

    return earn


@pytest.fixture
def sniper(accounts, token, staking, treasury):
    """A fresh account with enough OPG to stake twice the pool."""
    account = accounts.generate_test_account()
    treasury.transfer(account, 10**18)
    token.transfer(account, 1_000_000 * OPG, sender=treasury)
    token.approve(staking, 2**256 - 1, sender=account)
    return account


def test_a8_reward_sniping__just_in_time_staker_gets_nothing_earned_before_it_joined(staking, earn, operator, alice,
                                                                                    sniper, settlement):
    staking.stake(operator, NODE_BOND, sender=alice)  # a long-standing delegator: half the pool
    earned = earn("before the sniper", 9)  # 1.8 OPG for the stakers
    alice_due = (earned - earned * COMMISSION_BPS // BPS) // 2

    pool_stake = staking.pool(operator).totalStake
    staking.stake(operator, 2 * pool_stake, sender=sniper)
    trigger_distribution_if_deferred(settlement, operator, sniper)

    assert staking.claimableRewards(operator, sniper) == 0, "the sniper was paid for work done before it staked"
    assert alice_due - DUST <= staking.claimableRewards(operator, alice) <= alice_due


def test_a8_reward_sniping__staker_that_left_keeps_what_was_earned_while_it_was_bonded(staking, earn, operator, alice,
                                                                                      sniper, settlement):
    staking.stake(operator, NODE_BOND, sender=alice)
    earned = earn("while alice is bonded", 3)
    staking.unbond(operator, staking.sharesOf(operator, alice), sender=alice)
    staking.stake(operator, NODE_BOND, sender=sniper)
    trigger_distribution_if_deferred(settlement, operator, sniper)

    alice_due = (earned - earned * COMMISSION_BPS // BPS) // 2
    assert alice_due - DUST <= staking.claimableRewards(operator, alice) <= alice_due
    assert staking.claimableRewards(operator, sniper) == 0


def test_a8_commission_front_run__rewards_taxed_at_the_rate_in_force_when_earned(chain, staking, earn, operator,
                                                                                alice, settlement):
    staking.stake(operator, NODE_BOND, sender=alice)
    operator_before = staking.claimableRewards(operator, operator)
    earned = earn("at ten percent", 5)

    advance(chain, DAY)  # commission increases are rate-limited to one step a day
    staking.setCommission(COMMISSION_BPS + 500, sender=operator)
    trigger_distribution_if_deferred(settlement, operator, operator)

    commission = earned * COMMISSION_BPS // BPS
    alice_due = (earned - commission) // 2
    assert alice_due - DUST <= staking.claimableRewards(operator, alice) <= alice_due
    operator_gain = staking.claimableRewards(operator, operator) - operator_before
    assert commission + alice_due - DUST <= operator_gain <= commission + alice_due, "commission taxed at the new rate"
