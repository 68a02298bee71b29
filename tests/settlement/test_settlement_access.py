"""Access matrix: every privileged InferenceSettlement and BatchSettlement function × callers without the role,
the functions only one caller may use (recordBatchReceipt: BatchSettlement; postBatch: staked relayers), and
parameter bounds. Every mutating ABI function of both contracts is accounted for."""

import pytest
from ape.utils import ZERO_ADDRESS

from opgkit.receipts import NO_AUTHORIZATION, ReceiptBatch, SignedReceipt, Status
from opgkit.testing import advance
from settlement_helpers import (
    DAY, HOUR, MAX_RECEIPT_AGE, PROOF_WINDOW, Mode, authorization, receipt, reverts_exactly,
)

OUTSIDER = "0x00000000000000000000000000000000000000C0"
UNBONDING_DELAY = 7 * DAY  # the staking fixture's default

# (function, arguments, what the admin's call changed)
SETTLEMENT_PRIVILEGED = [
    ("setBatchSettlement", lambda f: (OUTSIDER,), None),  # once ever: see the dedicated tests below
    ("setProofWindow", lambda f: (2 * HOUR,), lambda c, f, tx: c.proofWindow() == 2 * HOUR),
    ("setMaxReceiptAge", lambda f: (HOUR,), lambda c, f, tx: c.maxReceiptAge() == HOUR),
    ("setNodeSlash", lambda f: (100,), lambda c, f, tx: c.nodeSlashBps() == 100),
    ("setFeeSplit", lambda f: (100, 200, 300),
     lambda c, f, tx: (c.protocolFeeBps(), c.stakerRewardBps(), c.modelOwnerBps()) == (100, 200, 300)),
    ("setTreasury", lambda f: (OUTSIDER,), lambda c, f, tx: c.treasury() == OUTSIDER),
    ("grantRole", lambda f: (f["admin_role"], OUTSIDER), lambda c, f, tx: c.hasRole(f["admin_role"], OUTSIDER)),
    ("revokeRole", lambda f: (f["admin_role"], f["gov"]), lambda c, f, tx: not c.hasRole(f["admin_role"], f["gov"])),
]
SETTLEMENT_OPEN = {
    "settle", "settleWithAuthorization", "postPending", "deliverProof", "reportMissedProof", "releaseBatchPayment",
    "deposit", "withdrawEscrow", "withdrawProceeds", "revokeAuthorizations",
    "renounceRole",
}
SETTLEMENT_BATCH_ONLY = {"recordBatchReceipt"}

BATCHES_PRIVILEGED = [
    ("setChallengeWindow", lambda f: (2 * HOUR,), lambda c, f, tx: c.challengeWindow() == 2 * HOUR),
    ("setMaxReceiptAge", lambda f: (HOUR,), lambda c, f, tx: c.maxReceiptAgeAt(tx.timestamp + 1) == HOUR),
    ("setRelayerSlash", lambda f: (100,), lambda c, f, tx: c.relayerSlashBps() == 100),
    ("grantRole", lambda f: (f["admin_role"], OUTSIDER), lambda c, f, tx: c.hasRole(f["admin_role"], OUTSIDER)),
    ("revokeRole", lambda f: (f["admin_role"], f["gov"]), lambda c, f, tx: not c.hasRole(f["admin_role"], f["gov"])),
]
BATCHES_OPEN = {"challenge", "claimBatchReceipt", "renounceRole"}
BATCHES_RELAYER_ONLY = {"postBatch"}

PRIVILEGED = [("settlement", *p) for p in SETTLEMENT_PRIVILEGED] + [("batches", *p) for p in BATCHES_PRIVILEGED]
PRIVILEGED_IDS = [f"{name}.{p[0]}" for name, *p in PRIVILEGED]
CALLERS = ["alice", "operator", "operator2", "deployer"]


