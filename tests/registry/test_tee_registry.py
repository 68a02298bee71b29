"""Unit tests of TEERegistry: bound registration, heartbeats, history, revocation, rotation, stake."""

import dataclasses

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit.attestation import sign_heartbeat
from opgkit.testing import advance, reverts
from registry_helpers import MAX_HEARTBEAT_AGE, NITRO, PCR_V1, PCR_V2

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def now(chain):
    return chain.blocks.head.timestamp


def new_key(label):
    return Account.from_key(keccak(text=f"tee key {label}"))


# ------------------------------------------------------------------ registration


def test_register__attested_by_quorum__stores_lists_and_activates(chain, tees, attest, operator):
    key = new_key("a")
    statement, endpoint, evidence = attest(operator, key)
    tx = tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)
    record = tees.tee(key.address)
    assert (record.operator, record.teeType, record.measurement, record.endpoint) == (operator.address, NITRO, PCR_V1, endpoint)
    assert record.enabled and record.paymentAddress == operator.address
    assert tees.isActive(key.address, now(chain))
    assert tees.nonces(operator) == 1
    assert list(tees.teesOfOperator(operator, 0, 10)) == [key.address]
    assert list(tees.teesOfType(NITRO, 0, 10)) == [key.address]
    assert tees.TeeRegistered(key.address, operator, NITRO, PCR_V1, endpoint) in tx.events


def test_register__statement_of_another_operator__reverts(tees, attest, operator, operator2):
    statement, endpoint, evidence = attest(operator, new_key("a"))
    with reverts(tees.TEERegistryNotStatementOperator, caller=operator2.address, operator=operator.address):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator2)


def test_register__other_chain__reverts(chain, tees, attest, operator):
    statement, endpoint, evidence = attest(operator, new_key("a"), chain_id=chain.chain_id + 1)
    with reverts(tees.TEERegistryWrongChain, chainId=chain.chain_id + 1):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def test_register__other_registry__reverts(tees, attest, operator):
    statement, endpoint, evidence = attest(operator, new_key("a"))
    elsewhere = dataclasses.replace(statement, registry="0x00000000000000000000000000000000000000E1")
    with reverts(tees.TEERegistryWrongRegistry):
        tees.registerTee(elsewhere.as_args(), endpoint, evidence, sender=operator)


def test_register__expired__reverts(chain, tees, attest, operator):
    expiry = now(chain) - 1
    statement, endpoint, evidence = attest(operator, new_key("a"), expiry=expiry)
    with reverts(tees.TEERegistryAttestationExpired, expiry=expiry):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def test_register__nonce_reused__reverts(tees, attest, operator):
    first = attest(operator, new_key("a"))
    tees.registerTee(first[0].as_args(), first[1], first[2], sender=operator)
    statement, endpoint, evidence = attest(operator, new_key("b"), nonce=0)
    with reverts(tees.InvalidAccountNonce, account=operator.address, currentNonce=1):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def test_register__endpoint_differs_from_attested__reverts(tees, attest, operator):
    statement, _, evidence = attest(operator, new_key("a"))
    with reverts(tees.TEERegistryEndpointMismatch):
        tees.registerTee(statement.as_args(), "https://evil.example", evidence, sender=operator)


@pytest.mark.parametrize("signers", ["one", "outsider", "duplicate", "garbage"])
def test_register__evidence_short_of_quorum__reverts(tees, attest, operator, attestor_keys, verifier, signers):
    key = new_key("a")
    statement, endpoint, evidence = attest(operator, key)
    if signers == "one":
        evidence = attest(operator, key, signers=attestor_keys[:1])[2]
    elif signers == "outsider":
        evidence = attest(operator, key, signers=[attestor_keys[0], Account.from_key(keccak(text="outsider"))])[2]
    elif signers == "duplicate":
        evidence = attest(operator, key, signers=[attestor_keys[0], attestor_keys[0]])[2]
    else:
        evidence = b"\x01\x02"
    with reverts(tees.TEERegistryAttestationRejected):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def test_register__operator_not_staked_for_tee__reverts(tees, attest, alice):
    statement, endpoint, evidence = attest(alice, new_key("a"))
    with reverts(tees.TEERegistryOperatorNotStaked, operator=alice.address):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=alice)


