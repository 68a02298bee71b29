"""Finding the right contract at a user-given address, with a message that says what is there instead."""

from __future__ import annotations

from ape import chain
from ape.contracts import ContractContainer, ContractInstance

from opgkit.cli.errors import UserError


def missing_functions(code: bytes, container: ContractContainer) -> list[str]:
    """The external functions of ``container`` whose selectors ``code``'s dispatcher does not contain."""
    abi = container.contract_type
    missing = []
    for signature, selector in abi.method_identifiers.items():
        needle = bytes.fromhex(selector[2:]).lstrip(b"\0")  # solc pushes a selector's leading zero bytes implicitly
        if needle not in code:
            missing.append(signature)
    return sorted(missing)


def contract_at(container: ContractContainer, address: str, option: str) -> ContractInstance:
    """``container`` at ``address`` once the chain shows that contract there: code, and every one of its functions.

    ``option`` names where the address came from (e.g. ``--market``) for the message.
    """
    name = container.contract_type.name
    code = bytes(chain.provider.get_code(address))
    if not code:
        raise UserError(f"{option} {address} has no contract code on this chain (an account, or a contract deployed "
                        f"on another chain); give the {name} address, or deploy first")
    missing = missing_functions(code, container)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(f"{option} {address} is some other contract, not {name}: its code lacks {shown}; give the "
                        f"{name} address")
    # The project's ABI alone: ape would otherwise merge in an ABI it cached on disk for this address, which
    # after a redeploy at the same address (a restarted development chain) holds the old contract's events.
    return chain.contracts.instance_at(address, contract_type=container.contract_type, fetch_from_explorer=False,
                                       fetch_from_disk=False, replace=True, detect_proxy=False)
