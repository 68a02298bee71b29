"""Unit tests of ModelRegistry: registration, policy, lineage, ownership, deprecation."""

import pytest
from eth_abi import encode
from eth_utils import keccak

from registry_helpers import BIT, OPG, TEE, VANILLA, ZKML, content_hash, spec
from opgkit.testing import reverts

ZERO_ADDRESS = "0x" + "00" * 20

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
VERIFIER = "0x00000000000000000000000000000000000000A1"  # checksummed
VK_DIGEST = keccak(text="verifying key")


def zkml(label="zk", **overrides):
    return dict(allowedModes=BIT[ZKML], minimumMode=ZKML, zkVerifier=VERIFIER, verifyingKeyDigest=VK_DIGEST) | overrides


def test_register__root_model__stores_record_and_emits(models, alice):
    tx = models.register(spec("base"), sender=alice)
    model_id = keccak(encode(["address", "bytes32", "address", "bytes32"],
                             [alice.address, content_hash("base"), ZERO_ADDRESS, ZERO32]))
    record = models.model(model_id)
    assert (record.owner, record.uri, record.price) == (alice.address, "ipfs://base", 2 * OPG)
    assert record.family == model_id and record.parent == ZERO32
    assert record.contentHash == content_hash("base")
    assert tx.events == [models.ModelRegistered(model_id, alice, ZERO32, model_id, content_hash("base"))]
    assert models.modelIdOf(alice, content_hash("base"), ZERO_ADDRESS, ZERO32) == model_id


def test_register__same_spec_by_another_account__its_own_id(models, register_model, alice, bob):
    mine, theirs = register_model(alice), register_model(bob)
    assert mine != theirs
    assert theirs == models.modelIdOf(bob, content_hash("base"), ZERO_ADDRESS, ZERO32)
    assert (models.model(mine).owner, models.model(theirs).owner) == (alice.address, bob.address)


def test_register__id_stays_with_the_model_when_ownership_moves(models, register_model, alice, bob):
    model_id = register_model(alice)
    models.transferOwnership(model_id, bob, sender=alice)
    models.acceptOwnership(model_id, sender=bob)
    assert models.modelIdOf(alice, content_hash("base"), ZERO_ADDRESS, ZERO32) == model_id
    assert models.model(model_id).owner == bob.address
    # The new owner registering the same spec gets an id of its own; the moved one is unaffected.
    assert register_model(bob) == models.modelIdOf(bob, content_hash("base"), ZERO_ADDRESS, ZERO32) != model_id


def test_register__zkml_binding__id_depends_on_verifier_and_key(models, register_model, alice):
    plain = register_model(alice, "weights")
    bound = register_model(alice, "weights", **zkml(), parent=plain, sameFamily=True)
    assert plain != bound
    assert models.model(bound).zkVerifier == VERIFIER
    assert models.model(bound).verifyingKeyDigest == VK_DIGEST
    assert models.zkVerifierOf(bound) == VERIFIER
    assert models.zkVerifierOf(plain) == ZERO_ADDRESS
    assert models.zkVerifierOf(keccak(text="never registered")) == ZERO_ADDRESS


def test_register__empty_hash__reverts(models, alice):
    with reverts(models.ModelRegistryEmptyContentHash):
        models.register(spec(contentHash=ZERO32), sender=alice)


def test_register__duplicate_by_its_registrant__reverts(models, register_model, alice):
    model_id = register_model(alice)
    with reverts(models.ModelRegistryAlreadyRegistered, modelId=model_id):
        models.register(spec(uri="ipfs://again", price=1), sender=alice)


def test_register__unknown_parent__reverts(models, alice):
    parent = keccak(text="nobody registered this")
    with reverts(models.ModelRegistryUnknownParent, parent=parent):
        models.register(spec(parent=parent), sender=alice)


def test_register__own_id_as_parent__reverts_as_cycle(models, alice):
    own_id = models.modelIdOf(alice, content_hash("loop"), ZERO_ADDRESS, ZERO32)
    with reverts(models.ModelRegistryCycle, modelId=own_id):
        models.register(spec("loop", parent=own_id), sender=alice)


@pytest.mark.parametrize(
    "allowed, minimum",
    [(0, VANILLA), (8, VANILLA), (BIT[TEE], VANILLA), (BIT[VANILLA], TEE)],
)
def test_register__invalid_policy__reverts(models, alice, allowed, minimum):
    with reverts(models.ModelRegistryInvalidPolicy, allowedModes=allowed, minimumMode=minimum):
        models.register(spec(allowedModes=allowed, minimumMode=minimum), sender=alice)


