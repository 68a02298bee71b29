"""A Safe multisig as the timelock's guardian, with real Safe 1.4.1 contracts from npm's build artifacts.

Owners sign SafeTx messages (eip712's Safe type, ape-safe's signature encoding) and any account submits them.
The guardian vetoes an operation governance queued; with the proposer role it schedules one that anyone
executes after the delay; with the canceller role alone it cannot schedule anything; one owner is not enough.
"""

import dataclasses
import json

import pytest
from ape.contracts import ContractContainer
from ape.utils import ZERO_ADDRESS
from ape_safe.utils import encode_signatures
from eip712.common import create_safe_tx_def
from eth_utils import keccak
from ethpm_types import ContractType

from opgkit import PROJECT_ROOT
from opgkit.cli import UserError
from opgkit.deploy import DeploymentBlocked, ProtocolParameters, deploy_all, plan, planned_wiring, preflight
from opgkit.testing import advance, reverts

SAFE_ARTIFACTS = PROJECT_ROOT / "node_modules" / "@safe-global" / "safe-contracts" / "build" / "artifacts" / "contracts"
SAFE_VERSION = "1.4.1"
FOR = 1
INFERENCE = 1


def artifact(relative: str) -> ContractContainer:
    """A contract of the official Safe npm package, from its build artifact."""
    data = json.loads((SAFE_ARTIFACTS / relative).read_text())
    return ContractContainer(ContractType.model_validate({
        "contractName": data["contractName"], "abi": data["abi"],
        "deploymentBytecode": {"bytecode": data["bytecode"]},
        "runtimeBytecode": {"bytecode": data["deployedBytecode"]},
    }))


SAFE = artifact("Safe.sol/Safe.json")


@pytest.fixture(scope="module")
def owners(alice, bob, carol):
    return [alice, bob, carol]


@pytest.fixture(scope="module")
def safe(deployer, owners):
    """A 2-of-3 Safe proxy, created through the official factory."""
    singleton = deployer.deploy(SAFE)
    factory = deployer.deploy(artifact("proxies/SafeProxyFactory.sol/SafeProxyFactory.json"))
    handler = deployer.deploy(artifact("handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json"))
    setup = singleton.setup.encode_input([o.address for o in owners], 2, ZERO_ADDRESS, b"", handler, ZERO_ADDRESS, 0,
                                         ZERO_ADDRESS)
    created = factory.createProxyWithNonce(singleton, setup, 0, sender=deployer)
    proxy = SAFE.at(created.events.filter(factory.ProxyCreation)[0].proxy)
    assert (proxy.getThreshold(), proxy.VERSION()) == (2, SAFE_VERSION)
    return proxy


def safe_execute(safe, signers, target, calldata: bytes, submitter):
    """Have ``signers`` (owners) sign a SafeTx calling ``target`` and ``submitter`` (anyone) execute it."""
    SafeTx = create_safe_tx_def(version=SAFE_VERSION, contract_address=safe.address, chain_id=safe.provider.chain_id)
    message = SafeTx(to=target, value=0, data=calldata, operation=0, safeTxGas=0, baseGas=0, gasPrice=0,
                     gasToken=ZERO_ADDRESS, refundReceiver=ZERO_ADDRESS,
                     nonce=safe.call_view_method("nonce"))  # `.nonce` is the account nonce in ape
    signatures = encode_signatures({signer.address: signer.sign_message(message) for signer in signers})
    return safe.execTransaction(target, 0, calldata, 0, 0, 0, 0, ZERO_ADDRESS, ZERO_ADDRESS, signatures,
                                sender=submitter)


@pytest.fixture(scope="module")
def suite(deployer, treasury, safe):
    """The protocol with the Safe as a guardian that also proposes (bootstrapping)."""
    params = dataclasses.replace(ProtocolParameters(), guardian=safe.address, guardian_proposes=True)
    return deploy_all(deployer, treasury.address, params)


def test_guardian__deployed_and_wired__cancels_and_proposes_in_the_timelock(suite, safe):
    timelock = suite["OPGTimelock"]
    assert timelock.hasRole(timelock.CANCELLER_ROLE(), safe) and timelock.hasRole(timelock.PROPOSER_ROLE(), safe)
    assert not timelock.hasRole(timelock.EXECUTOR_ROLE(), safe)  # anyone executes (address(0)), never only it


def test_guardian__two_of_three_schedule__anyone_executes_after_the_delay(suite, safe, owners, deployer, chain):
    timelock, tees = suite["OPGTimelock"], suite["TEERegistry"]
    call, salt, delay = tees.addTeeType.encode_input(7, "Intel TDX"), keccak(text="guardian proposal"), \
        timelock.getMinDelay()
    safe_execute(safe, owners[:2], timelock.address,
                 timelock.schedule.encode_input(tees.address, 0, call, bytes(32), salt, delay), deployer)
    operation = timelock.hashOperation(tees.address, 0, call, bytes(32), salt)
    assert timelock.isOperationPending(operation)
    with reverts():
        timelock.execute(tees.address, 0, call, bytes(32), salt, sender=deployer)  # not before the delay
    advance(chain, delay + 1)
    timelock.execute(tees.address, 0, call, bytes(32), salt, sender=deployer)
    assert tees.teeTypeName(7) == "Intel TDX"


def test_guardian__one_signature_of_a_two_of_three__refused(suite, safe, owners, deployer):
    timelock, tees = suite["OPGTimelock"], suite["TEERegistry"]
    call = tees.addTeeType.encode_input(8, "AMD SEV-SNP")
    schedule = timelock.schedule.encode_input(tees.address, 0, call, bytes(32), bytes(32), timelock.getMinDelay())
    with reverts():  # GS020: signatures data too short
        safe_execute(safe, owners[:1], timelock.address, schedule, deployer)
    assert not timelock.isOperation(timelock.hashOperation(tees.address, 0, call, bytes(32), bytes(32)))


