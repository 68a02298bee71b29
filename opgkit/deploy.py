"""Deploy the protocol's contracts in dependency order, wire their roles, and check the wiring."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ape import chain, project
from ape.contracts import ContractInstance
from ape.utils import ZERO_ADDRESS
from eth_utils import keccak, to_checksum_address
from web3.exceptions import TransactionNotFound

from opgkit.cli import UserError, is_unreachable, shown
from opgkit.deployments_record import load_record, save_record
from opgkit.timelock_roles import guardian_roles, role_mismatches, set_timelock_roles

OPG = 10**18
DAY = 86_400
TEE_MODE = 1
# What the settlement contracts start with (their constructors take no slash fractions); governance may change
# them later through setNodeSlash / setRelayerSlash.
NODE_SLASH_BPS = 500  # InferenceSettlement: a node that misses a proof deadline
RELAYER_SLASH_BPS = 1_000  # BatchSettlement: a relayer whose batch is rejected
PROOF_REPORT_MARGIN = 3_600  # InferenceSettlement.PROOF_REPORT_MARGIN
EIP7702_DELEGATION = bytes.fromhex("ef0100")  # the code of an account that delegated to a contract: still one key


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
    # A multisig (a Safe) that may cancel any queued timelock operation: a veto, never an execution of its own.
    guardian: str | None = None
    # Also let the guardian schedule operations (bootstrapping only: it then needs no vote, just the delay).
    guardian_proposes: bool = False
    attestor_threshold: int = 1
    twin_curve_divisor: int = 1_600_000
    twin_min_shares_to_create: int = 1
    twin_protocol_fee_cap: int = 10 * 10**16
    twin_subject_fee_cap: int = 10 * 10**16
    twin_protocol_fee: int = 5 * 10**16
    twin_subject_fee: int = 5 * 10**16
    twin_fee_increase_delay: int = 2 * DAY
    twin_transfer_delay: int = 2 * DAY
    # BatchSettlement. Must stay below `unbonding_delay`, or a relayer could withdraw before a challenge lands.
    challenge_window: int = 3_600
    # InferenceSettlement. With PROOF_REPORT_MARGIN it must fit in `unbonding_delay`, or a node could withdraw
    # before its missed proof is reported.
    proof_window: int = 3_600
    # Both settlement contracts: the oldest receipt accepted (settled individually, or carried by a batch).
    max_receipt_age: int = DAY
    # The example consumer (RiskGatedVault) is deployed only for a model that already exists on the chain.
    example_vault_model: bytes | None = None
    example_vault_max_risk_score: int = 40


@dataclass(frozen=True)
class Deployment:
    """One deployed contract and the transaction that created it; `reused` if a previous run deployed it."""

    name: str
    contract: ContractInstance
    tx_hash: str
    block_number: int
    reused: bool = False


def _json_arg(value):
    if hasattr(value, "address"):  # contracts and accounts
        return str(value.address)
    if isinstance(value, (list, tuple)):
        return [_json_arg(v) for v in value]
    return value if isinstance(value, (int, str)) else str(value)


def code_hash(address: str) -> str:
    return "0x" + keccak(chain.provider.get_code(address)).hex()


@dataclass
class Suite:
    """The contracts of one deployment, mirrored in a deployments record written atomically after each step.

    With a record from an earlier run on the same chain, a step whose constructor arguments match and whose
    recorded code hash is what the chain holds at that address is reused instead of deployed again. Once one
    step deploys anew, every later step does too, since it may depend on the new contract.
    """

    record_path: Path | None = None
    deployments: list[Deployment] = field(default_factory=list)
    _previous: dict = field(default_factory=dict)
    _pending: dict | None = None
    _fresh: bool = False

    def __post_init__(self) -> None:
        if self.record_path is not None:
            record = load_record(self.record_path)
            if record.get("pending") and record["chain_id"] != chain.chain_id:
                raise UserError(f"{self.record_path} holds a deployment pending on chain {record['chain_id']}, not "
                                f"this chain ({chain.chain_id}): finish it there, or give another record")
            if record["chain_id"] == chain.chain_id:
                self._previous = record.get("contracts", {})
                self._pending = record.get("pending")

    def reusable(self, name: str, json_args, identity: str | None = None) -> dict | None:
        """The record of ``name`` if it can be reused: nothing before it was redeployed, same constructor
        arguments (and ``identity``, if given), and the chain still holds the recorded code at its address."""
        previous = self._previous.get(name)
        if (
            not self._fresh
            and previous is not None
            and previous["constructor_args"] == json_args
            and previous.get("identity") == identity
            and code_hash(previous["address"]) == previous["code_hash"]
        ):
            return previous
        return None

    def deploy(self, name: str, deployer, container, *args, identity: str | None = None) -> ContractInstance:
        """Deploy ``container`` as ``name`` unless the record holds a reusable one. ``identity`` names what
        the code depends on beyond its constructor arguments (e.g. the key a generated verifier embeds)."""
        json_args = _json_arg(list(args))
        previous = self.reusable(name, json_args, identity)
        if previous is not None:
            contract = container.at(previous["address"])
            self.deployments.append(Deployment(name, contract, previous["tx_hash"], previous["block"], reused=True))
            return contract
        self._fresh = True
        receipt = self._sent_before(name, deployer, container, args, json_args, identity) or self._send(
            name, deployer, container, args, json_args, identity)
        contract = chain.contracts.instance_from_receipt(receipt, container.contract_type)
        chain.contracts.cache_deployment(contract)  # so ape decodes its events and errors, as its own deploy does
        self.deployments.append(Deployment(name, contract, receipt.txn_hash, receipt.block_number))
        self._pending = None
        self._save(json_args, identity)
        return contract

    def _send(self, name: str, deployer, container, args, json_args, identity: str | None):
        """Sign the creation transaction, record it as pending, then send it and wait for its receipt."""
        txn = container(*args)
        txn.sender = deployer.address
        signed = deployer.sign_transaction(deployer.prepare_transaction(txn))
        if signed is None:
            raise UserError(f"the {name} deployment was not signed; nothing was sent")
        self._pending = {
            "name": name,
            "sender": str(deployer.address),
            "tx_hash": "0x" + bytes(signed.txn_hash).hex(),
            "nonce": signed.nonce,
            "address": str(deployer.get_deployment_address(signed.nonce)),
            "constructor_args": json_args,
        } | ({"identity": identity} if identity is not None else {})
        self._write()
        receipt = chain.provider.send_transaction(signed)
        if not receipt.contract_address:
            raise UserError(f"the {name} deployment {receipt.txn_hash} created no contract; check the node (a local "
                            "node behind ape's `local` network answers before it mines: declare it as a custom "
                            "network, see docs/deploying.md)")
        return receipt

    def _sent_before(self, name: str, deployer, container, args, json_args, identity: str | None):
        """The receipt of this step's deployment if an interrupted run already sent it, else None (send it now).

        A run killed after sending and before recording left the signed transaction's hash as ``pending``. If
        the node never saw it and its nonce is still free, it was never sent or was dropped: deploy (again). If
        it was sent, it is adopted only when it is exactly this step's deployment (same sender, nonce, address
        and creation code with these constructor arguments); a pending deployment of other parameters is never
        silently left behind."""
        pending = self._pending
        if pending is None:
            return None
        try:
            sent = chain.provider.web3.eth.get_transaction(pending["tx_hash"])
        except TransactionNotFound:
            if chain.provider.web3.eth.get_transaction_count(pending["sender"], "latest") <= pending["nonce"]:
                return None
            raise UserError(f"the record's pending {pending['name']} deployment ({pending['tx_hash']}, nonce "
                            f"{pending['nonce']}) is unknown to this node, yet its sender has used that nonce: check "
                            f"what is at {pending['address']}, then remove the record's \"pending\" entry to go on")
        if (pending["name"], pending["constructor_args"], pending.get("identity")) != (name, json_args, identity):
            raise UserError(f"a previous run sent the {pending['name']} deployment {pending['tx_hash']} (to "
                            f"{pending['address']}) with other parameters: restore them to adopt that contract, or "
                            "remove the record's \"pending\" entry to leave it behind and deploy anew")
        receipt = chain.provider.get_receipt(pending["tx_hash"])
        expected = container(*args).data
        if (to_checksum_address(sent["from"]), sent["nonce"], bytes(sent["input"])) != \
                (str(deployer.address), pending["nonce"], bytes(expected)) or receipt.contract_address != pending["address"]:
            raise UserError(f"the record's pending {name} transaction {pending['tx_hash']} is not the deployment it "
                            f"describes (sender {deployer.address}, nonce {pending['nonce']}, these constructor "
                            "arguments): the record was edited or belongs to another run; restore it, or remove its "
                            "\"pending\" entry")
        return receipt if receipt.contract_address and not receipt.failed else None

    def _write(self) -> None:
        if self.record_path is not None:
            save_record(self.record_path, chain.chain_id, self._previous, self._pending)

    def _save(self, json_args, identity: str | None) -> None:
        latest = self.deployments[-1]
        self._previous[latest.name] = {
            "address": str(latest.contract.address),
            "tx_hash": str(latest.tx_hash),
            "block": latest.block_number,
            "constructor_args": json_args,
            "code_hash": code_hash(latest.contract.address),
        } | ({"identity": identity} if identity is not None else {})
        self._write()

    def __getitem__(self, name: str) -> ContractInstance:
        return next(d.contract for d in self.deployments if d.name == name)

    def block_of(self, name: str) -> int:
        """The block ``name`` was deployed in."""
        return next(d.block_number for d in self.deployments if d.name == name)


class WiringError(Exception):
    """A deployed contract's roles or parameters differ from what was asked for."""


