"""Unit tests of OPGToken: every behaviour and every failure path."""

import pytest

from opgkit.testing import reverts
from opgkit.token_signatures import build_delegation, build_permit, sign

ONE_BILLION_OPG = 1_000_000_000 * 10**18
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_UINT256 = 2**256 - 1


def test_deploy__treasury_given__mints_whole_supply_once(project, deployer, treasury):
    token = deployer.deploy(project.OPGToken, treasury)
    assert token.totalSupply() == ONE_BILLION_OPG == token.TOTAL_SUPPLY()
    assert token.balanceOf(treasury) == ONE_BILLION_OPG
    assert token.balanceOf(deployer) == 0
    assert token.creation_metadata.receipt.events == [token.Transfer(ZERO_ADDRESS, treasury, ONE_BILLION_OPG)]


def test_deploy__zero_treasury__reverts(project, deployer):
    with reverts(project.OPGToken.ERC20InvalidReceiver, receiver=ZERO_ADDRESS):
        deployer.deploy(project.OPGToken, ZERO_ADDRESS)


def test_metadata__read__matches_spec(token):
    assert token.name() == "OpenGradient"
    assert token.symbol() == "OPG"
    assert token.decimals() == 18


def test_abi__inspected__has_no_mint_or_burn(token):
    names = {abi.name for abi in token.contract_type.mutable_methods}
    assert not {name for name in names if "mint" in name.lower() or "burn" in name.lower()}
    assert names == {"approve", "transfer", "transferFrom", "permit", "delegate", "delegateBySig"}


def test_transfer__enough_balance__moves_tokens_and_emits(token, treasury, alice):
    tx = token.transfer(alice, 5, sender=treasury)
    assert token.balanceOf(alice) == 5
    assert token.balanceOf(treasury) == ONE_BILLION_OPG - 5
    assert tx.events == [token.Transfer(treasury, alice, 5)]


def test_transfer__more_than_balance__reverts(token, alice, bob):
    with reverts(token.ERC20InsufficientBalance, sender=alice.address, balance=0, needed=1):
        token.transfer(bob, 1, sender=alice)


def test_transfer__to_zero_address__reverts(token, treasury):
    with reverts(token.ERC20InvalidReceiver, receiver=ZERO_ADDRESS):
        token.transfer(ZERO_ADDRESS, 1, sender=treasury)


def test_approve__spender_given__sets_allowance_and_emits(token, alice, bob):
    tx = token.approve(bob, 7, sender=alice)
    assert token.allowance(alice, bob) == 7
    assert tx.events == [token.Approval(alice, bob, 7)]


def test_approve__zero_spender__reverts(token, alice):
    with reverts(token.ERC20InvalidSpender, spender=ZERO_ADDRESS):
        token.approve(ZERO_ADDRESS, 1, sender=alice)


def test_transfer_from__within_allowance__spends_allowance(token, treasury, alice, bob):
    token.approve(alice, 10, sender=treasury)
    token.transferFrom(treasury, bob, 4, sender=alice)
    assert token.allowance(treasury, alice) == 6
    assert token.balanceOf(bob) == 4


def test_transfer_from__infinite_allowance__is_not_decremented(token, treasury, alice, bob):
    token.approve(alice, MAX_UINT256, sender=treasury)
    token.transferFrom(treasury, bob, 4, sender=alice)
    assert token.allowance(treasury, alice) == MAX_UINT256


def test_transfer_from__beyond_allowance__reverts(token, treasury, alice, bob):
    token.approve(alice, 3, sender=treasury)
    with reverts(token.ERC20InsufficientAllowance, spender=alice.address, allowance=3, needed=4):
        token.transferFrom(treasury, bob, 4, sender=alice)


def _permit_args(token, owner, spender, value, deadline, key, **overrides):
    message = build_permit(token, owner.address, spender.address, value, deadline, **overrides)
    signature = sign(message, key)
    return (owner.address, spender.address, value, deadline, signature.v, signature.r, signature.s)


@pytest.fixture
def permit_owner(token, treasury, offchain_signer):
    """A holder that exists only as a private key: it signs permits and never sends a transaction."""
    token.transfer(offchain_signer.address, 100, sender=treasury)
    return offchain_signer


def test_permit__signed_offchain__sets_allowance_and_bumps_nonce(chain, token, permit_owner, alice, bob):
    deadline = chain.pending_timestamp + 3600
    token.permit(*_permit_args(token, permit_owner, alice, 60, deadline, permit_owner.key), sender=bob)
    assert token.allowance(permit_owner.address, alice) == 60
    assert token.nonces(permit_owner.address) == 1
    token.transferFrom(permit_owner.address, alice, 60, sender=alice)
    assert token.balanceOf(alice) == 60


def test_permit__past_deadline__reverts(chain, token, permit_owner, alice):
    deadline = chain.blocks.head.timestamp - 1
    with reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(*_permit_args(token, permit_owner, alice, 1, deadline, permit_owner.key), sender=alice)