@pytest.fixture(scope="module")
def named(settlement, alice, operator, operator2, deployer, gov):
    return {"alice": alice, "operator": operator, "operator2": operator2, "deployer": deployer, "gov": gov,
            "admin_role": settlement.DEFAULT_ADMIN_ROLE()}


@pytest.fixture(scope="module")
def contracts(settlement, batches):
    return {"settlement": settlement, "batches": batches}


def mutating(contract):
    return {abi.name for abi in contract.contract_type.mutable_methods}


# ---------------------------------------------------------------- completeness


def test_settlement__every_mutating_function__is_in_the_matrix(settlement):
    assert mutating(settlement) == SETTLEMENT_OPEN | SETTLEMENT_BATCH_ONLY | {p[0] for p in SETTLEMENT_PRIVILEGED}


def test_batches__every_mutating_function__is_in_the_matrix(batches):
    assert mutating(batches) == BATCHES_OPEN | BATCHES_RELAYER_ONLY | {p[0] for p in BATCHES_PRIVILEGED}


# ---------------------------------------------------------------- admin-only functions


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("contract_name, function, build_args, _effect", PRIVILEGED, ids=PRIVILEGED_IDS)
def test_privileged__caller_without_admin_role__reverts(contracts, named, contract_name, function, build_args,
                                                        _effect, caller):
    contract, account = contracts[contract_name], named[caller]
    with reverts_exactly(contract.AccessControlUnauthorizedAccount, account=account.address,
                         neededRole=named["admin_role"]):
        getattr(contract, function)(*build_args(named), sender=account)


@pytest.mark.parametrize("contract_name, function, build_args, effect",
                         [p for p in PRIVILEGED if p[3] is not None],
                         ids=[i for i, p in zip(PRIVILEGED_IDS, PRIVILEGED) if p[3] is not None])
def test_privileged__admin__succeeds(contracts, named, gov, contract_name, function, build_args, effect):
    contract = contracts[contract_name]
    tx = getattr(contract, function)(*build_args(named), sender=gov)
    assert effect(contract, named, tx)


def test_admin_of_one_contract__not_admin_of_the_other__reverts(settlement, batches, gov, alice, named):
    """Roles are per contract: holding the settlement's admin role grants nothing on the batches, and back."""
    settlement.grantRole(named["admin_role"], alice, sender=gov)
    with reverts_exactly(batches.AccessControlUnauthorizedAccount, account=alice.address,
                         neededRole=named["admin_role"]):
        batches.setRelayerSlash(100, sender=alice)
    settlement.setNodeSlash(100, sender=alice)
    assert settlement.nodeSlashBps() == 100


# ---------------------------------------------------------------- setBatchSettlement: once, ever


@pytest.fixture
def unwired(project, deployer, token, staking, models, tees, treasury, gov):
    """An InferenceSettlement with no batch settlement connected yet."""
    return deployer.deploy(project.InferenceSettlement, token, staking, models, tees, treasury, gov, PROOF_WINDOW,
                           MAX_RECEIPT_AGE)


def test_deploy__dependencies__readable_as_deployed(settlement, batches, token, staking, models, tees):
    """Off-chain tools (and the deploy checks) find the contracts a settlement pair uses through these getters."""
    assert (settlement.token(), settlement.staking(), settlement.models(), settlement.teeRegistry()) == (
        token.address, staking.address, models.address, tees.address)
    assert (batches.settlement(), batches.staking(), batches.models(), batches.teeRegistry()) == (
        settlement.address, staking.address, models.address, tees.address)


def test_set_batch_settlement__wired_pair__connected(settlement, batches):
    assert settlement.batchSettlement() == batches.address
    assert batches.settlement() == settlement.address


def test_set_batch_settlement__first_time__set_and_then_refused(unwired, batches, gov):
    assert unwired.batchSettlement() == ZERO_ADDRESS
    tx = unwired.setBatchSettlement(batches, sender=gov)
    assert tx.events.filter(unwired.BatchSettlementSet)[0].batchSettlement == batches.address
    assert unwired.batchSettlement() == batches.address
    for replacement in (OUTSIDER, batches.address):
        with reverts_exactly(unwired.InferenceSettlementBatchSettlementAlreadySet, current=batches.address):
            unwired.setBatchSettlement(replacement, sender=gov)
    assert unwired.batchSettlement() == batches.address