class DeploymentBlocked(WiringError, UserError):
    """The deployment cannot go on as asked (a missing model, a settlement already connected elsewhere, roles
    only governance can grant now); the message names the step to take. Raised before the step's transaction."""


@dataclass(frozen=True)
class Step:
    """One contract to deploy: its name (also its project contract type) and its constructor arguments, built
    from the contracts before it (by name: deployed contracts, or for a plan their addresses or placeholders)."""

    name: str
    args: Callable[[Mapping[str, Any]], list]


def deployment_steps(deployer: str, treasury: str, params: ProtocolParameters, handover: bool = True) -> list[Step]:
    """Every contract in dependency order. With ``handover`` the timelock administers everything; without,
    the deployer keeps every admin role (for a testnet you still want to tweak by hand).

    NodeStaking and InferenceSettlement start with the deployer as admin whatever ``handover`` says: the
    deployer wires them (slasher roles, the batch contract) and only then hands them to the timelock."""

    def admin(c):
        return c["OPGTimelock"] if handover else deployer

    attestors = list(params.attestors) or [deployer]
    return [
        Step("OPGToken", lambda c: [treasury]),
        Step("OPGTimelock", lambda c: [params.timelock_delay, [], [ZERO_ADDRESS], deployer]),
        # The deployer administers staking only until settlement may slash; then admin() takes over.
        Step("NodeStaking", lambda c: [c["OPGToken"], deployer, treasury, list(params.minimum_stakes),
                                       params.unbonding_delay, params.reporter_reward_bps, params.jail_duration]),
        Step("OPGGovernor", lambda c: [c["NodeStaking"], c["OPGTimelock"], params.voting_delay, params.voting_period,
                                       params.proposal_threshold, params.quorum_percent]),
        Step("ModelRegistry", lambda c: []),
        Step("AttestorQuorumVerifier", lambda c: [admin(c), attestors, params.attestor_threshold]),
        Step("TEERegistry", lambda c: [c["NodeStaking"], c["AttestorQuorumVerifier"], admin(c),
                                       params.max_heartbeat_age]),
        # The deployer administers settlement only until it is connected to its batch contract.
        Step("InferenceSettlement", lambda c: [c["OPGToken"], c["NodeStaking"], c["ModelRegistry"], c["TEERegistry"],
                                               treasury, deployer, params.proof_window, params.max_receipt_age]),
        Step("BatchSettlement", lambda c: [c["InferenceSettlement"], c["NodeStaking"], c["ModelRegistry"],
                                           c["TEERegistry"], admin(c), params.challenge_window,
                                           params.max_receipt_age]),
        Step("TwinMarket", lambda c: [admin(c), treasury, treasury, params.twin_curve_divisor,
                                      params.twin_min_shares_to_create, params.twin_protocol_fee_cap,
                                      params.twin_subject_fee_cap, params.twin_protocol_fee, params.twin_subject_fee,
                                      params.twin_fee_increase_delay, params.twin_transfer_delay]),
        Step("InferenceRequests", lambda c: [c["InferenceSettlement"], c["ModelRegistry"], c["OPGToken"]]),
    ] + ([Step("RiskGatedVault", lambda c: [c["InferenceSettlement"], c["OPGToken"], params.example_vault_model,
                                            TEE_MODE, params.example_vault_max_risk_score, admin(c)])]
         if params.example_vault_model else [])


