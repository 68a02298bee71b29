"""opgkit.deploy: the suite is deployed in order, wired, and the wiring check catches mismatches."""

import dataclasses
import json

import pytest
from ape.utils import ZERO_ADDRESS

import opgkit.deploy
from opgkit.deploy import (
    NODE_SLASH_BPS, RELAYER_SLASH_BPS, ProtocolParameters, Suite, WiringError, deploy_all, plan, planned_wiring,
    verify_wiring,
)
from opgkit.deployments_record import RecordError, recorded_address

# The deploy toolkit sends its transactions through ape's provider (a node).
pytestmark = pytest.mark.anvil_only

ALL = [
    "OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "ModelRegistry", "AttestorQuorumVerifier", "TEERegistry",
    "InferenceSettlement", "BatchSettlement", "TwinMarket", "InferenceRequests",
]


@pytest.fixture(scope="module")
def suite(deployer, treasury):
    return deploy_all(deployer, treasury.address)


def test_deploy_all__default_parameters__deploys_in_dependency_order(suite):
    assert [d.name for d in suite.deployments] == ALL
    assert [d.block_number for d in suite.deployments] == sorted(d.block_number for d in suite.deployments)


def test_deploy_all__default_parameters__timelock_is_the_only_admin(suite, deployer):
    staking, timelock = suite["NodeStaking"], suite["OPGTimelock"]
    assert staking.hasRole(staking.DEFAULT_ADMIN_ROLE(), timelock)
    assert not staking.hasRole(staking.DEFAULT_ADMIN_ROLE(), deployer)
    assert not timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer)
    for name in ("InferenceSettlement", "BatchSettlement"):
        contract = suite[name]
        assert contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), timelock), name
        assert not contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), deployer), name


def test_deploy_all__default_parameters__batches_wired_and_both_settlements_may_slash(suite, chain):
    staking, settlement, batches = suite["NodeStaking"], suite["InferenceSettlement"], suite["BatchSettlement"]
    assert settlement.batchSettlement() == batches.address
    assert batches.settlement() == settlement.address
    assert staking.hasRole(staking.SLASHER_ROLE(), settlement)
    assert staking.hasRole(staking.SLASHER_ROLE(), batches)
    params = ProtocolParameters()
    assert batches.challengeWindow() == params.challenge_window < staking.unbondingDelay()
    assert settlement.proofWindow() == params.proof_window
    assert settlement.proofWindow() + settlement.PROOF_REPORT_MARGIN() <= staking.unbondingDelay()
    assert settlement.maxReceiptAge() == batches.maxReceiptAgeAt(chain.blocks.head.timestamp + 1) == params.max_receipt_age
    assert (settlement.nodeSlashBps(), batches.relayerSlashBps()) == (NODE_SLASH_BPS, RELAYER_SLASH_BPS)


def test_verify_wiring__parameters_differ__names_each_mismatch(suite, deployer, treasury):
    wrong = dataclasses.replace(ProtocolParameters(), unbonding_delay=3 * 86_400, quorum_percent=10, twin_protocol_fee=1)
    with pytest.raises(WiringError, match="unbonding delay; .*quorum; .*twin market fees"):
        verify_wiring(suite, deployer.address, treasury.address, wrong)


def test_verify_wiring__other_treasury__fails(suite, deployer, alice):
    with pytest.raises(WiringError, match="staking treasury"):
        verify_wiring(suite, deployer.address, alice.address, ProtocolParameters())


def test_deploy_all__record_given__rerun_reuses_everything(deployer, treasury, tmp_path, chain):
    record = tmp_path / "deployments" / "ethereum-local.json"
    first = deploy_all(deployer, treasury.address, record_path=record)
    nonce = deployer.nonce
    second = deploy_all(deployer, treasury.address, record_path=record)
    assert deployer.nonce == nonce  # not one transaction
    assert [d.contract.address for d in second.deployments] == [d.contract.address for d in first.deployments]
    assert all(d.reused for d in second.deployments)
    saved = json.loads(record.read_text())
    assert saved["chain_id"] == chain.chain_id and set(saved["contracts"]) == {d.name for d in first.deployments}