def test_set_batch_settlement__already_set__refused(settlement, batches, gov):
    with reverts_exactly(settlement.InferenceSettlementBatchSettlementAlreadySet, current=batches.address):
        settlement.setBatchSettlement(OUTSIDER, sender=gov)


def test_set_batch_settlement__zero_address__refused(unwired, gov):
    with reverts_exactly(unwired.InferenceSettlementZeroAddress):
        unwired.setBatchSettlement(ZERO_ADDRESS, sender=gov)
    assert unwired.batchSettlement() == ZERO_ADDRESS


@pytest.mark.parametrize("caller", CALLERS)
def test_set_batch_settlement__unwired_caller_without_admin_role__reverts(unwired, named, caller):
    account = named[caller]
    with reverts_exactly(unwired.AccessControlUnauthorizedAccount, account=account.address,
                         neededRole=named["admin_role"]):
        unwired.setBatchSettlement(OUTSIDER, sender=account)


# ---------------------------------------------------------------- recordBatchReceipt: only BatchSettlement


@pytest.mark.parametrize("caller", CALLERS + ["gov"])
def test_record_batch_receipt__not_batch_settlement__reverts(settlement, open_model, named, alice, sign_auth, now,
                                                             caller):
    account = named[caller]
    r = receipt("direct record", open_model, named["operator"].address, now(), payer=alice.address)
    auth = authorization(r)
    with reverts_exactly(settlement.InferenceSettlementNotBatchSettlement, caller=account.address):
        settlement.recordBatchReceipt(account, 1, r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=account)
    assert settlement.recordOf(alice, r.requestId).status == Status.NONE


def test_record_batch_receipt__through_batch_settlement__recorded(settlement, batches, open_model, operator, operator2,
                                                                  alice, sign, now, chain):
    r = receipt("batched record", open_model, operator.address, now(), payer=alice.address)
    batch = ReceiptBatch([SignedReceipt(r, sign(r, operator))])
    advance(chain, 1)  # a batch carries receipts from before its posting's second
    batch_id = batches.postBatch(batch.root, 1, "", sender=operator2).events.filter(batches.BatchPosted)[0].batchId
    tx = batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=alice)
    recorded = tx.events.filter(settlement.BatchReceiptRecorded)[0]
    assert (recorded.batchId, recorded.requestId, recorded.payer) == (batch_id, r.requestId, alice.address)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.mode) == (Status.PENDING, Mode.VANILLA)


# ---------------------------------------------------------------- postBatch: only active relayers


@pytest.mark.parametrize("caller", ["alice", "operator", "deployer", "gov"])
def test_post_batch__caller_not_active_relayer__reverts(batches, named, caller):
    account = named[caller]
    with reverts_exactly(batches.BatchSettlementNotRelayer, account=account.address):
        batches.postBatch(b"\x01" * 32, 1, "", sender=account)


def test_post_batch__active_relayer__posted(batches, operator2):
    tx = batches.postBatch(b"\x01" * 32, 1, "", sender=operator2)
    assert tx.events.filter(batches.BatchPosted)[0].relayer == operator2.address
    assert batches.batchCount() == 1


# ---------------------------------------------------------------- parameter bounds