def test_register__unapproved_measurement__reverts(tees, attest, operator):
    statement, endpoint, evidence = attest(operator, new_key("a"), measurement=PCR_V2)
    with reverts(tees.TEERegistryMeasurementNotApproved, measurementHash=PCR_V2):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def test_register__measurement_of_other_type__reverts(tees, attest, operator, gov):
    tees.addTeeType(2, "Intel TDX", sender=gov)
    statement, endpoint, evidence = attest(operator, new_key("a"), tee_type=2)
    with reverts(tees.TEERegistryMeasurementTypeMismatch, measurementHash=PCR_V1, teeType=2):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def test_register__key_already_registered__reverts(tees, attest, register_tee, operator):
    key = register_tee(operator, "a")
    statement, endpoint, evidence = attest(operator, key)
    with reverts(tees.TEERegistryTeeExists, teeKey=key.address):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


# ------------------------------------------------------------------ heartbeats and history


def test_heartbeat__signed_by_tee_relayed_by_anyone__extends_activity(chain, tees, register_tee, operator, bob):
    key = register_tee(operator)
    advance(chain, MAX_HEARTBEAT_AGE + 10)
    assert not tees.isActive(key.address, now(chain))
    stamp = now(chain)
    tx = tees.heartbeat(key.address, stamp, sign_heartbeat(tees, key, stamp), sender=bob)
    assert tx.events == [tees.Heartbeat(key.address, stamp)]
    assert tees.lastHeartbeat(key.address) == stamp
    assert tees.isActive(key.address, now(chain))


def test_heartbeat__signed_by_another_key__reverts(chain, tees, register_tee, operator):
    key = register_tee(operator)
    advance(chain, 10)
    stamp = now(chain)
    with reverts(tees.TEERegistryInvalidHeartbeatSignature, teeKey=key.address):
        tees.heartbeat(key.address, stamp, sign_heartbeat(tees, new_key("impostor"), stamp), sender=operator)


def test_heartbeat__not_newer__reverts(chain, tees, register_tee, operator):
    key = register_tee(operator)
    registered_at = tees.lastHeartbeat(key.address)
    with reverts(tees.TEERegistryHeartbeatNotNewer):
        tees.heartbeat(key.address, registered_at, sign_heartbeat(tees, key, registered_at), sender=operator)


@pytest.mark.parametrize("offset", [3_600 * 2, -60])
def test_heartbeat__outside_window__reverts(chain, tees, register_tee, operator, offset):
    key = register_tee(operator)
    advance(chain, 60)
    stamp = chain.pending_timestamp - offset if offset > 0 else chain.pending_timestamp + 600
    with reverts(tees.TEERegistryHeartbeatOutOfWindow, timestamp=stamp):
        tees.heartbeat(key.address, stamp, sign_heartbeat(tees, key, stamp), sender=operator)


