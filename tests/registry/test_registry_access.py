"""Access matrices: every privileged TEERegistry and AttestorQuorumVerifier function × callers without the role."""

import pytest

from registry_helpers import NITRO, PCR_V2
from opgkit.testing import reverts

OUTSIDER = "0x00000000000000000000000000000000000000C0"

TEE_PRIVILEGED = [
    ("addTeeType", lambda f: (7, "Other"), "DEFAULT_ADMIN_ROLE"),
    ("approveMeasurement", lambda f: (PCR_V2, NITRO, 2), "DEFAULT_ADMIN_ROLE"),
    ("setVerifier", lambda f: (OUTSIDER,), "DEFAULT_ADMIN_ROLE"),
    ("setMaxHeartbeatAge", lambda f: (600,), "DEFAULT_ADMIN_ROLE"),
    ("revokeMeasurement", lambda f: (f["pcr"],), "REVOKER_ROLE"),
    ("adminDisable", lambda f: (f["tee_key"],), "REVOKER_ROLE"),
    ("adminEnable", lambda f: (f["tee_key"],), "REVOKER_ROLE"),
    ("grantRole", lambda f: (f["revoker_role"], OUTSIDER), "DEFAULT_ADMIN_ROLE"),
    ("revokeRole", lambda f: (f["revoker_role"], OUTSIDER), "DEFAULT_ADMIN_ROLE"),
]
VERIFIER_PRIVILEGED = [
    ("addAttestor", lambda f: (OUTSIDER,), "DEFAULT_ADMIN_ROLE"),
    ("removeAttestor", lambda f: (f["attestor"],), "DEFAULT_ADMIN_ROLE"),
    ("setThreshold", lambda f: (1,), "DEFAULT_ADMIN_ROLE"),
    ("grantRole", lambda f: (f["admin_role"], OUTSIDER), "DEFAULT_ADMIN_ROLE"),
    ("revokeRole", lambda f: (f["admin_role"], OUTSIDER), "DEFAULT_ADMIN_ROLE"),
]
CALLERS = ["alice", "operator", "deployer"]


@pytest.fixture(scope="module")
def named(tees, verifier, register_tee, operator, alice, deployer, attestor_keys):
    key = register_tee(operator)
    return {
        "alice": alice, "operator": operator, "deployer": deployer, "tee_key": key.address,
        "revoker_role": tees.REVOKER_ROLE(), "admin_role": verifier.DEFAULT_ADMIN_ROLE(),
        "attestor": attestor_keys[2].address,
    }


def _mutating(contract):
    return {abi.name for abi in contract.contract_type.mutable_methods}


def test_tee_registry__every_mutating_function__is_in_the_matrix_or_open(tees):
    open_to_operators = {"registerTee", "reattest", "heartbeat", "setEnabled", "renounceRole"}
    assert _mutating(tees) == open_to_operators | {name for name, _, _ in TEE_PRIVILEGED}


def test_verifier__every_mutating_function__is_in_the_matrix(verifier):
    assert _mutating(verifier) == {"renounceRole"} | {name for name, _, _ in VERIFIER_PRIVILEGED}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("function, build_args, role", TEE_PRIVILEGED, ids=[p[0] for p in TEE_PRIVILEGED])
def test_tee_registry__caller_without_role__reverts(tees, named, function, build_args, role, caller):
    account, role_id = named[caller], getattr(tees, role)()
    args = build_args(named | {"pcr": bytes.fromhex("11" * 32)})  # access is checked before existence
    with reverts(tees.AccessControlUnauthorizedAccount, account=account.address, neededRole=role_id):
        getattr(tees, function)(*args, sender=account)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("function, build_args, role", VERIFIER_PRIVILEGED, ids=[p[0] for p in VERIFIER_PRIVILEGED])
def test_verifier__caller_without_role__reverts(verifier, named, function, build_args, role, caller):
    account, role_id = named[caller], getattr(verifier, role)()
    with reverts(verifier.AccessControlUnauthorizedAccount, account=account.address, neededRole=role_id):
        getattr(verifier, function)(*build_args(named), sender=account)
