"""Governance end to end: staked operators vote a parameter change through OPGGovernor and the timelock."""

import ape
import pytest
from eth_utils import keccak

from opgkit.testing import advance

from staking_constants import DAY, OPG, UNBONDING_DELAY

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
VOTING_DELAY = DAY
VOTING_PERIOD = 5 * DAY
TIMELOCK_DELAY = 2 * DAY
PROPOSAL_THRESHOLD = 10_000 * OPG
QUORUM_PERCENT = 4
FOR = 1
STATE = {"Pending": 0, "Active": 1, "Canceled": 2, "Defeated": 3, "Succeeded": 4, "Queued": 5, "Executed": 7}


@pytest.fixture(scope="module")
def governance(project, deployer, deploy_staking, token, treasury, stakers):
    """Timelock + governor + staking, wired as in production: the timelock is staking's only admin."""
    timelock = deployer.deploy(project.OPGTimelock, TIMELOCK_DELAY, [], [ZERO_ADDRESS], deployer)
    staking = deploy_staking(token, timelock, treasury)
    governor = deployer.deploy(
        project.OPGGovernor, staking, timelock, VOTING_DELAY, VOTING_PERIOD, PROPOSAL_THRESHOLD, QUORUM_PERCENT
    )
    timelock.grantRole(timelock.PROPOSER_ROLE(), governor, sender=deployer)
    timelock.grantRole(timelock.CANCELLER_ROLE(), governor, sender=deployer)
    timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer, sender=deployer)
    for account in stakers:
        token.approve(staking, 2**256 - 1, sender=account)
        token.transfer(account, 1_000_000 * OPG, sender=treasury)
    return timelock, governor, staking


def proposal(staking, new_delay):
    calldata = staking.setUnbondingDelay.encode_input(new_delay)
    return [staking.address], [0], [calldata], f"Set the unbonding delay to {new_delay} seconds"


def test_governor__deployed__reports_its_parameters(governance):
    timelock, governor, staking = governance
    assert governor.votingDelay() == VOTING_DELAY
    assert governor.votingPeriod() == VOTING_PERIOD
    assert governor.proposalThreshold() == PROPOSAL_THRESHOLD
    assert governor.quorumNumerator() == QUORUM_PERCENT
    assert governor.timelock() == timelock.address
    assert governor.token() == staking.address
    assert governor.CLOCK_MODE() == "mode=timestamp"


def test_proposal__passed_and_executed__changes_unbonding_delay(chain, governance, operator, operator2, alice):
    timelock, governor, staking = governance
    staking.registerOperator(1, 10_000 * OPG, 0, sender=operator)
    staking.stake(operator, 90_000 * OPG, sender=alice)  # delegated stake votes with the operator
    staking.registerOperator(1, 10_000 * OPG, 0, sender=operator2)
    advance(chain, 1)

    targets, values, calldatas, description = proposal(staking, 14 * DAY)
    governor.propose(targets, values, calldatas, description, sender=operator)
    proposal_id = governor.hashProposal(targets, values, calldatas, keccak(text=description))
    assert governor.state(proposal_id) == STATE["Pending"]

    advance(chain, VOTING_DELAY + 1)
    governor.castVote(proposal_id, FOR, sender=operator)
    assert governor.proposalVotes(proposal_id)[1] == 100_000 * OPG
    advance(chain, VOTING_PERIOD)
    assert governor.state(proposal_id) == STATE["Succeeded"]

    governor.queue(targets, values, calldatas, keccak(text=description), sender=alice)
    with ape.reverts(timelock.TimelockUnexpectedOperationState):
        governor.execute(targets, values, calldatas, keccak(text=description), sender=alice)
    advance(chain, TIMELOCK_DELAY)
    governor.execute(targets, values, calldatas, keccak(text=description), sender=alice)

    assert governor.state(proposal_id) == STATE["Executed"]
    assert staking.unbondingDelay() == 14 * DAY


def test_proposal__below_threshold__reverts(governance, alice):
    _, governor, staking = governance
    targets, values, calldatas, description = proposal(staking, 14 * DAY)
    with ape.reverts(governor.GovernorInsufficientProposerVotes):
        governor.propose(targets, values, calldatas, description, sender=alice)


def test_proposal__short_of_quorum__is_defeated(chain, governance, operator, operator2, alice):
    _, governor, staking = governance
    staking.registerOperator(1, 10_000 * OPG, 0, sender=operator)
    staking.registerOperator(1, 10_000 * OPG, 0, sender=operator2)
    staking.stake(operator2, 500_000 * OPG, sender=alice)  # operator's 10,000 is < 4% of 520,000
    advance(chain, 1)
    targets, values, calldatas, description = proposal(staking, 14 * DAY)
    governor.propose(targets, values, calldatas, description, sender=operator)
    proposal_id = governor.hashProposal(targets, values, calldatas, keccak(text=description))
    advance(chain, VOTING_DELAY + 1)
    governor.castVote(proposal_id, FOR, sender=operator)
    advance(chain, VOTING_PERIOD)
    assert governor.state(proposal_id) == STATE["Defeated"]
    assert staking.unbondingDelay() == UNBONDING_DELAY


def test_proposal__cancelled_by_proposer_while_pending__can_no_longer_be_voted(chain, governance, operator, alice):
    _, governor, staking = governance
    staking.registerOperator(1, 10_000 * OPG, 0, sender=operator)
    advance(chain, 1)
    targets, values, calldatas, description = proposal(staking, 14 * DAY)
    governor.propose(targets, values, calldatas, description, sender=operator)
    proposal_id = governor.hashProposal(targets, values, calldatas, keccak(text=description))
    with ape.reverts(governor.GovernorUnableToCancel):
        governor.cancel(targets, values, calldatas, keccak(text=description), sender=alice)
    tx = governor.cancel(targets, values, calldatas, keccak(text=description), sender=operator)
    assert tx.events == [governor.ProposalCanceled(proposal_id)]
    assert governor.state(proposal_id) == STATE["Canceled"]
    advance(chain, VOTING_DELAY + 1)
    with ape.reverts(governor.GovernorUnexpectedProposalState):
        governor.castVote(proposal_id, FOR, sender=operator)


def test_staking_admin__direct_call_from_former_deployer__reverts(governance, deployer):
    _, _, staking = governance
    with ape.reverts(staking.AccessControlUnauthorizedAccount):
        staking.setUnbondingDelay(14 * DAY, sender=deployer)