@dataclass(frozen=True)
class WiringStep:
    """One wiring step after the deployments; ``done`` reads the chain to tell whether a run already did it."""

    description: str
    done: Callable[[Mapping[str, ContractInstance], str], bool] | None = None  # None: runs every time


def _admin_handed_over(name: str) -> Callable[[Mapping[str, ContractInstance], str], bool]:
    def done(c, deployer):
        contract, admin = c[name], c[name].DEFAULT_ADMIN_ROLE()
        return contract.hasRole(admin, c["OPGTimelock"]) and not contract.hasRole(admin, deployer)
    return done


def _guardian_step(params: ProtocolParameters) -> list[WiringStep]:
    if params.guardian is None:
        return []
    roles = "CANCELLER_ROLE and PROPOSER_ROLE" if params.guardian_proposes else "CANCELLER_ROLE (a veto)"
    return [WiringStep(f"grant the guardian {params.guardian} {roles} on OPGTimelock",
                       lambda c, d: all(c["OPGTimelock"].hasRole(role, params.guardian)
                                        for role in guardian_roles(c["OPGTimelock"], params)))]


def wiring_steps(handover: bool = True, params: ProtocolParameters = ProtocolParameters()) -> list[WiringStep]:
    """What happens after the contracts are deployed, in order (each skipped when already done)."""
    steps = [
        WiringStep("connect BatchSettlement to InferenceSettlement (setBatchSettlement, once ever)",
                   lambda c, d: c["InferenceSettlement"].batchSettlement() == c["BatchSettlement"].address),
        WiringStep("grant InferenceSettlement SLASHER_ROLE on NodeStaking (missed proofs)",
                   lambda c, d: c["NodeStaking"].hasRole(c["NodeStaking"].SLASHER_ROLE(), c["InferenceSettlement"])),
        WiringStep("grant BatchSettlement SLASHER_ROLE on NodeStaking (rejected batches)",
                   lambda c, d: c["NodeStaking"].hasRole(c["NodeStaking"].SLASHER_ROLE(), c["BatchSettlement"])),
        WiringStep("grant OPGGovernor PROPOSER_ROLE and CANCELLER_ROLE on OPGTimelock",
                   lambda c, d: all(c["OPGTimelock"].hasRole(role, c["OPGGovernor"]) for role in
                                    (c["OPGTimelock"].PROPOSER_ROLE(), c["OPGTimelock"].CANCELLER_ROLE()))),
    ] + _guardian_step(params)
    if handover:
        steps += [
            WiringStep("grant OPGTimelock DEFAULT_ADMIN_ROLE on NodeStaking; the deployer renounces it",
                       _admin_handed_over("NodeStaking")),
            WiringStep("grant OPGTimelock DEFAULT_ADMIN_ROLE on InferenceSettlement; the deployer renounces it",
                       _admin_handed_over("InferenceSettlement")),
            WiringStep("the deployer renounces DEFAULT_ADMIN_ROLE on OPGTimelock",
                       lambda c, d: not c["OPGTimelock"].hasRole(c["OPGTimelock"].DEFAULT_ADMIN_ROLE(), d)),
        ]
    return steps + [WiringStep("read every role and parameter back (wiring check)")]


