"""Attacks on the registries, each named after its finding. Every test performs the attack and asserts the
guarantee; each failed on the code before its fix (see the commit that adds it) and passes since.

A9, model squatting by front-running. A model id used to be `keccak256(abi.encode(contentHash, zkVerifier,
verifyingKeyDigest))`, public data only, and registration was first come, first served. Anyone copying a
pending `register(spec)` from the mempool and getting it mined first owned the model: settlement paid it the
model owner's share (`paymentTerms(modelId).owner`), it set the URI and price, and it could `deprecate` the
id so that those weights, with that verifier and key, could never be registered again. The id now also binds
the registrant (`modelIdOf(registrant, contentHash, zkVerifier, verifyingKeyDigest)`): a copy registers the
copier's own id, which no one else uses, and the honest registration still lands under the id its registrant
computed beforehand. Only an id's owner can deprecate it, and deprecating one id leaves every other
registration of the same content usable.

Heartbeat backdating. `TEERegistry.heartbeat(teeKey, timestamp, signature)` used to checkpoint the heartbeat
at its signed `timestamp`, which may lie up to the age limit in the past. Relaying a heartbeat late then
rewrote history: `isActive(key, t)` turned from false to true for a `t` that had already passed, so a receipt
dated at a time the TEE was dead (refused then) became settleable afterwards. A heartbeat is now
checkpointed at the block time that records it, with its signed time as the value: it never changes
`isActive` for a time before its block, and the age limit still runs from when the enclave signed it.
"""

import pytest
from eth_abi import encode
from eth_utils import keccak

from opgkit.attestation import sign_heartbeat
from opgkit.receipts import Mode, Receipt, Status, sign_receipt
from registry_helpers import BIT, HOUR, MAX_HEARTBEAT_AGE, OPG, TEE, VANILLA, spec
from opgkit.testing import reverts

DAY = 24 * HOUR
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def model_id_of(registrant, model_spec) -> bytes:
    """The id ``registrant`` computes off chain, before sending its registration."""
    return keccak(encode(["address", "bytes32", "address", "bytes32"], [
        registrant.address, model_spec["contentHash"], model_spec["zkVerifier"], model_spec["verifyingKeyDigest"]]))


def registered_id(models, tx) -> bytes:
    return tx.events.filter(models.ModelRegistered)[0].modelId


# ---------------------------------------------------------------- A9: model squatting


def test_a9_model_front_run__copied_registration_gains_nothing(models, alice, bob):
    """Bob copies alice's pending registration byte for byte and has it mined first. Alice's transaction still
    registers the id she computed, she owns it and is the one settlement pays; Bob's copy is an id of its own,
    and he can neither reprice, move nor deprecate hers."""
    honest = spec("a9 front-run", price=5 * OPG)
    honest_id = model_id_of(alice, honest)

    copy_id = registered_id(models, models.register(honest, sender=bob))  # the front-run
    tx = models.register(honest, sender=alice)  # alice's transaction, mined after it

    assert registered_id(models, tx) == honest_id != copy_id
    assert copy_id == model_id_of(bob, honest)
    assert models.model(honest_id).owner == alice.address
    assert models.paymentTerms(honest_id) == (alice.address, 0, ZERO_ADDRESS)  # the owner share settlement pays
    assert models.model(copy_id).owner == bob.address
    assert models.modelIdOf(alice, honest["contentHash"], honest["zkVerifier"], honest["verifyingKeyDigest"]) == honest_id
    for function, args in (("setPrice", (0,)), ("setUri", ("ipfs://bob",)), ("deprecate", ()),
                           ("transferOwnership", (bob.address,))):
        with reverts(models.ModelRegistryNotOwner, modelId=honest_id, account=bob.address):
            getattr(models, function)(honest_id, *args, sender=bob)
    record = models.model(honest_id)
    assert (record.price, record.uri, record.deprecated) == (5 * OPG, "ipfs://a9 front-run", False)


