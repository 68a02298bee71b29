"""A state machine with a planted failure: the subject of the audit tool's own test (tests/tools/test_audit.py).

It runs only when ``OPG_PLANTED_FAILURE`` is set, which that test does. With ``1`` its invariant claims the
treasury never pays out more than 5,000,000 OPG; transfers of up to 2,000,000 OPG disprove it within a few steps,
on either chain, and the counterexample depends on the chain's state (the treasury's balance), not only on the
model's. With ``setup`` the machine's fixture fails before it can take a step: a machine that never ran.
"""

import os

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from opgkit.testing import ChainStateMachine

OPG = 10**18
PLANTED_ENV = "OPG_PLANTED_FAILURE"


class PlantedMachine(ChainStateMachine):
    token = None
    treasury = None
    holders: list = []

    def __init__(self):
        super().__init__()
        self.start = self.token.balanceOf(self.treasury)

    @rule(to=st.integers(0, 2), amount=st.integers(1, 2_000_000 * OPG))
    def pay(self, to, amount):
        self.token.transfer(self.holders[to], amount, sender=self.treasury)

    @invariant()
    def treasury_pays_out_at_most_five_million(self):
        paid = self.start - self.token.balanceOf(self.treasury)
        assert paid <= 5_000_000 * OPG, f"the treasury paid out {paid} wei"


@pytest.fixture
def planted_setup():
    if os.environ.get(PLANTED_ENV) == "setup":
        raise RuntimeError("a planted setup failure")


@pytest.mark.machine
def test_planted_state_machine(planted_setup, token, treasury, holders):
    if os.environ.get(PLANTED_ENV) not in ("1", "setup"):
        pytest.skip(f"a planted failure for the audit tool's test; set {PLANTED_ENV}=1 to run it")
    PlantedMachine.token = token
    PlantedMachine.treasury = treasury
    PlantedMachine.holders = holders
    run_state_machine_as_test(PlantedMachine)