def planned_wiring(planned: list[PlannedStep], deployer: str, handover: bool = True,
                   params: ProtocolParameters = ProtocolParameters()) -> list[tuple[WiringStep, bool]]:
    """Each wiring step with whether the chain shows it done already (only possible when every contract is
    reused: a contract deployed anew starts unwired)."""
    reused = {step.name: getattr(project, step.name).at(step.address) for step in planned if step.action == "reuse"}
    complete = len(reused) == len(planned)
    return [(step, complete and step.done is not None and step.done(reused, deployer))
            for step in wiring_steps(handover, params)]


def deploy_all(
    deployer, treasury: str, params: ProtocolParameters = ProtocolParameters(), record_path: Path | None = None,
    handover: bool = True,
) -> Suite:
    """Deploy every contract in dependency order, wire them, and check the wiring.

    Safe to re-run: with ``record_path``, contracts a previous (perhaps interrupted) run deployed are reused,
    and each wiring step is skipped when the chain already shows it done.
    """
    suite = Suite(record_path)
    deployed: dict[str, ContractInstance] = {}
    for step in deployment_steps(deployer.address, treasury, params, handover):
        if step.name == "RiskGatedVault" and not deployed["ModelRegistry"].exists(params.example_vault_model):
            raise DeploymentBlocked(
                f"example_vault_model 0x{params.example_vault_model.hex()} is not registered in the ModelRegistry at "
                f"{deployed['ModelRegistry'].address}: register the model, then run deploy again (the rest is reused)"
            )
        args = step.args(deployed)
        if step.name == "BatchSettlement":
            _require_free_batch_slot(suite, deployed["InferenceSettlement"], args)
        deployed[step.name] = suite.deploy(step.name, deployer, getattr(project, step.name), *args)
    staking, timelock, governor = deployed["NodeStaking"], deployed["OPGTimelock"], deployed["OPGGovernor"]
    settlement, batches = deployed["InferenceSettlement"], deployed["BatchSettlement"]
    _connect_batches(settlement, batches, deployer)
    _grant_slasher(staking, [settlement, batches], deployer)
    set_timelock_roles(timelock, governor, params, deployer, suite.block_of("OPGTimelock"))
    if handover:
        _hand_to_timelock(staking, timelock, deployer)
        _hand_to_timelock(settlement, timelock, deployer)
        if timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer):
            timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer, sender=deployer)
    verify_wiring(suite, deployer.address, treasury, params, handover)
    return suite


