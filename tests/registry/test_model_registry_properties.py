"""Property tests of ModelRegistry lineage: whatever is registered, ancestry is finite and acyclic."""

import ape
from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from opgkit.testing import ChainStateMachine
from registry_helpers import spec

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class LineageMachine(ChainStateMachine):
    """Registrations with random parents: existing models, the model's own id, or an unknown id."""

    models = None
    owners: list = []

    def __init__(self):
        super().__init__()
        self.registered = {}  # id -> (parent, owner, family)
        self.labels = 0

    @rule(owner=st.integers(0, 2), parent_pick=st.integers(0, 10**6), kind=st.sampled_from(["root", "existing", "self", "unknown"]), same_family=st.booleans())
    def register(self, owner, parent_pick, kind, same_family):
        account = self.owners[owner]
        self.labels += 1
        label = f"lineage-{self.labels}"
        own_id = self.models.modelIdOf(spec(label)["contentHash"], ZERO_ADDRESS, ZERO32)
        if kind == "root" or (kind == "existing" and not self.registered):
            parent = ZERO32
        elif kind == "existing":
            parent = sorted(self.registered)[parent_pick % len(self.registered)]
        elif kind == "self":
            parent = own_id
        else:
            parent = keccak(text=f"unknown-{parent_pick}")

        if kind == "self":
            with ape.reverts(self.models.ModelRegistryCycle):
                self.models.register(spec(label, parent=parent), sender=account)
            return
        if kind == "unknown":
            with ape.reverts(self.models.ModelRegistryUnknownParent):
                self.models.register(spec(label, parent=parent), sender=account)
            return
        if parent != ZERO32 and same_family and self.registered[parent][1] != account.address:
            with ape.reverts(self.models.ModelRegistryNotFamilyOwner):
                self.models.register(spec(label, parent=parent, sameFamily=True), sender=account)
            return
        family_of_parent = self.registered[parent][2] if parent != ZERO32 else None
        self.models.register(spec(label, parent=parent, sameFamily=same_family and parent != ZERO32), sender=account)
        family = family_of_parent if (parent != ZERO32 and same_family) else own_id
        self.registered[own_id] = (parent, account.address, family)

    @invariant()
    def lineage_is_finite_acyclic_and_matches_the_model(self):
        bound = len(self.registered) + 1
        for model_id, (parent, _, family) in self.registered.items():
            chain = list(self.models.lineage(model_id, bound))
            assert len(chain) < bound, "lineage longer than the number of models: a cycle"
            assert len(set(chain)) == len(chain)
            assert chain[0] == model_id
            assert self.models.model(chain[-1]).parent == ZERO32
            assert self.models.model(model_id).family == family
            if parent != ZERO32:
                assert chain[1] == parent


def test_lineage_state_machine(models, alice, bob, carol):
    LineageMachine.models = models
    LineageMachine.owners = [alice, bob, carol]
    run_state_machine_as_test(LineageMachine)
