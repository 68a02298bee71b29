"""The shared test infrastructure in opgkit.testing does what later issues rely on."""

import pytest
from hypothesis import settings
from hypothesis.stateful import initialize, rule, run_state_machine_as_test

from opgkit import testing
from opgkit.testing import ChainStateMachine, isolated_example


def test_load_hypothesis_profile__audit__has_at_least_20x_ci(monkeypatch):
    monkeypatch.setenv(testing.PROFILE_ENV, "audit")
    try:
        assert testing.load_hypothesis_profile() == "audit"
        ci, audit = testing.PROFILES["ci"], testing.PROFILES["audit"]
        assert audit.max_examples >= 20 * ci.max_examples
        assert audit.stateful_step_count >= 20 * ci.stateful_step_count
        assert settings().max_examples == audit.max_examples
    finally:
        monkeypatch.delenv(testing.PROFILE_ENV)
        testing.load_hypothesis_profile()


def test_load_hypothesis_profile__unknown_name__says_which_exist(monkeypatch):
    monkeypatch.setenv(testing.PROFILE_ENV, "deep")
    with pytest.raises(ValueError, match="choose one of ci, audit"):
        testing.load_hypothesis_profile()


class TransfersOutAndChecksCleanStart(ChainStateMachine):
    token = None
    sender = None
    receiver = None

    @initialize()
    def start_is_clean(self):
        # Fails on the second run if the previous run's transfers were not rolled back.
        assert self.token.balanceOf(self.receiver) == 0

    @rule()
    def transfer(self):
        self.token.transfer(self.receiver, 1, sender=self.sender)


def test_chain_state_machine__runs__each_start_from_the_same_chain_state(token, treasury, alice):
    TransfersOutAndChecksCleanStart.token = token
    TransfersOutAndChecksCleanStart.sender = treasury
    TransfersOutAndChecksCleanStart.receiver = alice
    run_state_machine_as_test(TransfersOutAndChecksCleanStart, settings=settings(max_examples=5, stateful_step_count=3))
    assert token.balanceOf(alice) == 0


def test_isolated_example__failing_example__raises_and_rolls_back(token, treasury, alice):
    """A failed assertion inside an isolated example must fail the test (ape's `chain.isolate()` swallows it),
    and the example's transactions are rolled back either way."""
    before = token.balanceOf(alice)
    with pytest.raises(AssertionError, match="the example failed"):
        with isolated_example():
            token.transfer(alice, 1, sender=treasury)
            assert token.balanceOf(alice) == before + 1
            raise AssertionError("the example failed")
    assert token.balanceOf(alice) == before
