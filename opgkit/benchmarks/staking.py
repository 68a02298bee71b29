"""NodeStaking gas: register, stake, unbond, withdraw, rewards, and slashing with 1 vs 50 delegators or unbonding
entries (a slash is recorded in O(1) writes; `applySlash` measures the part deferred to the pool's next action)."""

from __future__ import annotations

from ape import accounts, chain, project

from opgkit.benchmarks import GasRow, gas_of

OPG = 10**18
DAY = 86_400
MINIMUM_STAKES = [10_000 * OPG, 20_000 * OPG, 50_000 * OPG]
INFERENCE_ROLE_MASK = 1
MANY_DELEGATORS = 50
MANY_UNBONDINGS = 50
# Share-rate slashing (Cosmos, EigenLayer) costs the same whatever the number of delegators.
SLASH_RATIO_LIMIT = 1.05
NO_ANCHOR = "no external anchor; tracked for regressions"
# Targets the staking issue sets: a slash cheap enough that a challenge fits 150,000, and a cheaper unbond.
SLASH_TARGET = 80_000
UNBOND_TARGET = 180_000
UNBOND_AGAIN = "unbond (pool already unbonding)"


def _deploy(deployer, funder):
    token = deployer.deploy(project.OPGToken, funder)
    staking = deployer.deploy(project.NodeStaking, token, deployer, funder, MINIMUM_STAKES, 7 * DAY, 1_000, DAY)
    staking.grantRole(staking.SLASHER_ROLE(), deployer, sender=deployer)
    return token, staking


def _fund(token, staking, funder, account, amount=1_000_000 * OPG):
    token.transfer(account, amount, sender=funder)
    token.approve(staking, 2**256 - 1, sender=account)


def _pool_with_delegators(token, staking, funder, operator, delegators):
    _fund(token, staking, funder, operator)
    staking.registerOperator(INFERENCE_ROLE_MASK, MINIMUM_STAKES[0], 1_000, sender=operator)
    for delegator in delegators:
        _fund(token, staking, funder, delegator, 10_000 * OPG)
        staking.stake(operator, 1_000 * OPG, sender=delegator)


def _kept(receipts, receipt):
    receipts.append(receipt)
    return receipt


def _extra_delegators(funder, count):
    generated = [accounts.test_accounts.generate_test_account() for _ in range(count)]
    for account in generated:
        funder.transfer(account, 10**17)
    return generated


def measure(deployer, test_accounts) -> list[GasRow]:
    funder, operator, delegator, payer, big_operator = test_accounts[:5]
    token, staking = _deploy(deployer, funder)
    _fund(token, staking, funder, operator)
    _fund(token, staking, funder, delegator)
    _fund(token, staking, funder, payer)

    unbonds = []
    gas = {
        "registerOperator (self-bond)": gas_of(lambda: staking.registerOperator(INFERENCE_ROLE_MASK, MINIMUM_STAKES[0], 1_000, sender=operator)),
        "stake (delegate, first time)": gas_of(lambda: staking.stake(operator, 5_000 * OPG, sender=delegator)),
        "stake (delegate, top-up)": gas_of(lambda: staking.stake(operator, 5_000 * OPG, sender=delegator)),
        "notifyReward": gas_of(lambda: staking.notifyReward(operator, 100 * OPG, sender=payer)),
        "claimRewards": gas_of(lambda: staking.claimRewards(operator, sender=delegator)),
        "unbond (the contract's first unbonding: fresh pool and total slots)": gas_of(lambda: _kept(unbonds, staking.unbond(operator, 1_000 * OPG,
                                                                                          sender=delegator))),
        UNBOND_AGAIN: gas_of(lambda: staking.unbond(operator, 1_000 * OPG, sender=delegator)),
    }
    chain.pending_timestamp = chain.blocks.head.timestamp + 7 * DAY
    chain.mine()
    first_id = unbonds[0].events.filter(staking.UnbondingStarted)[0].id
    gas["withdraw"] = gas_of(lambda: staking.withdraw(first_id, sender=delegator))

    _pool_with_delegators(token, staking, funder, big_operator, _extra_delegators(funder, MANY_DELEGATORS))
    small_pool_operator = test_accounts[5]
    _pool_with_delegators(token, staking, funder, small_pool_operator, [test_accounts[6]])
    unbonding_operator = test_accounts[7]
    _pool_with_delegators(token, staking, funder, unbonding_operator, [test_accounts[8]])
    for _ in range(MANY_UNBONDINGS):
        staking.unbond(unbonding_operator, OPG, sender=test_accounts[8])
    slash_one = gas_of(lambda: staking.slash(small_pool_operator, 1_000, b"\x01" * 32, payer, sender=deployer))
    slash_many = gas_of(lambda: staking.slash(big_operator, 1_000, b"\x02" * 32, payer, sender=deployer))
    slash_unbonding = gas_of(lambda: staking.slash(unbonding_operator, 1_000, b"\x03" * 32, payer, sender=deployer))
    apply_one = gas_of(lambda: staking.applySlash(small_pool_operator, sender=payer))
    apply_many = gas_of(lambda: staking.applySlash(big_operator, sender=payer))

    rows = [GasRow("NodeStaking", op, value, None, NO_ANCHOR, UNBOND_TARGET if op == UNBOND_AGAIN else None)
            for op, value in gas.items()]
    rows.append(GasRow("NodeStaking", "slash (1 delegator)", slash_one, None, NO_ANCHOR, SLASH_TARGET))
    ratio_anchor = f"slash with 1 delegator; share-rate slashing must stay within ×{SLASH_RATIO_LIMIT}"
    rows.append(GasRow("NodeStaking", f"slash ({MANY_DELEGATORS} delegators)", slash_many, slash_one, ratio_anchor,
                       SLASH_TARGET))
    rows.append(GasRow("NodeStaking", f"slash ({MANY_UNBONDINGS} unbonding entries)", slash_unbonding, slash_one,
                       ratio_anchor, SLASH_TARGET))
    rows.append(GasRow("NodeStaking", "applySlash (deferred part: stake, votes, activity, reporter and treasury paid)",
                       apply_one, None, NO_ANCHOR))
    rows.append(GasRow("NodeStaking", f"applySlash ({MANY_DELEGATORS} delegators)", apply_many, apply_one,
                       f"applySlash with 1 delegator; must stay within ×{SLASH_RATIO_LIMIT}"))
    return rows