@dataclass(frozen=True)
class PlannedStep:
    name: str
    action: str  # "deploy" or "reuse"
    address: str | None
    args: list


def plan(deployer: str, treasury: str, params: ProtocolParameters, record_path: Path | None,
         handover: bool = True) -> list[PlannedStep]:
    """What ``deploy_all`` would do, without sending anything: reuse or deploy, step by step."""
    suite = Suite(record_path)
    addresses: dict[str, str] = {}
    planned, fresh = [], False
    for step in deployment_steps(deployer, treasury, params, handover):
        args = step.args(addresses)
        previous = None if fresh else suite.reusable(step.name, _json_arg(list(args)))
        if previous is None:
            fresh = True
            addresses[step.name] = f"<new {step.name}>"
            planned.append(PlannedStep(step.name, "deploy", None, _json_arg(list(args))))
        else:
            addresses[step.name] = previous["address"]
            planned.append(PlannedStep(step.name, "reuse", previous["address"], _json_arg(list(args))))
    return planned


_PLACEHOLDER = "0x" + "11" * 20  # stands for a contract not deployed yet when constructor inputs are encoded


def preflight(deployer: str, treasury: str, params: ProtocolParameters, planned: list[PlannedStep],
              handover: bool = True) -> None:
    """Everything about a deployment that can be known before its first transaction; raises DeploymentBlocked.

    Every constructor's inputs must encode to its ABI types (a duration too large for a uint32 would otherwise
    fail after the contracts before it were sent), and the example vault's model must already be registered
    in a ModelRegistry the run reuses.
    """
    addresses = defaultdict(lambda: _PLACEHOLDER, {step.name: step.address for step in planned if step.address})
    for step in deployment_steps(deployer, treasury, params, handover):
        try:
            getattr(project, step.name).constructor.encode_input(*step.args(addresses))
        except Exception as error:  # noqa: BLE001 - eth_abi and ape raise several kinds for one bad value
            if is_unreachable(error):
                raise
            raise DeploymentBlocked(f"{step.name} cannot take these parameters: {shown(str(error))}; fix them in "
                                    "the parameters file") from error
    guardian_code = bytes(chain.provider.get_code(params.guardian)) if params.guardian is not None else b""
    if params.guardian is not None and (not guardian_code or guardian_code.startswith(EIP7702_DELEGATION)):
        raise DeploymentBlocked(f"guardian {params.guardian} has no code on this chain, or only an EIP-7702 "
                                "delegation: it must be the multisig (a Safe) deployed here, not a single key; deploy "
                                "the Safe first or fix the address")
    if params.example_vault_model:
        registry = next(step for step in planned if step.name == "ModelRegistry")
        if registry.action != "reuse" or not project.ModelRegistry.at(registry.address).exists(
                params.example_vault_model):
            raise DeploymentBlocked(
                f"example_vault_model 0x{params.example_vault_model.hex()} is not registered in "
                f"{'the ModelRegistry at ' + registry.address if registry.address else 'a ModelRegistry yet'}: deploy "
                "without example_vault_model first, register the model, then add it and run deploy again")