def test_register__zkml_without_verifier__reverts(models, alice):
    with reverts(models.ModelRegistryZeroVerifier):
        models.register(spec(**zkml(zkVerifier=ZERO_ADDRESS)), sender=alice)
    with reverts(models.ModelRegistryZeroVerifier):
        models.register(spec(**zkml(verifyingKeyDigest=ZERO32)), sender=alice)


def test_register__verifier_without_zkml__reverts(models, alice):
    with reverts(models.ModelRegistryVerifierWithoutZkml, zkVerifier=VERIFIER):
        models.register(spec(zkVerifier=VERIFIER, verifyingKeyDigest=VK_DIGEST), sender=alice)


def test_register__royalty_without_parent__reverts(models, alice):
    with reverts(models.ModelRegistryRoyaltyWithoutParent):
        models.register(spec(royaltyBps=100), sender=alice)


def test_payment_terms__child_without_royalty__no_royalty_recipient(models, register_model, alice, bob):
    parent = register_model(alice, "parent")
    child = register_model(bob, "child", parent=parent, royaltyBps=0)
    assert tuple(models.paymentTerms(child)) == (bob.address, 0, ZERO_ADDRESS)


def test_register__royalty_above_cap__reverts(models, register_model, alice, bob):
    parent = register_model(alice)
    with reverts(models.ModelRegistryRoyaltyTooHigh, royaltyBps=2_001, maximum=2_000):
        models.register(spec("fork", parent=parent, royaltyBps=2_001), sender=bob)


def test_version__by_parent_owner__joins_family(models, register_model, alice):
    v1 = register_model(alice, "v1")
    v2 = register_model(alice, "v2", parent=v1, sameFamily=True)
    v3 = register_model(alice, "v3", parent=v2, sameFamily=True)
    assert models.model(v3).family == v1
    assert models.versionCount(v1) == 3
    assert list(models.versions(v1, 0, 10)) == [v1, v2, v3]
    assert list(models.versions(v1, 1, 1)) == [v2]
    assert list(models.lineage(v3, 10)) == [v3, v2, v1]
    assert list(models.lineage(v3, 2)) == [v3, v2]


def test_version__by_someone_else__reverts(models, register_model, alice, bob):
    v1 = register_model(alice, "v1")
    with reverts(models.ModelRegistryNotFamilyOwner, parent=v1, account=bob.address):
        models.register(spec("v2", parent=v1, sameFamily=True), sender=bob)


def test_fork__by_anyone__starts_family_and_records_royalty(models, register_model, alice, bob):
    base = register_model(alice, "base")
    fork = register_model(bob, "fork", parent=base, royaltyBps=500)
    record = models.model(fork)
    assert record.family == fork and record.parent == base and record.royaltyBps == 500
    assert models.childCount(base) == 1 and list(models.children(base, 0, 5)) == [fork]
    assert list(models.lineage(fork, 5)) == [fork, base]


def test_pagination__offset_past_end__returns_empty(models, register_model, alice):
    base = register_model(alice)
    assert list(models.children(base, 0, 10)) == []
    assert list(models.versions(base, 5, 10)) == []
    assert list(models.versions(base, 2**256 - 1, 2**256 - 1)) == []


def test_accepts_mode__policy__checks_allowed_and_minimum(models, register_model, alice):
    model_id = register_model(alice, allowedModes=BIT[VANILLA] | BIT[TEE], minimumMode=TEE)
    assert models.acceptsMode(model_id, TEE)
    assert not models.acceptsMode(model_id, VANILLA)
    assert not models.acceptsMode(model_id, ZKML)
    assert not models.acceptsMode(keccak(text="unknown"), TEE)


def test_policy_accepts__deprecated__still_answers_the_fixed_policy(models, register_model, alice):
    model_id = register_model(alice, allowedModes=BIT[VANILLA] | BIT[TEE], minimumMode=TEE)
    models.deprecate(model_id, sender=alice)
    assert models.policyAccepts(model_id, TEE)
    assert not models.policyAccepts(model_id, VANILLA)
    assert not models.policyAccepts(model_id, ZKML)
    assert not models.policyAccepts(keccak(text="unknown"), VANILLA)


