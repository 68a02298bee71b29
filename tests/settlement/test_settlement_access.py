"""Access matrix: every privileged InferenceSettlement function × callers without the role."""

import ape
import pytest
from ape.utils import ZERO_ADDRESS

OUTSIDER = "0x00000000000000000000000000000000000000C0"

PRIVILEGED = [
    ("setChallengeWindow", lambda f: (2 * 3_600,)),
    ("setProofWindow", lambda f: (2 * 3_600,)),
    ("setMaxReceiptAge", lambda f: (3_600,)),
    ("setSlashFractions", lambda f: (100, 100)),
    ("setFeeSplit", lambda f: (100, 100, 100)),
    ("setTreasury", lambda f: (OUTSIDER,)),
    ("grantRole", lambda f: (f["admin_role"], OUTSIDER)),
    ("revokeRole", lambda f: (f["admin_role"], OUTSIDER)),
]
OPEN = {
    "settle", "settleAndPay", "postBatch", "challenge", "challengeDuplicate", "claimBatchReceipt", "postPending",
    "postPendingAndPay", "deliverProof", "reportMissedProof", "deposit", "withdrawEscrow", "withdrawProceeds",
    "distributeStakerRewards", "revokeAuthorizations", "renounceRole",
}
CALLERS = ["alice", "operator", "operator2", "deployer"]


@pytest.fixture(scope="module")
def named(settlement, alice, operator, operator2, deployer):
    return {"alice": alice, "operator": operator, "operator2": operator2, "deployer": deployer,
            "admin_role": settlement.DEFAULT_ADMIN_ROLE()}


def test_settlement__every_mutating_function__is_in_the_matrix_or_open(settlement):
    mutating = {abi.name for abi in settlement.contract_type.mutable_methods}
    assert mutating == OPEN | {name for name, _ in PRIVILEGED}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("function, build_args", PRIVILEGED, ids=[p[0] for p in PRIVILEGED])
def test_settlement__caller_without_admin_role__reverts(settlement, named, function, build_args, caller):
    account = named[caller]
    with ape.reverts(settlement.AccessControlUnauthorizedAccount, account=account.address,
                     neededRole=named["admin_role"]):
        getattr(settlement, function)(*build_args(named), sender=account)


@pytest.mark.parametrize("function, build_args", PRIVILEGED, ids=[p[0] for p in PRIVILEGED])
def test_settlement__admin__succeeds(settlement, named, gov, function, build_args):
    getattr(settlement, function)(*build_args(named), sender=gov)


def test_parameters__out_of_bounds__named_errors(settlement, gov):
    with ape.reverts(settlement.InferenceSettlementChallengeWindowOutOfBounds, window=60, minimum=300,
                     unbondingDelay=7 * 86_400):
        settlement.setChallengeWindow(60, sender=gov)
    with ape.reverts(settlement.InferenceSettlementProofWindowOutOfBounds, window=8 * 86_400):
        settlement.setProofWindow(8 * 86_400, sender=gov)
    with ape.reverts(settlement.InferenceSettlementReceiptAgeOutOfBounds, maxAge=10):
        settlement.setMaxReceiptAge(10, sender=gov)
    with ape.reverts(settlement.InferenceSettlementSlashFractionOutOfBounds, fractionBps=0):
        settlement.setSlashFractions(0, 100, sender=gov)
    with ape.reverts(settlement.InferenceSettlementSlashFractionOutOfBounds, fractionBps=5_001):
        settlement.setSlashFractions(100, 5_001, sender=gov)
    with ape.reverts(settlement.InferenceSettlementZeroAddress):
        settlement.setTreasury(ZERO_ADDRESS, sender=gov)


def test_constructor__zero_addresses__refused(project, accounts, deployer, token, staking, models, tees, treasury, gov):
    # A never-used deployer: ape decodes a deploy's revert with whatever contract it last saw at the would-be
    # address, and snapshots make addresses repeat across tests.
    deployer = accounts.generate_test_account()
    gov.transfer(deployer, 10**18)
    zero = ZERO_ADDRESS
    with ape.reverts(project.InferenceSettlement.InferenceSettlementZeroAddress):
        deployer.deploy(project.InferenceSettlement, token, staking, models, zero, treasury, gov, 3_600, 3_600, 86_400)
    with ape.reverts(project.InferenceSettlement.InferenceSettlementZeroAddress):
        deployer.deploy(project.InferenceSettlement, token, staking, models, tees, treasury, zero, 3_600, 3_600, 86_400)