def test_deploy_all__interrupted_then_rerun__finishes_without_duplicates(deployer, treasury, tmp_path, monkeypatch):
    record = tmp_path / "record.json"
    original = Suite.deploy

    def crash_at_model_registry(self, name, *args):
        if name == "ModelRegistry":
            raise KeyboardInterrupt("simulated crash")
        return original(self, name, *args)

    monkeypatch.setattr(Suite, "deploy", crash_at_model_registry)
    with pytest.raises(KeyboardInterrupt):
        deploy_all(deployer, treasury.address, record_path=record)
    monkeypatch.setattr(Suite, "deploy", original)
    before = json.loads(record.read_text())["contracts"]
    assert list(before) == ["OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor"]

    resumed = deploy_all(deployer, treasury.address, record_path=record)
    reused = [d.name for d in resumed.deployments if d.reused]
    assert reused == ["OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor"]
    assert [resumed[name].address for name in reused] == [before[name]["address"] for name in reused]


def test_deploy_all__recorded_code_gone__deploys_again(deployer, treasury, tmp_path):
    record = tmp_path / "record.json"
    deploy_all(deployer, treasury.address, record_path=record)
    data = json.loads(record.read_text())
    data["contracts"]["OPGToken"]["code_hash"] = "0x" + "00" * 32  # as after a chain reset
    record.write_text(json.dumps(data))
    again = deploy_all(deployer, treasury.address, record_path=record)
    assert not any(d.reused for d in again.deployments)


def test_recorded_address__present_missing_or_absent_record(tmp_path, deployer, treasury):
    record = tmp_path / "record.json"
    with pytest.raises(RecordError, match="no deployments record"):
        recorded_address(record, "TwinMarket")
    suite = deploy_all(deployer, treasury.address, record_path=record)
    assert recorded_address(record, "TwinMarket") == suite["TwinMarket"].address
    with pytest.raises(RecordError, match="records no Nothing"):
        recorded_address(record, "Nothing")


def test_deploy_all__settlement_redeployed_after_handover__explains_governance_step(
        deployer, treasury, tmp_path, accounts, chain, project):
    """Staking is the timelock's by then: the deployer cannot grant the new settlement contracts SLASHER_ROLE
    itself. Once governance has, the same command finishes the deployment."""
    record = tmp_path / "record.json"
    deploy_all(deployer, treasury.address, record_path=record)
    saved = json.loads(record.read_text())
    saved["contracts"]["InferenceSettlement"]["code_hash"] = "0x" + "00" * 32
    record.write_text(json.dumps(saved))
    with pytest.raises(WiringError, match=r"InferenceSettlement at 0x[0-9a-fA-F]{40} and BatchSettlement at "
                                          r"0x[0-9a-fA-F]{40} need SLASHER_ROLE on NodeStaking.*through governance"):
        deploy_all(deployer, treasury.address, record_path=record)
    contracts = json.loads(record.read_text())["contracts"]
    staking = project.NodeStaking.at(contracts["NodeStaking"]["address"])
    settlement = project.InferenceSettlement.at(contracts["InferenceSettlement"]["address"])
    batches = contracts["BatchSettlement"]["address"]
    assert settlement.batchSettlement() == batches  # connected before it stopped
    assert settlement.hasRole(settlement.DEFAULT_ADMIN_ROLE(), deployer)  # not handed over while unfinished

    timelock = accounts[contracts["OPGTimelock"]["address"]]  # governance's grant, executed by the timelock
    chain.set_balance(timelock.address, 10**18)
    for slasher in (settlement.address, batches):
        staking.grantRole(staking.SLASHER_ROLE(), slasher, sender=timelock)
    finished = deploy_all(deployer, treasury.address, record_path=record)
    assert all(d.reused for d in finished.deployments)
    assert settlement.hasRole(settlement.DEFAULT_ADMIN_ROLE(), contracts["OPGTimelock"]["address"])
    assert not settlement.hasRole(settlement.DEFAULT_ADMIN_ROLE(), deployer)