def test_set_uri_and_price__owner__updates_and_emits(models, register_model, alice):
    model_id = register_model(alice)
    assert models.setUri(model_id, "ar://moved", sender=alice).events == [models.ModelUriChanged(model_id, "ar://moved")]
    assert models.setPrice(model_id, 7, sender=alice).events == [models.ModelPriceChanged(model_id, 2 * OPG, 7)]
    record = models.model(model_id)
    assert (record.uri, record.price) == ("ar://moved", 7)


def test_deprecate__owner__refuses_new_receipts_keeps_history(models, register_model, alice):
    model_id = register_model(alice)
    tx = models.deprecate(model_id, sender=alice)
    assert tx.events == [models.ModelDeprecated(model_id)]
    assert not models.acceptsMode(model_id, VANILLA)
    assert models.model(model_id).deprecated and models.model(model_id).owner == alice.address
    with reverts(models.ModelRegistryDeprecated, modelId=model_id):
        models.deprecate(model_id, sender=alice)


def test_transfer_ownership__model_owned_by_a_contract__event_names_the_contract(project, deployer, models, alice,
                                                                                bob):
    """A model owner may be a contract (a multisig): the transfer's event names it, not the transaction's origin."""
    wallet = deployer.deploy(project.ExploitOwnerWallet, alice)
    registered = wallet.execute(models, models.register.encode_input(spec("owned by a wallet")), sender=alice)
    model_id = registered.events.filter(models.ModelRegistered)[0].modelId
    started = wallet.execute(models, models.transferOwnership.encode_input(model_id, bob), sender=alice)
    assert started.events.filter(models.ModelOwnershipTransferStarted) == [
        models.ModelOwnershipTransferStarted(model_id, wallet, bob)]


def test_version__by_a_contract_not_owning_the_family__refused_naming_the_contract(project, deployer, models,
                                                                                 register_model, alice, bob):
    v1 = register_model(alice, "v1")
    wallet = deployer.deploy(project.ExploitOwnerWallet, bob)
    refusal = keccak(text="ModelRegistryNotFamilyOwner(bytes32,address)")[:4] + encode(
        ["bytes32", "address"], [v1, wallet.address])
    with reverts(wallet.ExploitOwnerWalletCallFailed, reason=refusal):
        wallet.execute(models, models.register.encode_input(spec("v2", parent=v1, sameFamily=True)), sender=bob)


def test_exists__registered_or_not(models, register_model, alice):
    assert models.exists(register_model(alice, "exists"))
    assert not models.exists(content_hash("never registered"))


def test_transfer_ownership__two_steps__moves_owner(models, register_model, alice, bob):
    model_id = register_model(alice)
    started = models.transferOwnership(model_id, bob, sender=alice)
    assert started.events == [models.ModelOwnershipTransferStarted(model_id, alice, bob)]
    assert models.model(model_id).owner == alice.address and models.pendingOwner(model_id) == bob.address
    accepted = models.acceptOwnership(model_id, sender=bob)
    assert accepted.events == [models.ModelOwnershipTransferred(model_id, alice, bob)]
    assert models.model(model_id).owner == bob.address and models.pendingOwner(model_id) == ZERO_ADDRESS


def test_accept_ownership__not_pending_owner__reverts(models, register_model, alice, bob, carol):
    model_id = register_model(alice)
    models.transferOwnership(model_id, bob, sender=alice)
    with reverts(models.ModelRegistryNotPendingOwner, modelId=model_id, account=carol.address):
        models.acceptOwnership(model_id, sender=carol)


def test_unknown_model__read_or_updated__reverts(models, alice):
    unknown = keccak(text="unknown")
    with reverts(models.ModelRegistryUnknownModel, modelId=unknown):
        models.model(unknown)
    with reverts(models.ModelRegistryUnknownModel, modelId=unknown):
        models.setPrice(unknown, 1, sender=alice)
    with reverts(models.ModelRegistryUnknownModel, modelId=unknown):
        models.lineage(unknown, 3)


@pytest.mark.parametrize(
    "function, args",
    [
        ("setUri", ("x",)),
        ("setPrice", (1,)),
        ("deprecate", ()),
        ("transferOwnership", ("0x00000000000000000000000000000000000000b0",)),
    ],
)
def test_owner_only__other_caller__reverts(models, register_model, alice, bob, function, args):
    model_id = register_model(alice)
    with reverts(models.ModelRegistryNotOwner, modelId=model_id, account=bob.address):
        getattr(models, function)(model_id, *args, sender=bob)
