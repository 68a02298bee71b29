"""Property tests of OPGToken. Invariants are listed in tests/INVARIANTS.md."""

import pytest
from hypothesis import given, strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test

from opgkit.testing import ChainStateMachine, isolated_example
from opgkit.token_signatures import build_delegation, build_permit, sign

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
HOUR = 3600


@pytest.mark.property
@given(value=st.integers(min_value=0, max_value=2**256 - 1), lifetime=st.integers(min_value=0, max_value=10**9))
def test_permit__any_value_and_deadline__sets_exact_allowance_once(chain, funded_token, offchain_signer, alice, value, lifetime):
    with isolated_example():
        # The nonce starts at 0 in every example only if the previous example's permit was rolled back.
        assert funded_token.nonces(offchain_signer.address) == 0
        deadline = chain.pending_timestamp + lifetime
        signature = sign(build_permit(funded_token, offchain_signer.address, alice.address, value, deadline), offchain_signer.key)
        funded_token.permit(offchain_signer.address, alice, value, deadline, signature.v, signature.r, signature.s, sender=alice)
        assert funded_token.allowance(offchain_signer.address, alice) == value
        assert funded_token.nonces(offchain_signer.address) == 1


class TokenMachine(ChainStateMachine):
    """Random transfers, permit-based pulls and (signed) delegations against an exact Python model.

    Holders are ape test accounts plus one key-only holder that acts solely through signatures.
    """

    token = None
    senders: list = []
    key_holder = None

    def __init__(self):
        super().__init__()
        self.addresses = [account.address for account in self.senders] + [self.key_holder.address]
        self.balances = {address: self.token.balanceOf(address) for address in self.addresses}
        self.delegates = {address: self.token.delegates(address) for address in self.addresses}

    @initialize()
    def fund_key_holder(self):
        self._transfer(0, len(self.addresses) - 1, 10**24)

    def _transfer(self, sender_index, receiver_index, amount):
        sender, receiver = self.senders[sender_index], self.addresses[receiver_index]
        self.token.transfer(receiver, amount, sender=sender)
        self._move(sender.address, receiver, amount)

    def _move(self, sender, receiver, amount):
        self.balances[sender] -= amount
        self.balances[receiver] += amount

    def _fraction_of(self, address, fraction):
        return self.balances[address] * fraction // 100

    @rule(sender=st.integers(0, 3), receiver=st.integers(0, 4), fraction=st.integers(0, 100))
    def transfer(self, sender, receiver, fraction):
        self._transfer(sender, receiver, self._fraction_of(self.senders[sender].address, fraction))

    @rule(spender=st.integers(0, 3), receiver=st.integers(0, 4), fraction=st.integers(0, 100))
    def permit_then_pull(self, spender, receiver, fraction):
        owner, spender_account = self.key_holder, self.senders[spender]
        amount = self._fraction_of(owner.address, fraction)
        deadline = self.token.clock() + HOUR
        signature = sign(build_permit(self.token, owner.address, spender_account.address, amount, deadline), owner.key)
        self.token.permit(owner.address, spender_account, amount, deadline, signature.v, signature.r, signature.s, sender=spender_account)
        self.token.transferFrom(owner.address, self.addresses[receiver], amount, sender=spender_account)
        self._move(owner.address, self.addresses[receiver], amount)

    @rule(delegator=st.integers(0, 3), delegatee=st.integers(0, 4))
    def delegate(self, delegator, delegatee):
        account = self.senders[delegator]
        self.token.invoke_transaction("delegate", self.addresses[delegatee], sender=account)
        self.delegates[account.address] = self.addresses[delegatee]

    @rule(relayer=st.integers(0, 3), delegatee=st.integers(0, 4))
    def delegate_by_signature(self, relayer, delegatee):
        owner = self.key_holder
        delegation = build_delegation(self.token, owner.address, self.addresses[delegatee], self.token.clock() + HOUR)
        signature = sign(delegation, owner.key)
        self.token.delegateBySig(
            delegation.delegatee, delegation.nonce, delegation.expiry, signature.v, signature.r, signature.s,
            sender=self.senders[relayer],
        )
        self.delegates[owner.address] = self.addresses[delegatee]

    @invariant()
    def balances_match_model_and_conserve_supply(self):
        for address, balance in self.balances.items():
            assert self.token.balanceOf(address) == balance
        assert sum(self.balances.values()) == self.token.totalSupply() == self.token.TOTAL_SUPPLY()

    @invariant()
    def votes_equal_delegated_balances_and_never_exceed_supply(self):
        expected = {address: 0 for address in self.addresses}
        for holder, delegatee in self.delegates.items():
            if delegatee != ZERO_ADDRESS:
                expected[delegatee] += self.balances[holder]
        votes = {address: self.token.getVotes(address) for address in self.addresses}
        assert votes == expected
        assert sum(votes.values()) <= self.token.totalSupply()


@pytest.mark.machine
def test_token_state_machine(token, treasury, holders, offchain_signer):
    TokenMachine.token = token
    TokenMachine.senders = [treasury, *holders]
    TokenMachine.key_holder = offchain_signer
    run_state_machine_as_test(TokenMachine)