@pytest.mark.parametrize("step, when", [
    ("_connect_batches", "before"), ("_connect_batches", "after"), ("_grant_slasher", "after"),
    ("_hand_to_timelock", "after"),  # staking handed over, settlement not yet
])
def test_deploy_all__interrupted_while_wiring__rerun_does_only_what_is_left(
        deployer, treasury, tmp_path, monkeypatch, step, when):
    """A crash between wiring steps: the re-run reuses every contract and finishes the wiring (a second
    setBatchSettlement would revert, so passing shows each done step is skipped)."""
    record = tmp_path / "record.json"
    original = getattr(opgkit.deploy, step)

    def crash(*args):
        if when == "after":
            original(*args)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(opgkit.deploy, step, crash)
    with pytest.raises(KeyboardInterrupt):
        deploy_all(deployer, treasury.address, record_path=record)
    monkeypatch.setattr(opgkit.deploy, step, original)
    resumed = deploy_all(deployer, treasury.address, record_path=record)
    assert [d.name for d in resumed.deployments] == ALL
    assert all(d.reused for d in resumed.deployments)
    settlement, batches = resumed["InferenceSettlement"], resumed["BatchSettlement"]
    assert settlement.batchSettlement() == batches.address


def test_deploy_all__no_handover__deployer_keeps_every_admin_role(deployer, treasury):
    suite = deploy_all(deployer, treasury.address, handover=False)
    staking, timelock, settlement = suite["NodeStaking"], suite["OPGTimelock"], suite["InferenceSettlement"]
    batches = suite["BatchSettlement"]
    admin = staking.DEFAULT_ADMIN_ROLE()
    for contract in (staking, timelock, settlement, batches, suite["TEERegistry"], suite["AttestorQuorumVerifier"]):
        assert contract.hasRole(admin, deployer), contract.contract_type.name
    assert suite["TwinMarket"].owner() == deployer.address
    assert staking.hasRole(staking.SLASHER_ROLE(), settlement) and staking.hasRole(staking.SLASHER_ROLE(), batches)
    assert settlement.batchSettlement() == batches.address
    with pytest.raises(WiringError, match="staking admin is the timelock"):
        verify_wiring(suite, deployer.address, treasury.address, ProtocolParameters(), handover=True)


def test_plan__after_a_deploy__reuses_everything_and_sends_nothing(deployer, treasury, tmp_path):
    record = tmp_path / "record.json"
    deploy_all(deployer, treasury.address, record_path=record)
    nonce = deployer.nonce
    steps = plan(deployer.address, treasury.address, ProtocolParameters(), record)
    assert [s.action for s in steps] == ["reuse"] * len(ALL)
    wiring = planned_wiring(steps, deployer.address)
    assert [done for _, done in wiring] == [True] * (len(wiring) - 1) + [False]  # the check always runs
    assert deployer.nonce == nonce


def test_planned_wiring__nothing_deployed_yet__every_step_to_do(deployer, treasury):
    steps = plan(deployer.address, treasury.address, ProtocolParameters(), None)
    assert [done for _, done in planned_wiring(steps, deployer.address)] == [False] * 8


def test_planned_wiring__interrupted_before_the_handover__shows_what_is_left(deployer, treasury, tmp_path):
    record = tmp_path / "record.json"
    deploy_all(deployer, treasury.address, record_path=record, handover=False)
    steps = plan(deployer.address, treasury.address, ProtocolParameters(), record, handover=False)
    # The same contracts, planned with a handover: wired, not yet handed to the timelock.
    wiring = planned_wiring(steps, deployer.address, handover=True)
    assert [(step.description.split(" ")[0], done) for step, done in wiring] == [
        ("connect", True), ("grant", True), ("grant", True), ("grant", True),
        ("grant", False), ("grant", False), ("the", False), ("read", False),
    ]


def test_plan__parameter_changed__deploys_from_that_contract_on(deployer, treasury, tmp_path):
    record = tmp_path / "record.json"
    deploy_all(deployer, treasury.address, record_path=record)
    changed = dataclasses.replace(ProtocolParameters(), max_heartbeat_age=600)
    steps = plan(deployer.address, treasury.address, changed, record)
    assert [(s.name, s.action) for s in steps][5:] == [
        ("AttestorQuorumVerifier", "reuse"), ("TEERegistry", "deploy"), ("InferenceSettlement", "deploy"),
        ("BatchSettlement", "deploy"), ("TwinMarket", "deploy"), ("InferenceRequests", "deploy"),
    ]
    assert steps[7].args[3] == "<new TEERegistry>"
    assert steps[8].args[0] == "<new InferenceSettlement>" and steps[8].args[3] == "<new TEERegistry>"