def test_a9_model_front_run__copier_cannot_make_hash_unusable(models, alice, bob):
    """Bob registers a copy of alice's pending spec and deprecates it at once, to burn the content hash. His
    deprecation covers only his own id: alice's registration of the same content, verifier and key lands and
    accepts receipts."""
    honest = spec("a9 burn", allowedModes=BIT[VANILLA] | BIT[TEE], minimumMode=VANILLA)
    copy_id = registered_id(models, models.register(honest, sender=bob))
    models.deprecate(copy_id, sender=bob)
    assert not models.acceptsMode(copy_id, TEE)

    honest_id = registered_id(models, models.register(honest, sender=alice))
    assert honest_id == model_id_of(alice, honest) != copy_id
    assert models.acceptsMode(honest_id, TEE) and models.acceptsMode(honest_id, VANILLA)
    assert models.refusalOf(honest_id, TEE) == 0  # Refusal.None
    assert models.deprecatedAt(honest_id) == 0 and not models.model(honest_id).deprecated
    assert models.model(honest_id).contentHash == models.model(copy_id).contentHash == honest["contentHash"]


# ---------------------------------------------------------------- heartbeat backdating


@pytest.fixture(scope="module")
def settlement(project, deployer, token, tee_staking, models, tees, treasury, gov):
    """InferenceSettlement over the registries of this module (individual settlement needs no batch contract)."""
    return deployer.deploy(project.InferenceSettlement, token, tee_staking, models, tees, treasury, gov, HOUR, DAY)


def tee_receipt(label, model_id, tee_key, timestamp, payer) -> Receipt:
    return Receipt(requestId=keccak(text=f"request {label}"), modelId=model_id, inputHash=keccak(text=f"input {label}"),
                   outputHash=keccak(text=f"output {label}"), mode=Mode.TEE, signer=tee_key.address,
                   timestamp=timestamp, payer=payer.address)


def test_heartbeat_backdating__late_relay_cannot_revive_past(chain, tees, settlement, register_tee, register_model,
                                                             operator, alice, bob, carol):
    """The TEE's heartbeat lapses, so it is dead at `t`, and a receipt it signed dated `t` is refused. The enclave
    had signed a heartbeat shortly before `t`; relaying it now (still within the age window) must revive the TEE
    from now on only: it stays dead at `t` and the receipt dated `t` is still refused."""
    key = register_tee(operator, "backdating")
    model_id = register_model(carol, "backdating model")
    registered = chain.blocks.head.timestamp
    t = registered + MAX_HEARTBEAT_AGE + 100  # the registration's heartbeat lapsed 100 seconds before
    signed = t - 10  # a heartbeat signed then, withheld
    chain.pending_timestamp = t + 60
    chain.mine()
    assert not tees.isActive(key.address, t)
    dead = tee_receipt("dated t", model_id, key, t, alice)
    with reverts(settlement.InferenceSettlementSignerInactive, signer=key.address, timestamp=t) as refused:
        settlement.settle(dead.as_args(), sign_receipt(settlement, dead, key.key), sender=alice)
    assert isinstance(refused.value, settlement.InferenceSettlementSignerInactive)

    recorded = tees.heartbeat(key.address, signed, sign_heartbeat(tees, key, signed), sender=bob).timestamp
    assert recorded - signed <= MAX_HEARTBEAT_AGE  # within the window: the relay itself is valid
    assert tees.lastHeartbeat(key.address) == signed

    assert not tees.isActive(key.address, t)  # still dead at `t` ...
    assert tees.isActive(key.address, recorded)  # ... alive from the block that recorded the heartbeat ...
    for past in (signed, recorded - 1):  # ... and at no earlier time
        assert not tees.isActive(key.address, past)
    with reverts(settlement.InferenceSettlementSignerInactive, signer=key.address, timestamp=t) as refused:
        settlement.settle(dead.as_args(), sign_receipt(settlement, dead, key.key), sender=alice)
    assert isinstance(refused.value, settlement.InferenceSettlementSignerInactive)
    assert settlement.recordOf(alice, dead.requestId).status == Status.NONE

    alive = tee_receipt("dated at the relay", model_id, key, recorded, alice)
    settlement.settle(alive.as_args(), sign_receipt(settlement, alive, key.key), sender=alice)
    assert settlement.recordOf(alice, alive.requestId).status == Status.FINAL