def test_is_active__past_timestamps__answer_as_of_then(chain, tees, register_tee, operator):
    key = register_tee(operator)
    registered = now(chain)
    advance(chain, MAX_HEARTBEAT_AGE + 100)
    stamp = now(chain)  # signed at the latest block's time ...
    chain.pending_timestamp = stamp + 5  # ... and recorded five seconds later
    recorded = tees.heartbeat(key.address, stamp, sign_heartbeat(tees, key, stamp), sender=operator).timestamp
    assert recorded == stamp + 5 and tees.lastHeartbeat(key.address) == stamp
    assert tees.isActive(key.address, registered)
    assert tees.isActive(key.address, registered + MAX_HEARTBEAT_AGE)
    assert not tees.isActive(key.address, registered + MAX_HEARTBEAT_AGE + 1)
    assert tees.isActive(key.address, recorded) is True  # the heartbeat counts from the block that recorded it
    assert not tees.isActive(key.address, recorded - 1)
    assert not tees.isActive(key.address, stamp)  # not from when it was signed
    assert not tees.isActive(key.address, registered - 1)
    assert not tees.isActive(key.address, now(chain) + 1)
    chain.pending_timestamp = stamp + MAX_HEARTBEAT_AGE + 10
    chain.mine()
    assert tees.isActive(key.address, stamp + MAX_HEARTBEAT_AGE)  # its age runs from when it was signed
    assert not tees.isActive(key.address, stamp + MAX_HEARTBEAT_AGE + 1)