def test_deploy_all__batch_parameters_changed_after_a_deploy__stops_before_any_transaction(
        deployer, treasury, tmp_path):
    """The settlement is reused but takes one batch contract, once ever: a new BatchSettlement could never be
    connected, so the deploy refuses to send it."""
    record = tmp_path / "record.json"
    first = deploy_all(deployer, treasury.address, record_path=record, handover=False)
    changed = dataclasses.replace(ProtocolParameters(), challenge_window=1_800)
    steps = plan(deployer.address, treasury.address, changed, record, handover=False)
    assert [s.name for s in steps if s.action == "deploy"] == ["BatchSettlement", "TwinMarket", "InferenceRequests"]
    nonce = deployer.nonce
    settlement, batches = first["InferenceSettlement"].address, first["BatchSettlement"].address
    with pytest.raises(WiringError, match=rf"InferenceSettlement at {settlement} is already connected to "
                                          rf"BatchSettlement {batches} .*once ever"):
        deploy_all(deployer, treasury.address, changed, record_path=record, handover=False)
    assert deployer.nonce == nonce


def test_verify_wiring__another_batch_contract__names_the_connection(suite, deployer, treasury, project):
    """A BatchSettlement the settlement does not record batches from fails the check, however it is set up."""
    other = deployer.deploy(project.BatchSettlement, suite["InferenceSettlement"], suite["NodeStaking"],
                            suite["ModelRegistry"], suite["TEERegistry"], suite["OPGTimelock"],
                            ProtocolParameters().challenge_window, ProtocolParameters().max_receipt_age)
    swapped = Suite(deployments=[d if d.name != "BatchSettlement" else dataclasses.replace(d, contract=other)
                                 for d in suite.deployments])
    with pytest.raises(WiringError) as error:
        verify_wiring(swapped, deployer.address, treasury.address, ProtocolParameters())
    assert "settlement records batches from this BatchSettlement" in str(error.value)
    assert "batch settlement may slash" in str(error.value)


def test_verify_wiring__settlement_windows_differ__names_each(suite, deployer, treasury):
    wrong = dataclasses.replace(ProtocolParameters(), challenge_window=1_800, proof_window=1_800, max_receipt_age=7_200)
    with pytest.raises(WiringError, match="challenge window; proof window; receipt age; batch receipt age"):
        verify_wiring(suite, deployer.address, treasury.address, wrong)


@pytest.mark.parametrize("name, check", [
    ("InferenceSettlement", "wiring check failed: settlement may slash (missed proofs)"),
    ("BatchSettlement", "wiring check failed: batch settlement may slash (rejected batches)"),
])
def test_verify_wiring__slasher_role_revoked__names_it(deployer, treasury, name, check):
    suite = deploy_all(deployer, treasury.address, handover=False)
    staking = suite["NodeStaking"]
    staking.revokeRole(staking.SLASHER_ROLE(), suite[name], sender=deployer)
    with pytest.raises(WiringError) as error:
        verify_wiring(suite, deployer.address, treasury.address, ProtocolParameters(), handover=False)
    assert str(error.value) == check


def test_deploy_all__example_vault_for_a_registered_model__deployed_on_rerun(deployer, treasury, carol, tmp_path):
    record = tmp_path / "record.json"
    first = deploy_all(deployer, treasury.address, record_path=record)
    spec = (b"\x07" * 32, "ipfs://risk", 0, 2, 1, b"\x00" * 32, False, 0, ZERO_ADDRESS, b"\x00" * 32)
    models = first["ModelRegistry"]
    model = models.register(spec, sender=carol).events.filter(models.ModelRegistered)[0].modelId
    unregistered = dataclasses.replace(ProtocolParameters(), example_vault_model=b"\x09" * 32)
    with pytest.raises(WiringError, match="example_vault_model 0x0909.* is not registered"):
        deploy_all(deployer, treasury.address, unregistered, record_path=record)
    with_vault = dataclasses.replace(ProtocolParameters(), example_vault_model=model)
    second = deploy_all(deployer, treasury.address, with_vault, record_path=record)
    assert [d.name for d in second.deployments if not d.reused] == ["RiskGatedVault"]
    vault = second["RiskGatedVault"]
    assert (vault.modelId(), vault.owner(), vault.settlement()) == (
        model, second["OPGTimelock"].address, second["InferenceSettlement"].address)
