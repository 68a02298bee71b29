"""OPGToken gas: transfer, approve, transferFrom, permit, delegate, delegateBySig."""

from __future__ import annotations

from ape import project
from eth_account import Account
from eth_utils import keccak

from opgkit.benchmarks import GasRow, gas_of
from opgkit.token_signatures import build_delegation, build_permit, sign

REFERENCE = "OpenZeppelin ERC20+ERC20Permit, no votes (`ReferencePermitToken`, same run)"
# Storage floor of a first delegation: 21,000 intrinsic + three zero-to-nonzero slots at 22,100 each
# (the delegate, the checkpoint array's length, the first checkpoint), before events and reads.
DELEGATE_FLOOR = 21_000 + 3 * 22_100
DELEGATE_FLOOR_SOURCE = "floor: intrinsic + 3 new slots (delegate, checkpoint length, checkpoint)"
UNIT = 10**18
# Fixed keys and deadline keep calldata, and so gas, identical from run to run.
DEADLINE = 4_102_444_800  # 2100-01-01
PERMIT_SIGNER = Account.from_key(keccak(text="opg gas benchmark: permit signer"))
REFERENCE_PERMIT_SIGNER = Account.from_key(keccak(text="opg gas benchmark: reference permit signer"))


def _erc20_operations(token, owner, holder, newcomer, spender, signer) -> dict[str, int]:
    """Gas of the ERC-20/2612 operations both tokens share, in a fixed order and starting state."""
    gas = {
        "transfer (new holder)": gas_of(lambda: token.transfer(holder, 100 * UNIT, sender=owner)),
        "transfer (existing holder)": gas_of(lambda: token.transfer(holder, 100 * UNIT, sender=owner)),
        "approve": gas_of(lambda: token.approve(spender, 50 * UNIT, sender=holder)),
        "transferFrom": gas_of(lambda: token.transferFrom(holder, newcomer, 10 * UNIT, sender=spender)),
    }
    token.transfer(signer.address, 100 * UNIT, sender=owner)
    sig = sign(build_permit(token, signer.address, spender.address, 10 * UNIT, DEADLINE), signer.key)
    gas["permit"] = gas_of(lambda: token.permit(signer.address, spender, 10 * UNIT, DEADLINE, sig.v, sig.r, sig.s, sender=spender))
    return gas


def measure(deployer, accounts) -> list[GasRow]:
    owner, holder, newcomer, spender = accounts[:4]
    opg = deployer.deploy(project.OPGToken, owner)
    reference = deployer.deploy(project.ReferencePermitToken, owner)

    opg_gas = _erc20_operations(opg, owner, holder, newcomer, spender, PERMIT_SIGNER)
    reference_gas = _erc20_operations(reference, owner, holder, newcomer, spender, REFERENCE_PERMIT_SIGNER)
    rows = [GasRow("OPGToken", op, gas, reference_gas[op], REFERENCE) for op, gas in opg_gas.items()]

    delegate_gas = gas_of(lambda: opg.invoke_transaction("delegate", holder, sender=holder))
    rows.append(GasRow("OPGToken", "delegate (first, to self)", delegate_gas, DELEGATE_FLOOR, DELEGATE_FLOOR_SOURCE))

    delegation = build_delegation(opg, PERMIT_SIGNER.address, newcomer.address, DEADLINE)
    sig = sign(delegation, PERMIT_SIGNER.key)
    by_sig_gas = gas_of(lambda: opg.delegateBySig(delegation.delegatee, delegation.nonce, DEADLINE, sig.v, sig.r, sig.s, sender=spender))
    rows.append(GasRow("OPGToken", "delegateBySig (first)", by_sig_gas, delegate_gas, "OPGToken delegate (same run): the signature's cost"))

    opg.invoke_transaction("delegate", newcomer, sender=newcomer)
    both_delegated = gas_of(lambda: opg.transfer(newcomer, 10 * UNIT, sender=holder))
    rows.append(GasRow("OPGToken", "transfer (both sides delegated)", both_delegated, opg_gas["transfer (existing holder)"], "OPGToken transfer with no delegation (same run)"))
    return rows
