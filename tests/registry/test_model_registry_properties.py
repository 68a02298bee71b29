"""Property tests of ModelRegistry: whatever is registered, ancestry is finite and acyclic, and whatever a
front-runner copies from the mempool, each honest registrant ends up owning the id it computed in advance."""

import pytest
from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from opgkit.testing import ChainStateMachine, ReadSchedule, reverts
from registry_helpers import TEE, spec

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
WINDOW = 8  # older models re-read each step between full checks
FULL_CHECK_EVERY = 10  # steps


class LineageMachine(ChainStateMachine):
    """Registrations with random parents: existing models, the model's own id, or an unknown id. Honest owners
    also announce registrations (sent, not yet mined) whose ids they compute beforehand; a squatter copies
    announced specs, registers the copies first and deprecates some of them, before the honest ones land."""

    models = None
    owners: list = []
    squatter = None

    def __init__(self):
        super().__init__()
        self.registered = {}  # id -> (parent, owner, family)
        self.pending = []  # (account, spec, the id its registrant computed)
        self.landed = {}  # id -> registrant, for announced registrations that were mined
        self.copies = set()  # ids the squatter registered
        self.labels = 0
        self.schedule = ReadSchedule(WINDOW, FULL_CHECK_EVERY)

    def _label(self):
        self.labels += 1
        return f"lineage-{self.labels}"

    def _own_id(self, account, model_spec):
        return self.models.modelIdOf(account, model_spec["contentHash"], model_spec["zkVerifier"],
                                     model_spec["verifyingKeyDigest"])

    @rule(owner=st.integers(0, 2), parent_pick=st.integers(0, 10**6), kind=st.sampled_from(["root", "existing", "self", "unknown"]), same_family=st.booleans())
    def register(self, owner, parent_pick, kind, same_family):
        account = self.owners[owner]
        label = self._label()
        own_id = self._own_id(account, spec(label))
        if kind == "root" or (kind == "existing" and not self.registered):
            parent = ZERO32
        elif kind == "existing":
            parent = sorted(self.registered)[parent_pick % len(self.registered)]
        elif kind == "self":
            parent = own_id
        else:
            parent = keccak(text=f"unknown-{parent_pick}")

        if kind == "self":
            with reverts(self.models.ModelRegistryCycle, modelId=own_id):
                self.models.register(spec(label, parent=parent), sender=account)
            return
        if kind == "unknown":
            with reverts(self.models.ModelRegistryUnknownParent, parent=parent):
                self.models.register(spec(label, parent=parent), sender=account)
            return
        if parent != ZERO32 and same_family and self.registered[parent][1] != account.address:
            with reverts(self.models.ModelRegistryNotFamilyOwner, parent=parent, account=account.address):
                self.models.register(spec(label, parent=parent, sameFamily=True), sender=account)
            return
        self._register(account, spec(label, parent=parent, sameFamily=same_family and parent != ZERO32), own_id)

    def _register(self, account, model_spec, expected_id):
        tx = self.models.register(model_spec, sender=account)
        model_id = tx.events.filter(self.models.ModelRegistered)[0].modelId
        assert model_id == expected_id
        parent = model_spec["parent"]
        family = self.registered[parent][2] if model_spec["sameFamily"] else model_id
        self.registered[model_id] = (parent, account.address, family)
        return model_id

    @rule(owner=st.integers(0, 2), parent_pick=st.integers(0, 10**6), kind=st.sampled_from(["root", "fork", "version"]),
          copied_at_once=st.booleans(), deprecate=st.booleans())
    def announce(self, owner, parent_pick, kind, copied_at_once, deprecate):
        """An honest owner sends a registration (a root, a fork of any model, or a version of one of its own)
        and computes its id from its own address before it is mined; the squatter's bot may copy it at once."""
        account = self.owners[owner]
        mine = sorted(i for i, (_, o, _) in self.registered.items() if o == account.address)
        candidates = {"root": [], "fork": sorted(self.registered), "version": mine}[kind]
        parent = candidates[parent_pick % len(candidates)] if candidates else ZERO32
        model_spec = spec(self._label(), parent=parent, sameFamily=kind == "version" and parent != ZERO32,
                          royaltyBps=100 if kind == "fork" and parent != ZERO32 else 0)
        self.pending.append((account, model_spec, self._own_id(account, model_spec)))
        if copied_at_once:
            self._copy(self.pending[-1], deprecate)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 10**6), deprecate=st.booleans())
    def front_run(self, pick, deprecate):
        """The squatter copies a registration that has been pending for a while."""
        self._copy(self.pending[pick % len(self.pending)], deprecate)

    def _copy(self, pending, deprecate):
        """The squatter copies a pending registration byte for byte and gets it mined first."""
        account, model_spec, honest_id = pending
        copy_id = self._own_id(self.squatter, model_spec)
        assert copy_id != honest_id
        parent = model_spec["parent"]
        if model_spec["sameFamily"]:  # a version needs the parent's owner, which the squatter is not
            with reverts(self.models.ModelRegistryNotFamilyOwner, parent=parent, account=self.squatter.address):
                self.models.register(model_spec, sender=self.squatter)
            return
        if copy_id in self.copies:
            with reverts(self.models.ModelRegistryAlreadyRegistered, modelId=copy_id):
                self.models.register(model_spec, sender=self.squatter)
            return
        self._register(self.squatter, model_spec, copy_id)
        self.copies.add(copy_id)
        if deprecate:
            self.models.deprecate(copy_id, sender=self.squatter)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 10**6))
    def land(self, pick):
        """A pending honest registration is mined, after whatever the squatter did."""
        account, model_spec, honest_id = self.pending.pop(pick % len(self.pending))
        self._register(account, model_spec, honest_id)
        self.landed[honest_id] = account.address

    def _expected_lineage(self, model_id):
        chain = [model_id]
        while self.registered[chain[-1]][0] != ZERO32:
            chain.append(self.registered[chain[-1]][0])
        return chain

    @invariant()
    def models_match_the_model(self):
        """For each model due (`ReadSchedule`: new ones every step, all every tenth): its parent and family are the model's; `lineage` is exactly its parents up
        to the root, so finite and acyclic; an honest registrant owns the id it computed and is paid under it; a
        squatter's copy is the squatter's and never an id an honest registration landed on."""
        bound = len(self.registered) + 1
        for model_id in self.schedule.due(self.registered):
            parent, _, family = self.registered[model_id]
            record = self.models.model(model_id)
            assert (record.parent, record.family) == (parent, family), model_id
            chain = list(self.models.lineage(model_id, bound))
            assert len(chain) < bound, "lineage longer than the number of models: a cycle"
            assert chain == self._expected_lineage(model_id), model_id
            if model_id in self.landed:
                registrant = self.landed[model_id]
                assert record.owner == registrant
                assert self.models.paymentTerms(model_id)[0] == registrant
                assert self.models.acceptsMode(model_id, TEE)
            if model_id in self.copies:
                assert record.owner == self.squatter.address
                assert model_id not in self.landed


@pytest.mark.machine
def test_lineage_state_machine(models, alice, bob, carol, reporter):
    LineageMachine.models = models
    LineageMachine.owners = [alice, bob, carol]
    LineageMachine.squatter = reporter
    run_state_machine_as_test(LineageMachine)
