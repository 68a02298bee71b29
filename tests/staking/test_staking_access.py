"""Access control matrix: every privileged NodeStaking function × every caller lacking its role reverts."""

import pytest

from staking_constants import DAY, INFERENCE, OPG
from opgkit.testing import reverts

EVIDENCE = b"\x02" * 32

# function name, arguments (built from fixtures by name), role constant that guards it
PRIVILEGED = [
    ("slash", lambda f: (f["operator"], 100, EVIDENCE, f["reporter"]), "SLASHER_ROLE"),
    ("setUnbondingDelay", lambda f: (14 * DAY,), "DEFAULT_ADMIN_ROLE"),
    ("setMinimumStake", lambda f: (INFERENCE, 5 * OPG), "DEFAULT_ADMIN_ROLE"),
    ("setReporterReward", lambda f: (0,), "DEFAULT_ADMIN_ROLE"),
    ("setJailDuration", lambda f: (0,), "DEFAULT_ADMIN_ROLE"),
    ("setTreasury", lambda f: (f["alice"],), "DEFAULT_ADMIN_ROLE"),
    ("grantRole", lambda f: (f["slasher_role"], f["alice"]), "DEFAULT_ADMIN_ROLE"),
    ("revokeRole", lambda f: (f["slasher_role"], f["slasher"]), "DEFAULT_ADMIN_ROLE"),
]
CALLERS = ["alice", "operator", "reporter", "gov", "slasher"]


@pytest.fixture(scope="module")
def named(staking, register, operator, alice, reporter, gov, slasher):
    register(operator)
    return {
        "operator": operator, "alice": alice, "reporter": reporter, "gov": gov, "slasher": slasher,
        "slasher_role": staking.SLASHER_ROLE(),
    }


def test_every_mutating_function__is_in_the_matrix_or_open_to_all(staking):
    open_to_all = {
        "applySlash", "registerOperator", "setRoles", "setCommission", "stake", "unbond", "withdraw", "unjail",
        "notifyReward", "claimRewards", "delegate", "delegateBySig", "renounceRole", "refreshActivity",
    }
    mutating = {abi.name for abi in staking.contract_type.mutable_methods}
    assert mutating == open_to_all | {name for name, _, _ in PRIVILEGED}


@pytest.mark.parametrize("caller_name", CALLERS)
@pytest.mark.parametrize("function, build_args, role", PRIVILEGED, ids=[p[0] for p in PRIVILEGED])
def test_privileged_function__caller_without_role__reverts(staking, named, function, build_args, role, caller_name):
    caller = named[caller_name]
    role_id = getattr(staking, role)()
    if staking.hasRole(role_id, caller):
        pytest.skip(f"{caller_name} holds {role}")
    with reverts(staking.AccessControlUnauthorizedAccount, account=caller.address, neededRole=role_id):
        getattr(staking, function)(*build_args(named), sender=caller)


@pytest.mark.parametrize("function, build_args, role", PRIVILEGED, ids=[p[0] for p in PRIVILEGED])
def test_privileged_function__role_holder__succeeds(staking, named, function, build_args, role):
    holder = named["slasher"] if role == "SLASHER_ROLE" else named["gov"]
    getattr(staking, function)(*build_args(named), sender=holder)
