"""NodeStaking gas: register, stake, unbond, withdraw, rewards, and slashing with 1 vs 50 delegators."""

from __future__ import annotations

from ape import accounts, chain, project

from opgkit.benchmarks import GasRow, gas_of

OPG = 10**18
DAY = 86_400
MINIMUM_STAKES = [10_000 * OPG, 20_000 * OPG, 50_000 * OPG]
INFERENCE_ROLE_MASK = 1
MANY_DELEGATORS = 50
# Share-rate slashing (Cosmos, EigenLayer) costs the same whatever the number of delegators.
SLASH_RATIO_LIMIT = 1.05
NO_ANCHOR = "no external anchor; tracked for regressions"


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

    gas = {
        "registerOperator (self-bond)": gas_of(lambda: staking.registerOperator(INFERENCE_ROLE_MASK, MINIMUM_STAKES[0], 1_000, sender=operator)),
        "stake (delegate, first time)": gas_of(lambda: staking.stake(operator, 5_000 * OPG, sender=delegator)),
        "stake (delegate, top-up)": gas_of(lambda: staking.stake(operator, 5_000 * OPG, sender=delegator)),
        "notifyReward": gas_of(lambda: staking.notifyReward(operator, 100 * OPG, sender=payer)),
        "claimRewards": gas_of(lambda: staking.claimRewards(operator, sender=delegator)),
        "unbond": gas_of(lambda: staking.unbond(operator, 1_000 * OPG, sender=delegator)),
    }
    chain.pending_timestamp = chain.blocks.head.timestamp + 7 * DAY
    chain.mine()
    gas["withdraw"] = gas_of(lambda: staking.withdraw(1, sender=delegator))

    _pool_with_delegators(token, staking, funder, big_operator, _extra_delegators(funder, MANY_DELEGATORS))
    small_pool_operator = test_accounts[5]
    _pool_with_delegators(token, staking, funder, small_pool_operator, [test_accounts[6]])
    slash_one = gas_of(lambda: staking.slash(small_pool_operator, 1_000, b"\x01" * 32, payer, sender=deployer))
    slash_many = gas_of(lambda: staking.slash(big_operator, 1_000, b"\x02" * 32, payer, sender=deployer))

    rows = [GasRow("NodeStaking", op, value, None, NO_ANCHOR) for op, value in gas.items()]
    rows.append(GasRow("NodeStaking", "slash (1 delegator)", slash_one, None, NO_ANCHOR))
    rows.append(
        GasRow(
            "NodeStaking",
            f"slash ({MANY_DELEGATORS} delegators)",
            slash_many,
            slash_one,
            f"slash with 1 delegator; share-rate slashing must stay within ×{SLASH_RATIO_LIMIT}",
        )
    )
    return rows
