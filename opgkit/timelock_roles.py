"""Who may schedule and cancel in the timelock: the governor, and the guardian the parameters name, no one else.

``TimelockController`` does not enumerate role holders, so they are read from its ``RoleGranted`` logs since
it was deployed, each confirmed with ``hasRole``. A guardian dropped or replaced in the parameters between an
interrupted run and its resume would otherwise keep its power unseen: the deploy revokes every holder it did
not ask for while it still administers the timelock, and the wiring check compares the exact sets.
"""

from __future__ import annotations

from ape import chain

from opgkit.cli import UserError


def guardian_roles(timelock, params) -> list[bytes]:
    """The timelock roles ``params`` gives its guardian: cancelling, and proposing if asked."""
    if params.guardian is None:
        return []
    return [timelock.CANCELLER_ROLE()] + ([timelock.PROPOSER_ROLE()] if params.guardian_proposes else [])


def expected_holders(timelock, governor, params) -> dict[bytes, set[str]]:
    """PROPOSER_ROLE and CANCELLER_ROLE: exactly who should hold each."""
    wanted = {timelock.PROPOSER_ROLE(): {str(governor.address)}, timelock.CANCELLER_ROLE(): {str(governor.address)}}
    for role in guardian_roles(timelock, params):
        wanted[role].add(params.guardian)
    return wanted


def role_holders(timelock, role: bytes, from_block: int) -> set[str]:
    """Every account holding ``role`` now, from the timelock's grants since ``from_block``."""
    granted = {str(log.account) for log in timelock.RoleGranted.range(from_block, chain.blocks.head.number + 1)
               if bytes(log.role) == bytes(role)}
    return {account for account in granted if timelock.hasRole(role, account)}


def role_mismatches(timelock, governor, params, from_block: int) -> list[str]:
    """Each holder too many or too few, in words; empty when the roles are exactly as asked."""
    problems = []
    for role, wanted in expected_holders(timelock, governor, params).items():
        name = "PROPOSER_ROLE" if role == timelock.PROPOSER_ROLE() else "CANCELLER_ROLE"
        held = role_holders(timelock, role, from_block)
        problems += [f"{account} holds {name} on the timelock but was not asked to" for account in sorted(held - wanted)]
        problems += [f"{account} lacks {name} on the timelock" for account in sorted(wanted - held)]
    return problems


def set_timelock_roles(timelock, governor, params, deployer, from_block: int) -> None:
    """Grant what is missing and revoke what was not asked for, while the deployer still administers the
    timelock; once it has handed over, a change must go through governance."""
    admin = timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer)
    for role, wanted in expected_holders(timelock, governor, params).items():
        held = role_holders(timelock, role, from_block)
        name = "PROPOSER_ROLE" if role == timelock.PROPOSER_ROLE() else "CANCELLER_ROLE"
        changes = [("grantRole", account) for account in sorted(wanted - held)] + \
                  [("revokeRole", account) for account in sorted(held - wanted)]
        if changes and not admin:
            calls = ", ".join(f"{method}({name}, {account})" for method, account in changes)
            raise UserError(f"the timelock's roles differ from the parameters and the timelock now administers "
                            f"itself: propose {calls} through governance (the timelock as target), or restore the "
                            "parameters, then run deploy again")
        for method, account in changes:
            getattr(timelock, method)(role, account, sender=deployer)