def test_permit__signed_by_someone_else__reverts(chain, token, permit_owner, alice, offchain_signer):
    impostor_key = "0x" + "11" * 32
    deadline = chain.pending_timestamp + 3600
    with reverts(token.ERC2612InvalidSigner):
        token.permit(*_permit_args(token, permit_owner, alice, 1, deadline, impostor_key), sender=alice)


def test_permit__replayed__reverts(chain, token, permit_owner, alice):
    args = _permit_args(token, permit_owner, alice, 1, chain.pending_timestamp + 3600, permit_owner.key)
    token.permit(*args, sender=alice)
    with reverts(token.ERC2612InvalidSigner):
        token.permit(*args, sender=alice)


def test_permit__other_chain_domain__reverts(chain, token, permit_owner, alice):
    message = build_permit(token, permit_owner.address, alice.address, 1, chain.pending_timestamp + 3600)
    message._eip712_domain_ = message._eip712_domain_.model_copy(update={"chainId": chain.chain_id + 1})
    signature = sign(message, permit_owner.key)
    with reverts(token.ERC2612InvalidSigner):
        token.permit(permit_owner.address, alice, 1, message.deadline, signature.v, signature.r, signature.s, sender=alice)


def test_clock__read__is_block_timestamp_mode(chain, token):
    assert token.CLOCK_MODE() == "mode=timestamp"
    assert token.clock() == chain.blocks.head.timestamp


def delegate(token, delegatee, delegator):
    # `token.delegate` is ape's EIP-7702 delegate property of any address, so call the method by name.
    return token.invoke_transaction("delegate", delegatee, sender=delegator)


def test_votes__no_delegation__count_for_nobody(token, treasury):
    assert token.getVotes(treasury) == 0
    assert token.delegates(treasury) == ZERO_ADDRESS


def test_delegate__to_self__activates_votes_and_emits(token, treasury):
    tx = delegate(token, treasury, treasury)
    assert token.getVotes(treasury) == ONE_BILLION_OPG
    assert tx.events == [
        token.DelegateChanged(treasury, ZERO_ADDRESS, treasury),
        token.DelegateVotesChanged(treasury, 0, ONE_BILLION_OPG),
    ]


def test_delegate__then_transfer__moves_votes_with_tokens(token, treasury, alice, bob):
    delegate(token, bob, treasury)
    delegate(token, alice, alice)
    token.transfer(alice, 40, sender=treasury)
    assert token.getVotes(bob) == ONE_BILLION_OPG - 40
    assert token.getVotes(alice) == 40


def test_get_past_votes__after_time_passes__returns_checkpoint(chain, token, treasury, alice):
    delegate(token, treasury, treasury)
    checkpoint_time = chain.blocks.head.timestamp
    chain.mine(timestamp=checkpoint_time + 10)
    token.transfer(alice, 40, sender=treasury)
    chain.mine(timestamp=chain.blocks.head.timestamp + 10)
    assert token.getPastVotes(treasury, checkpoint_time) == ONE_BILLION_OPG
    assert token.getPastVotes(treasury, chain.blocks.head.timestamp - 1) == ONE_BILLION_OPG - 40
    assert token.getPastTotalSupply(checkpoint_time) == ONE_BILLION_OPG


def test_get_past_votes__present_or_future__reverts(token, treasury):
    now = token.clock()
    with reverts(token.ERC5805FutureLookup, timepoint=now, clock=now):
        token.getPastVotes(treasury, now)
    with reverts(token.ERC5805FutureLookup):
        token.getPastTotalSupply(now + 1)


def _delegation_args(token, delegator, delegatee, expiry, key):
    message = build_delegation(token, delegator.address, delegatee.address, expiry)
    signature = sign(message, key)
    return (delegatee.address, message.nonce, expiry, signature.v, signature.r, signature.s)


def test_delegate_by_sig__signed_offchain__delegates_for_signer(chain, token, permit_owner, alice):
    token.delegateBySig(*_delegation_args(token, permit_owner, alice, chain.pending_timestamp + 3600, permit_owner.key), sender=alice)
    assert token.delegates(permit_owner.address) == alice.address
    assert token.getVotes(alice) == 100


def test_delegate_by_sig__expired__reverts(chain, token, permit_owner, alice):
    expiry = chain.blocks.head.timestamp - 1
    with reverts(token.VotesExpiredSignature, expiry=expiry):
        token.delegateBySig(*_delegation_args(token, permit_owner, alice, expiry, permit_owner.key), sender=alice)


def test_delegate_by_sig__replayed__reverts(chain, token, permit_owner, alice):
    args = _delegation_args(token, permit_owner, alice, chain.pending_timestamp + 3600, permit_owner.key)
    token.delegateBySig(*args, sender=alice)
    with reverts(token.InvalidAccountNonce, account=permit_owner.address, currentNonce=1):
        token.delegateBySig(*args, sender=alice)
