"""Property tests of TEERegistry: bound registrations cannot be replayed; revoked measurements stay dead; a
heartbeat, however late it is relayed, never changes the past."""

import dataclasses

import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, strategies as st

from opgkit.attestation import sign_heartbeat
from opgkit.testing import isolated_example, reverts
from registry_helpers import HOUR, MAX_HEARTBEAT_AGE, PCR_V1

EXPECTED_ERROR = {
    "other operator": "TEERegistryNotStatementOperator",
    "other chain": "TEERegistryWrongChain",
    "other registry": "TEERegistryWrongRegistry",
    "expired": "TEERegistryAttestationExpired",
    "reused nonce": "InvalidAccountNonce",
    "altered field": "TEERegistryAttestationRejected",
}


@pytest.mark.property
@given(replay=st.sampled_from(sorted(EXPECTED_ERROR)), seed=st.integers(0, 2**32), lateness=st.integers(1, 30 * 86_400))
def test_registration__replayed_or_altered__always_fails(chain, tees, attest, operator, operator2, replay, seed, lateness):
    with isolated_example():
        key = Account.from_key(keccak(text=f"replay {seed}"))
        statement, endpoint, evidence = attest(operator, key)
        sender = operator
        if replay == "other operator":
            sender = operator2
        elif replay == "other chain":
            statement, endpoint, evidence = attest(operator, key, chain_id=chain.chain_id + 1 + seed)
        elif replay == "other registry":
            statement = dataclasses.replace(statement, registry=Account.from_key(keccak(text=str(seed))).address)
        elif replay == "expired":
            chain.pending_timestamp = statement.expiry + lateness
        elif replay == "reused nonce":
            tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)
            statement = dataclasses.replace(statement, teeKey=Account.from_key(keccak(text=f"second {seed}")).address)
        else:  # the attested statement, with one field changed after the attestors signed
            statement = dataclasses.replace(statement, tlsCertHash=keccak(text=f"other cert {seed}"))
        with reverts(getattr(tees, EXPECTED_ERROR[replay])):
            tees.registerTee(statement.as_args(), endpoint, evidence, sender=sender)


@pytest.mark.property
@given(
    tee_count=st.integers(1, 4),
    revoke_after=st.integers(1, HOUR // 2),
    probes=st.lists(st.integers(0, 10 * HOUR), min_size=1, max_size=5),
)
def test_revoked_measurement__never_reports_active_afterwards(chain, tees, register_tee, operator, gov, tee_count, revoke_after, probes):
    with isolated_example():
        keys = [register_tee(operator, f"revoke-{i}") for i in range(tee_count)]
        chain.pending_timestamp = chain.blocks.head.timestamp + revoke_after
        revoked_at = tees.revokeMeasurement(PCR_V1, sender=gov).timestamp
        for probe in probes:
            chain.pending_timestamp = chain.blocks.head.timestamp + probe
            chain.mine()
            for key in keys:
                assert not tees.isActive(key.address, chain.blocks.head.timestamp)
                assert not tees.isActive(key.address, revoked_at)


@pytest.mark.property
@given(
    gap=st.one_of(st.integers(2, MAX_HEARTBEAT_AGE), st.integers(MAX_HEARTBEAT_AGE + 1, 3 * HOUR)),
    lateness=st.integers(1, MAX_HEARTBEAT_AGE),
    probes=st.lists(st.integers(0, 10**9), max_size=5),
)
def test_heartbeat__relayed_late__never_changes_the_past(chain, tees, register_tee, operator, bob, gap, lateness,
                                                         probes):
    """A heartbeat recorded `gap` seconds after registration, signed `lateness` seconds before that (within the
    window, after the registration), leaves `isActive` unchanged at every earlier time (whether the TEE had gone
    quiet by then or not), and makes the TEE active from the block that records it."""
    with isolated_example():
        key = register_tee(operator, "late relay")
        registered = chain.blocks.head.timestamp
        recorded = registered + gap
        signed = recorded - min(lateness, gap - 1)
        chain.pending_timestamp = recorded - 1
        chain.mine()
        edges = {registered, registered + MAX_HEARTBEAT_AGE, registered + MAX_HEARTBEAT_AGE + 1, signed, recorded - 1}
        times = sorted({t for t in edges if t < recorded} | {registered + p % gap for p in probes})
        before = [tees.isActive(key.address, t) for t in times]
        assert before == [t - registered <= MAX_HEARTBEAT_AGE for t in times]  # the registration's heartbeat only

        chain.pending_timestamp = recorded
        tees.heartbeat(key.address, signed, sign_heartbeat(tees, key, signed), sender=bob)
        assert [tees.isActive(key.address, t) for t in times] == before
        assert tees.isActive(key.address, recorded)