def _require_free_batch_slot(suite: Suite, settlement, args: list) -> None:
    """Stop before deploying a BatchSettlement that ``settlement`` could never be connected to: it takes one
    batch contract, once ever, and a reused settlement may already have one."""
    current = settlement.batchSettlement()
    if current == ZERO_ADDRESS:
        return
    previous = suite.reusable("BatchSettlement", _json_arg(list(args)))
    if previous is not None and previous["address"] == current:
        return
    raise DeploymentBlocked(
        f"InferenceSettlement at {settlement.address} is already connected to BatchSettlement {current} (a "
        "settlement takes one batch contract, once ever), so a new BatchSettlement could never record batches "
        f"there: deploy with the parameters BatchSettlement {current} was deployed with (challenge_window, "
        "max_receipt_age), or deploy a new InferenceSettlement too (drop it from the deployments record)"
    )


def _connect_batches(settlement, batches, deployer) -> None:
    """``settlement.setBatchSettlement(batches)`` unless already done."""
    current = settlement.batchSettlement()
    if current == batches.address:
        return
    if current != ZERO_ADDRESS:
        raise WiringError(
            f"wiring check failed: InferenceSettlement at {settlement.address} records batches from BatchSettlement "
            f"{current}, not {batches.address}, and can never be connected to another: deploy a new "
            "InferenceSettlement (drop it from the deployments record)"
        )
    if not settlement.hasRole(settlement.DEFAULT_ADMIN_ROLE(), deployer):
        raise DeploymentBlocked(
            f"InferenceSettlement at {settlement.address} is not yet connected to BatchSettlement {batches.address} "
            f"and the deployer no longer administers it: propose setBatchSettlement({batches.address}) through "
            "governance"
        )
    settlement.setBatchSettlement(batches, sender=deployer)


def _grant_slasher(staking, slashers, deployer) -> None:
    """SLASHER_ROLE on staking for each of ``slashers`` (the settlement contracts) that lacks it."""
    admin, slasher = staking.DEFAULT_ADMIN_ROLE(), staking.SLASHER_ROLE()
    missing = [contract for contract in slashers if not staking.hasRole(slasher, contract)]
    if missing and not staking.hasRole(admin, deployer):
        names = " and ".join(f"{c.contract_type.name} at {c.address}" for c in missing)
        calls = ", ".join(f"grantRole(SLASHER_ROLE, {c.address})" for c in missing)
        raise DeploymentBlocked(
            f"{names} {'needs' if len(missing) == 1 else 'need'} SLASHER_ROLE on NodeStaking, which the timelock "
            f"now administers: propose {calls} through governance, then run deploy again"
        )
    for contract in missing:
        staking.grantRole(slasher, contract, sender=deployer)


def _hand_to_timelock(contract, timelock, deployer) -> None:
    """Make the timelock ``contract``'s admin, then the deployer renounces (each skipped when done)."""
    admin = contract.DEFAULT_ADMIN_ROLE()
    if not contract.hasRole(admin, timelock):
        contract.grantRole(admin, timelock, sender=deployer)
    if contract.hasRole(admin, deployer):
        contract.renounceRole(admin, deployer, sender=deployer)