@pytest.mark.anvil_only  # builds a block by hand (automine off)
def test_heartbeat__two_in_one_block__the_newer_one_counts(chain, tees, register_tee, operator, bob):
    key = register_tee(operator)
    advance(chain, MAX_HEARTBEAT_AGE // 2)
    at = chain.pending_timestamp
    first, second = at - 20, at - 10
    web3 = chain.provider.web3
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = [web3.eth.send_transaction({
            "from": sender.address, "to": tees.address, "gas": 200_000,
            "data": tees.heartbeat.encode_input(key.address, stamp, sign_heartbeat(tees, key, stamp))})
            for stamp, sender in ((first, operator), (second, bob))]
        chain.provider.make_request("evm_mine", [at])
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    mined = [web3.eth.get_transaction_receipt(h) for h in hashes]
    assert [m.status for m in mined] == [1, 1] and mined[0].blockNumber == mined[1].blockNumber
    assert now(chain) == at and tees.lastHeartbeat(key.address) == second
    assert tees.isActive(key.address, at)
    chain.pending_timestamp = second + MAX_HEARTBEAT_AGE + 1
    chain.mine()
    assert tees.isActive(key.address, second + MAX_HEARTBEAT_AGE)
    assert not tees.isActive(key.address, second + MAX_HEARTBEAT_AGE + 1)


def test_is_active__unknown_key__false(chain, tees):
    assert not tees.isActive(new_key("nobody").address, now(chain))


# ------------------------------------------------------------------ revocation


def test_revoke_measurement__deactivates_from_then_keeps_past(chain, tees, register_tee, operator, operator2, gov):
    keys = [register_tee(operator, "a"), register_tee(operator2, "b")]
    before = now(chain)
    advance(chain, 5)
    tx = tees.revokeMeasurement(PCR_V1, sender=gov)
    assert tx.events == [tees.MeasurementRevoked(PCR_V1)]
    for key in keys:
        assert tees.isActive(key.address, before)
        assert not tees.isActive(key.address, now(chain))
    assert tees.measurement(PCR_V1).revokedAt == now(chain)


def test_revoke_measurement__twice__reverts(tees, gov):
    tees.revokeMeasurement(PCR_V1, sender=gov)
    with reverts(tees.TEERegistryMeasurementRevoked, measurementHash=PCR_V1):
        tees.revokeMeasurement(PCR_V1, sender=gov)


def test_revoke_measurement__unknown__reverts(tees, gov):
    with reverts(tees.TEERegistryMeasurementNotApproved, measurementHash=PCR_V2):
        tees.revokeMeasurement(PCR_V2, sender=gov)


def test_register__revoked_measurement__reverts(tees, attest, operator, gov):
    tees.revokeMeasurement(PCR_V1, sender=gov)
    statement, endpoint, evidence = attest(operator, new_key("a"))
    with reverts(tees.TEERegistryMeasurementRevoked, measurementHash=PCR_V1):
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


# ------------------------------------------------------------------ enable / disable


def test_set_enabled__operator__toggles_with_history(chain, tees, register_tee, operator):
    key = register_tee(operator)
    enabled_at = now(chain)
    advance(chain, 5)
    tx = tees.setEnabled(key.address, False, sender=operator)
    assert tx.events == [tees.TeeEnabledChanged(key.address, False, False)]
    assert not tees.isActive(key.address, now(chain))
    assert tees.isActive(key.address, enabled_at)
    advance(chain, 5)
    tees.setEnabled(key.address, True, sender=operator)
    assert tees.isActive(key.address, now(chain))


def test_set_enabled__not_its_operator__reverts(tees, register_tee, operator, operator2):
    key = register_tee(operator)
    with reverts(tees.TEERegistryNotTeeOperator, teeKey=key.address, account=operator2.address):
        tees.setEnabled(key.address, False, sender=operator2)


def test_admin_disable__operator_cannot_reenable__admin_can(chain, tees, register_tee, operator, gov):
    key = register_tee(operator)
    tees.adminDisable(key.address, sender=gov)
    with reverts(tees.TEERegistryDisabledByAdmin, teeKey=key.address):
        tees.setEnabled(key.address, True, sender=operator)
    tees.adminEnable(key.address, sender=gov)
    assert tees.isActive(key.address, now(chain))


# ------------------------------------------------------------------ re-attestation and rotation


def test_reattest__same_key__updates_endpoint(chain, tees, attest, register_tee, operator):
    key = register_tee(operator)
    statement, endpoint, evidence = attest(operator, key, endpoint="https://moved.example")
    tx = tees.reattest(key.address, statement.as_args(), endpoint, evidence, sender=operator)
    assert tees.tee(key.address).endpoint == "https://moved.example"
    assert tees.TeeUpdated(key.address, statement.tlsCertHash, operator, endpoint) in tx.events


def test_reattest__same_key_new_certificate__stored(tees, attest, register_tee, operator):
    key = register_tee(operator)
    renewed = b"\x5c" * 32
    statement, endpoint, evidence = attest(operator, key, tls_cert_hash=renewed)
    tees.reattest(key.address, statement.as_args(), endpoint, evidence, sender=operator)
    assert tees.tee(key.address).tlsCertHash == renewed


def test_reattest__same_key_new_measurement__reverts(tees, attest, register_tee, operator, gov):
    key = register_tee(operator)
    tees.approveMeasurement(PCR_V2, NITRO, 2, sender=gov)
    statement, endpoint, evidence = attest(operator, key, measurement=PCR_V2)
    with reverts(tees.TEERegistryMeasurementChangeNeedsNewKey, teeKey=key.address):
        tees.reattest(key.address, statement.as_args(), endpoint, evidence, sender=operator)


def test_reattest__new_key__rotates(chain, tees, attest, register_tee, operator, gov):
    old = register_tee(operator, "old")
    tees.approveMeasurement(PCR_V2, NITRO, 2, sender=gov)
    before = now(chain)
    advance(chain, 5)
    new = new_key("new")
    statement, endpoint, evidence = attest(operator, new, measurement=PCR_V2)
    tx = tees.reattest(old.address, statement.as_args(), endpoint, evidence, sender=operator)
    assert tees.TeeKeyRotated(old.address, new.address, operator) in tx.events
    assert tees.isActive(new.address, now(chain)) and not tees.isActive(old.address, now(chain))
    assert tees.isActive(old.address, before)
    assert list(tees.teesOfOperator(operator, 0, 10)) == [new.address]
    with reverts(tees.TEERegistryRetired, teeKey=old.address):
        tees.heartbeat(old.address, now(chain), sign_heartbeat(tees, old, now(chain)), sender=operator)


def test_reattest__someone_elses_tee__reverts(tees, attest, register_tee, operator, operator2):
    key = register_tee(operator)
    statement, endpoint, evidence = attest(operator2, key)
    with reverts(tees.TEERegistryNotTeeOperator, teeKey=key.address, account=operator2.address):
        tees.reattest(key.address, statement.as_args(), endpoint, evidence, sender=operator2)


# ------------------------------------------------------------------ stake


def test_stake__operator_jailed__tees_inactive(chain, tees, tee_staking, register_tee, operator, gov):
    key = register_tee(operator)
    tee_staking.slash(operator, 100, b"\x07" * 32, ZERO_ADDRESS, sender=gov)
    assert not tees.isActive(key.address, now(chain))


def test_stake__operator_jailed_later__past_activity_unchanged(chain, tees, tee_staking, register_tee, operator, gov):
    key = register_tee(operator)
    active_at = now(chain)
    chain.mine(timestamp=active_at + 10)
    tee_staking.slash(operator, 100, b"\x08" * 32, ZERO_ADDRESS, sender=gov)
    assert tees.isActive(key.address, active_at)
    assert not tees.isActive(key.address, now(chain))


def test_stake__self_bond_below_minimum__tees_inactive(chain, tees, tee_staking, register_tee, operator):
    key = register_tee(operator)
    tee_staking.unbond(operator, 1, sender=operator)
    assert not tees.isActive(key.address, now(chain))


# ------------------------------------------------------------------ queries and governance


def test_active_tees_of_type__paginated__filters_inactive(chain, tees, register_tee, operator, operator2):
    first, second = register_tee(operator, "a"), register_tee(operator2, "b")
    tees.setEnabled(first.address, False, sender=operator)
    assert tees.teeCountOfType(NITRO) == 2
    assert list(tees.teesOfType(NITRO, 1, 1)) == [second.address]
    assert list(tees.activeTeesOfType(NITRO, 0, 10)) == [second.address]
    assert list(tees.activeTeesOfType(NITRO, 5, 10)) == []
    assert tees.teeCountOfOperator(operator) == 1
    assert list(tees.activeTeesOfOperator(operator, 0, 10)) == []
    assert list(tees.activeTeesOfOperator(operator2, 0, 10)) == [second.address]


def test_add_tee_type__existing__reverts(tees, gov):
    with reverts(tees.TEERegistryTeeTypeExists, teeType=NITRO):
        tees.addTeeType(NITRO, "again", sender=gov)


def test_approve_measurement__new__stored_and_emitted(tees, gov):
    tx = tees.approveMeasurement(PCR_V2, NITRO, 2, sender=gov)
    assert tx.events.filter(tees.MeasurementApproved) == [tees.MeasurementApproved(PCR_V2, NITRO, 2)]


def test_approve_measurement__bad_input__reverts(tees, gov):
    with reverts(tees.TEERegistryZeroMeasurement):
        tees.approveMeasurement(b"\x00" * 32, NITRO, 1, sender=gov)
    with reverts(tees.TEERegistryUnknownTeeType, teeType=9):
        tees.approveMeasurement(PCR_V2, 9, 1, sender=gov)
    with reverts(tees.TEERegistryMeasurementExists, measurementHash=PCR_V1):
        tees.approveMeasurement(PCR_V1, NITRO, 1, sender=gov)


def test_set_max_heartbeat_age__bounds_and_history(chain, tees, register_tee, operator, gov):
    key = register_tee(operator)
    registered = now(chain)
    advance(chain, 10)
    tees.setMaxHeartbeatAge(60, sender=gov)
    assert tees.maxHeartbeatAge() == 60
    assert tees.isActive(key.address, registered + 9)  # judged with the limit of that time (1 hour)
    with reverts(tees.TEERegistryHeartbeatAgeOutOfBounds, maxAge=59):
        tees.setMaxHeartbeatAge(59, sender=gov)
    with reverts(tees.TEERegistryHeartbeatAgeOutOfBounds, maxAge=86_401):
        tees.setMaxHeartbeatAge(86_401, sender=gov)


def test_set_verifier__zero__reverts(tees, gov):
    with reverts(tees.TEERegistryZeroAddress):
        tees.setVerifier(ZERO_ADDRESS, sender=gov)