def test_settlement_parameters__out_of_bounds__named_errors(settlement, gov):
    for window in (59, 8 * DAY, UNBONDING_DELAY - HOUR + 1):
        with reverts_exactly(settlement.InferenceSettlementProofWindowOutOfBounds, window=window,
                             unbondingDelay=UNBONDING_DELAY):
            settlement.setProofWindow(window, sender=gov)
    for age in (59, 30 * DAY + 1):
        with reverts_exactly(settlement.InferenceSettlementReceiptAgeOutOfBounds, maxAge=age):
            settlement.setMaxReceiptAge(age, sender=gov)
    for bps in (0, 5_001):
        with reverts_exactly(settlement.InferenceSettlementSlashFractionOutOfBounds, fractionBps=bps):
            settlement.setNodeSlash(bps, sender=gov)
    with reverts_exactly(settlement.InferenceSettlementZeroAddress):
        settlement.setTreasury(ZERO_ADDRESS, sender=gov)


def test_settlement_parameters__at_bounds__accepted(settlement, gov):
    for window in (60, UNBONDING_DELAY - HOUR):
        settlement.setProofWindow(window, sender=gov)
        assert settlement.proofWindow() == window
    for age in (60, 30 * DAY):
        settlement.setMaxReceiptAge(age, sender=gov)
        assert settlement.maxReceiptAge() == age
    for bps in (1, 5_000):
        settlement.setNodeSlash(bps, sender=gov)
        assert settlement.nodeSlashBps() == bps


def test_batches_parameters__out_of_bounds__named_errors(batches, gov):
    for window in (60, UNBONDING_DELAY):
        with reverts_exactly(batches.BatchSettlementChallengeWindowOutOfBounds, window=window, minimum=300,
                             unbondingDelay=UNBONDING_DELAY):
            batches.setChallengeWindow(window, sender=gov)
    for age in (59, 30 * DAY + 1):
        with reverts_exactly(batches.BatchSettlementReceiptAgeOutOfBounds, maxAge=age):
            batches.setMaxReceiptAge(age, sender=gov)
    for bps in (0, 5_001):
        with reverts_exactly(batches.BatchSettlementSlashFractionOutOfBounds, fractionBps=bps):
            batches.setRelayerSlash(bps, sender=gov)


# ---------------------------------------------------------------- constructors


@pytest.fixture
def fresh_deployer(accounts, gov):
    # A never-used deployer: ape decodes a deploy's revert with whatever contract it last saw at the would-be
    # address, and snapshots make addresses repeat across tests.
    account = accounts.generate_test_account()
    gov.transfer(account, 10**18)
    return account


@pytest.mark.parametrize("zeroed", ["token", "staking", "models", "tees", "treasury", "admin"])
def test_settlement_constructor__zero_address__refused(project, fresh_deployer, token, staking, models, tees, treasury,
                                                       gov, zeroed):
    args = dict(token=token, staking=staking, models=models, tees=tees, treasury=treasury, admin=gov)
    args[zeroed] = ZERO_ADDRESS
    with reverts_exactly(project.InferenceSettlement.InferenceSettlementZeroAddress):
        fresh_deployer.deploy(project.InferenceSettlement, *args.values(), PROOF_WINDOW, MAX_RECEIPT_AGE)


def test_settlement_constructor__proof_window_too_long__refused(project, fresh_deployer, token, staking, models, tees,
                                                               treasury, gov):
    window = UNBONDING_DELAY - HOUR + 1
    with reverts_exactly(project.InferenceSettlement.InferenceSettlementProofWindowOutOfBounds, window=window,
                         unbondingDelay=UNBONDING_DELAY):
        fresh_deployer.deploy(project.InferenceSettlement, token, staking, models, tees, treasury, gov, window,
                              MAX_RECEIPT_AGE)


@pytest.mark.parametrize("zeroed", ["settlement", "staking", "models", "tees", "admin"])
def test_batches_constructor__zero_address__refused(project, fresh_deployer, settlement, staking, models, tees, gov,
                                                    zeroed):
    args = dict(settlement=settlement, staking=staking, models=models, tees=tees, admin=gov)
    args[zeroed] = ZERO_ADDRESS
    with reverts_exactly(project.BatchSettlement.BatchSettlementZeroAddress):
        fresh_deployer.deploy(project.BatchSettlement, *args.values(), HOUR, MAX_RECEIPT_AGE)