def verify_wiring(suite: Suite, deployer: str, treasury: str, params: ProtocolParameters, handover: bool = True) -> None:
    """Read every role and parameter back; raise WiringError listing each mismatch."""
    token, timelock, staking, governor, models, verifier, tees, settlement, batches, market, requests = (
        suite[n]
        for n in (
            "OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "ModelRegistry", "AttestorQuorumVerifier",
            "TEERegistry", "InferenceSettlement", "BatchSettlement", "TwinMarket", "InferenceRequests",
        )
    )
    admin = staking.DEFAULT_ADMIN_ROLE()
    owner = timelock.address if handover else deployer
    others = deployer if handover else timelock.address
    owner_name = "the timelock" if handover else "the deployer"

    def administers(contract) -> bool:
        return contract.hasRole(admin, owner) and not contract.hasRole(admin, others)

    checks = {
        f"staking admin is {owner_name}": administers(staking),
        "staking bonds OPG": staking.token() == token.address,
        "staking treasury": staking.treasury() == treasury,
        "unbonding delay": staking.unbondingDelay() == params.unbonding_delay,
        "governor votes with staking": governor.token() == staking.address,
        "governor executes through the timelock": governor.timelock() == timelock.address,
        "anyone executes ready operations": timelock.hasRole(timelock.EXECUTOR_ROLE(), ZERO_ADDRESS),
        "deployer is timelock admin only without handover":
            timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer) == (not handover),
        "timelock delay": timelock.getMinDelay() == params.timelock_delay,
        "quorum": governor.quorumNumerator() == params.quorum_percent,
        f"TEE registry admin is {owner_name}": administers(tees),
        "TEE registry checks stake in staking": tees.staking() == staking.address,
        "TEE registry asks the attestor quorum": tees.verifier() == verifier.address,
        "heartbeat age": tees.maxHeartbeatAge() == params.max_heartbeat_age,
        f"attestor quorum admin is {owner_name}": administers(verifier),
        "attestor threshold": verifier.threshold() == params.attestor_threshold,
        f"twin market owner is {owner_name}": market.owner() == owner,
        "twin market fees go to the treasury": market.feeDestination() == treasury,
        "twin market fees": market.fees() == (params.twin_protocol_fee, params.twin_subject_fee),
        "twin market fee delay": market.feeIncreaseDelay() == params.twin_fee_increase_delay,
        "settlement may slash (missed proofs)": staking.hasRole(staking.SLASHER_ROLE(), settlement),
        "batch settlement may slash (rejected batches)": staking.hasRole(staking.SLASHER_ROLE(), batches),
        f"settlement admin is {owner_name}": administers(settlement),
        f"batch settlement admin is {owner_name}": administers(batches),
        "settlement reads staking, models and TEEs": (settlement.staking(), settlement.models(), settlement.teeRegistry())
        == (staking.address, models.address, tees.address),
        "settlement pays in OPG to the treasury": (settlement.token(), settlement.treasury()) == (token.address, treasury),
        "settlement records batches from this BatchSettlement": settlement.batchSettlement() == batches.address,
        "batch settlement records into this InferenceSettlement": batches.settlement() == settlement.address,
        "batch settlement reads staking, models and TEEs": (batches.staking(), batches.models(), batches.teeRegistry())
        == (staking.address, models.address, tees.address),
        "requests pay through this settlement, price from these models, in OPG":
            (requests.settlement(), requests.models(), requests.token()) == (settlement.address, models.address,
                                                                            token.address),
        "settlement may charge the requests contract": token.allowance(requests, settlement) == 2**256 - 1,
        "challenge window": batches.challengeWindow() == params.challenge_window,
        "challenge window below unbonding delay": batches.challengeWindow() < staking.unbondingDelay(),
        "proof window": settlement.proofWindow() == params.proof_window,
        "proof window and report margin within unbonding delay":
            settlement.proofWindow() + settlement.PROOF_REPORT_MARGIN() <= staking.unbondingDelay(),
        "receipt age": settlement.maxReceiptAge() == params.max_receipt_age,
        "batch receipt age": batches.maxReceiptAgeAt(chain.blocks.head.timestamp + 1) == params.max_receipt_age,
        "node slash fraction (missed proof)": settlement.nodeSlashBps() == NODE_SLASH_BPS,
        "relayer slash fraction (rejected batch)": batches.relayerSlashBps() == RELAYER_SLASH_BPS,
    }
    if params.example_vault_model:
        vault = suite["RiskGatedVault"]
        checks["example vault reads settlement"] = vault.settlement() == settlement.address
        checks["example vault model"] = vault.modelId() == params.example_vault_model
        checks[f"example vault owner is {owner_name}"] = vault.owner() == owner
    failed = [name for name, ok in checks.items() if not ok]
    failed += role_mismatches(timelock, governor, params, suite.block_of("OPGTimelock"))
    if failed:
        raise WiringError("wiring check failed: " + "; ".join(failed))
