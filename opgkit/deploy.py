"""Deploy the protocol's contracts in dependency order and report what was deployed."""

from __future__ import annotations

from dataclasses import dataclass

from ape import project
from ape.contracts import ContractInstance


@dataclass(frozen=True)
class Deployment:
    """One deployed contract and the transaction that created it."""

    name: str
    contract: ContractInstance
    tx_hash: str
    block_number: int

    @classmethod
    def of(cls, name: str, contract: ContractInstance) -> "Deployment":
        receipt = contract.creation_metadata.receipt
        return cls(name=name, contract=contract, tx_hash=receipt.txn_hash, block_number=receipt.block_number)


def deploy_token(deployer, treasury: str) -> Deployment:
    """Deploy OPGToken, minting the whole supply to ``treasury``."""
    return Deployment.of("OPGToken", deployer.deploy(project.OPGToken, treasury))


def deploy_all(deployer, treasury: str) -> list[Deployment]:
    """Deploy every contract that exists, in dependency order."""
    return [deploy_token(deployer, treasury)]
