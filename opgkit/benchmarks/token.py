"""OPGToken gas: transfer, approve, transferFrom, permit, delegate, delegateBySig."""

from __future__ import annotations

from ape import chain, project
from eth_account import Account

from opgkit.benchmarks import GasRow
from opgkit.token_signatures import build_delegation, build_permit, sign

REFERENCE = "OpenZeppelin ERC20+ERC20Permit, no votes (`ReferencePermitToken`, same run)"
# Storage floor of a first delegation: 21,000 intrinsic + three zero-to-nonzero slots at 22,100 each
# (the delegate, the checkpoint array's length, the first checkpoint), before events and reads.
DELEGATE_FLOOR = 21_000 + 3 * 22_100
DELEGATE_FLOOR_SOURCE = "floor: intrinsic + 3 new slots (delegate, checkpoint length, checkpoint)"
UNIT = 10**18
HOUR = 3600


def _gas(receipt) -> int:
    return receipt.gas_used


def _erc20_operations(token, owner, holder, newcomer, spender, signer) -> dict[str, int]:
    """Gas of the ERC-20/2612 operations both tokens share, in a fixed order and starting state."""
    gas = {
        "transfer (new holder)": _gas(token.transfer(holder, 100 * UNIT, sender=owner)),
        "transfer (existing holder)": _gas(token.transfer(holder, 100 * UNIT, sender=owner)),
        "approve": _gas(token.approve(spender, 50 * UNIT, sender=holder)),
        "transferFrom": _gas(token.transferFrom(holder, newcomer, 10 * UNIT, sender=spender)),
    }
    token.transfer(signer.address, 100 * UNIT, sender=owner)
    deadline = chain.pending_timestamp + HOUR
    signature = sign(build_permit(token, signer.address, spender.address, 10 * UNIT, deadline), signer.key)
    gas["permit"] = _gas(token.permit(signer.address, spender, 10 * UNIT, deadline, signature.v, signature.r, signature.s, sender=spender))
    return gas


def measure(deployer, accounts) -> list[GasRow]:
    owner, holder, newcomer, spender = accounts[:4]
    signer = Account.create()
    opg = deployer.deploy(project.OPGToken, owner)
    reference = deployer.deploy(project.ReferencePermitToken, owner)

    opg_gas = _erc20_operations(opg, owner, holder, newcomer, spender, signer)
    reference_gas = _erc20_operations(reference, owner, holder, newcomer, spender, Account.create())
    rows = [GasRow("OPGToken", op, gas, reference_gas[op], REFERENCE) for op, gas in opg_gas.items()]

    delegate_gas = _gas(opg.invoke_transaction("delegate", holder, sender=holder))
    rows.append(GasRow("OPGToken", "delegate (first, to self)", delegate_gas, DELEGATE_FLOOR, DELEGATE_FLOOR_SOURCE))

    delegation = build_delegation(opg, signer.address, newcomer.address, chain.pending_timestamp + HOUR)
    signature = sign(delegation, signer.key)
    by_sig = opg.delegateBySig(delegation.delegatee, delegation.nonce, delegation.expiry, signature.v, signature.r, signature.s, sender=spender)
    rows.append(GasRow("OPGToken", "delegateBySig (first)", _gas(by_sig), delegate_gas, "OPGToken delegate (same run): the signature's cost"))

    opg.invoke_transaction("delegate", newcomer, sender=newcomer)
    both_delegated = opg.transfer(newcomer, 10 * UNIT, sender=holder)
    rows.append(GasRow("OPGToken", "transfer (both sides delegated)", _gas(both_delegated), opg_gas["transfer (existing holder)"], "OPGToken transfer with no delegation (same run)"))
    return rows