def test_guardian__vetoes_an_operation_governance_queued(suite, safe, owners, deployer, treasury, operator, chain):
    token, staking, governor, timelock, tees = (suite[n] for n in ("OPGToken", "NodeStaking", "OPGGovernor",
                                                                   "OPGTimelock", "TEERegistry"))
    bond = 100_000 * 10**18
    token.transfer(operator, bond, sender=treasury)
    token.approve(staking, bond, sender=operator)
    staking.registerOperator(INFERENCE, bond, 0, sender=operator)
    advance(chain, 1)
    targets, values, calldatas = [tees.address], [0], [tees.addTeeType.encode_input(9, "vetoed type")]
    description = "Add a TEE type the guardian will veto"
    governor.propose(targets, values, calldatas, description, sender=operator)
    proposal = governor.hashProposal(targets, values, calldatas, keccak(text=description))
    advance(chain, governor.votingDelay() + 1)
    governor.castVote(proposal, FOR, sender=operator)
    advance(chain, governor.votingPeriod() + 1)
    governor.queue(targets, values, calldatas, keccak(text=description), sender=operator)
    operation = timelock.hashOperationBatch(targets, values, calldatas, bytes(32), _governor_salt(governor, description))
    assert timelock.isOperationPending(operation)

    safe_execute(safe, owners[1:], timelock.address, timelock.cancel.encode_input(operation), deployer)
    assert not timelock.isOperation(operation)
    advance(chain, timelock.getMinDelay() + 1)
    with reverts():
        governor.execute(targets, values, calldatas, keccak(text=description), sender=operator)
    assert tees.teeTypeName(9) == ""


def _governor_salt(governor, description: str) -> bytes:
    """OpenZeppelin's GovernorTimelockControl salts each operation with bytes20(governor) xor the description hash."""
    return ((int(governor.address, 16) << 96) ^ int.from_bytes(keccak(text=description), "big")).to_bytes(32, "big")


def test_guardian_without_proposer_role__cannot_schedule(deployer, treasury, safe, owners):
    suite = deploy_all(deployer, treasury.address, dataclasses.replace(ProtocolParameters(), guardian=safe.address))
    timelock, tees = suite["OPGTimelock"], suite["TEERegistry"]
    assert timelock.hasRole(timelock.CANCELLER_ROLE(), safe) and not timelock.hasRole(timelock.PROPOSER_ROLE(), safe)
    call = tees.addTeeType.encode_input(10, "never")
    with reverts():  # GS013: the inner schedule reverts AccessControlUnauthorizedAccount
        safe_execute(safe, owners[:2], timelock.address,
                     timelock.schedule.encode_input(tees.address, 0, call, bytes(32), bytes(32),
                                                    timelock.getMinDelay()), deployer)
    assert not timelock.isOperation(timelock.hashOperation(tees.address, 0, call, bytes(32), bytes(32)))


def test_guardian__planned_and_refused_when_it_is_a_single_key(deployer, treasury, safe, alice):
    with_safe = dataclasses.replace(ProtocolParameters(), guardian=safe.address)
    steps = plan(deployer.address, treasury.address, with_safe, None)
    descriptions = [step.description for step, _ in planned_wiring(steps, deployer.address, True, with_safe)]
    assert f"grant the guardian {safe.address} CANCELLER_ROLE (a veto) on OPGTimelock" in descriptions
    single_key = dataclasses.replace(ProtocolParameters(), guardian=alice.address)
    with pytest.raises(DeploymentBlocked, match="has no code on this chain"):
        preflight(deployer.address, treasury.address, single_key, steps)
    delegated = "0x" + "7702" * 10
    alice.provider.set_code(delegated, bytes.fromhex("ef0100") + bytes.fromhex(safe.address[2:]))
    with pytest.raises(DeploymentBlocked, match="EIP-7702 delegation"):
        preflight(deployer.address, treasury.address, dataclasses.replace(single_key, guardian=delegated), steps)


def test_guardian_dropped_on_resume_before_the_handover__its_roles_revoked(deployer, treasury, safe, tmp_path):
    """An interrupted run named a guardian that also proposes; the resumed run names none: the old guardian
    must not keep an unseen power to schedule and cancel."""
    record = tmp_path / "record.json"
    with_guardian = dataclasses.replace(ProtocolParameters(), guardian=safe.address, guardian_proposes=True)
    first = deploy_all(deployer, treasury.address, with_guardian, record_path=record, handover=False)
    timelock = first["OPGTimelock"]
    assert timelock.hasRole(timelock.PROPOSER_ROLE(), safe)
    resumed = deploy_all(deployer, treasury.address, ProtocolParameters(), record_path=record)
    assert resumed["OPGTimelock"].address == timelock.address
    assert not timelock.hasRole(timelock.PROPOSER_ROLE(), safe) and not timelock.hasRole(timelock.CANCELLER_ROLE(), safe)


def test_guardian_changed_after_the_handover__refused_with_the_governance_calls(deployer, treasury, safe, alice,
                                                                               tmp_path):
    record = tmp_path / "record.json"
    deploy_all(deployer, treasury.address, dataclasses.replace(ProtocolParameters(), guardian=safe.address),
               record_path=record)
    nonce = deployer.nonce
    with pytest.raises(UserError, match=r"propose .*revokeRole\(CANCELLER_ROLE, " + safe.address):
        deploy_all(deployer, treasury.address, ProtocolParameters(), record_path=record)
    assert deployer.nonce == nonce
