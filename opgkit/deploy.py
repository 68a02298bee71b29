"""Deploy the protocol's contracts in dependency order, wire their roles, and check the wiring."""

from __future__ import annotations

from dataclasses import dataclass, field

from ape import project
from ape.contracts import ContractInstance

OPG = 10**18
DAY = 86_400
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class ProtocolParameters:
    """Deployment parameters, with the defaults `make demo` uses."""

    minimum_stakes: tuple[int, int, int] = (10_000 * OPG, 20_000 * OPG, 50_000 * OPG)
    unbonding_delay: int = 7 * DAY
    reporter_reward_bps: int = 1_000
    jail_duration: int = DAY
    voting_delay: int = DAY
    voting_period: int = 5 * DAY
    proposal_threshold: int = 10_000 * OPG
    quorum_percent: int = 4
    timelock_delay: int = 2 * DAY
    max_heartbeat_age: int = 3_600
    # Attestation services for the TEE registry; empty means the deployer alone (local demos only).
    attestors: tuple[str, ...] = ()
    attestor_threshold: int = 1
    twin_curve_divisor: int = 1_600_000
    twin_min_shares_to_create: int = 1
    twin_protocol_fee_cap: int = 10 * 10**16
    twin_subject_fee_cap: int = 10 * 10**16
    twin_protocol_fee: int = 5 * 10**16
    twin_subject_fee: int = 5 * 10**16
    twin_fee_increase_delay: int = 2 * DAY
    twin_transfer_delay: int = 2 * DAY


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


@dataclass
class Suite:
    deployments: list[Deployment] = field(default_factory=list)

    def add(self, name: str, contract: ContractInstance) -> ContractInstance:
        self.deployments.append(Deployment.of(name, contract))
        return contract

    def __getitem__(self, name: str) -> ContractInstance:
        return next(d.contract for d in self.deployments if d.name == name)


class WiringError(Exception):
    """A deployed contract's roles or parameters differ from what was asked for."""


def deploy_all(deployer, treasury: str, params: ProtocolParameters = ProtocolParameters()) -> Suite:
    """Deploy every contract in dependency order; the timelock ends up as the only admin."""
    suite = Suite()
    token = suite.add("OPGToken", deployer.deploy(project.OPGToken, treasury))
    timelock = suite.add(
        "OPGTimelock", deployer.deploy(project.OPGTimelock, params.timelock_delay, [], [ZERO_ADDRESS], deployer)
    )
    staking = suite.add(
        "NodeStaking",
        deployer.deploy(
            project.NodeStaking,
            token,
            timelock,
            treasury,
            list(params.minimum_stakes),
            params.unbonding_delay,
            params.reporter_reward_bps,
            params.jail_duration,
        ),
    )
    governor = suite.add(
        "OPGGovernor",
        deployer.deploy(
            project.OPGGovernor,
            staking,
            timelock,
            params.voting_delay,
            params.voting_period,
            params.proposal_threshold,
            params.quorum_percent,
        ),
    )
    suite.add("ModelRegistry", deployer.deploy(project.ModelRegistry))
    attestors = list(params.attestors) or [deployer.address]
    verifier = suite.add(
        "AttestorQuorumVerifier",
        deployer.deploy(project.AttestorQuorumVerifier, timelock, attestors, params.attestor_threshold),
    )
    suite.add("TEERegistry", deployer.deploy(project.TEERegistry, staking, verifier, timelock, params.max_heartbeat_age))
    suite.add(
        "TwinMarket",
        deployer.deploy(
            project.TwinMarket,
            timelock,
            treasury,
            treasury,
            params.twin_curve_divisor,
            params.twin_min_shares_to_create,
            params.twin_protocol_fee_cap,
            params.twin_subject_fee_cap,
            params.twin_protocol_fee,
            params.twin_subject_fee,
            params.twin_fee_increase_delay,
            params.twin_transfer_delay,
        ),
    )
    timelock.grantRole(timelock.PROPOSER_ROLE(), governor, sender=deployer)
    timelock.grantRole(timelock.CANCELLER_ROLE(), governor, sender=deployer)
    timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer, sender=deployer)
    verify_wiring(suite, deployer.address, treasury, params)
    return suite


def verify_wiring(suite: Suite, deployer: str, treasury: str, params: ProtocolParameters) -> None:
    """Read every role and parameter back; raise WiringError listing each mismatch."""
    token, timelock, staking, governor, verifier, tees, market = (
        suite[n]
        for n in (
            "OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "AttestorQuorumVerifier", "TEERegistry", "TwinMarket",
        )
    )
    admin = staking.DEFAULT_ADMIN_ROLE()
    checks = {
        "staking admin is the timelock": staking.hasRole(admin, timelock),
        "deployer is not staking admin": not staking.hasRole(admin, deployer),
        "staking bonds OPG": staking.token() == token.address,
        "staking treasury": staking.treasury() == treasury,
        "unbonding delay": staking.unbondingDelay() == params.unbonding_delay,
        "governor votes with staking": governor.token() == staking.address,
        "governor executes through the timelock": governor.timelock() == timelock.address,
        "governor proposes to the timelock": timelock.hasRole(timelock.PROPOSER_ROLE(), governor),
        "governor cancels in the timelock": timelock.hasRole(timelock.CANCELLER_ROLE(), governor),
        "anyone executes ready operations": timelock.hasRole(timelock.EXECUTOR_ROLE(), ZERO_ADDRESS),
        "deployer is not timelock admin": not timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer),
        "timelock delay": timelock.getMinDelay() == params.timelock_delay,
        "quorum": governor.quorumNumerator() == params.quorum_percent,
        "TEE registry admin is the timelock": tees.hasRole(admin, timelock) and not tees.hasRole(admin, deployer),
        "TEE registry checks stake in staking": tees.staking() == staking.address,
        "TEE registry asks the attestor quorum": tees.verifier() == verifier.address,
        "heartbeat age": tees.maxHeartbeatAge() == params.max_heartbeat_age,
        "attestor quorum admin is the timelock": verifier.hasRole(admin, timelock) and not verifier.hasRole(admin, deployer),
        "attestor threshold": verifier.threshold() == params.attestor_threshold,
        "twin market owner is the timelock": market.owner() == timelock.address,
        "twin market fees go to the treasury": market.feeDestination() == treasury,
        "twin market fees": market.fees() == (params.twin_protocol_fee, params.twin_subject_fee),
        "twin market fee delay": market.feeIncreaseDelay() == params.twin_fee_increase_delay,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise WiringError("wiring check failed: " + "; ".join(failed))
