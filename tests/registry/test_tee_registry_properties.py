"""Property tests of TEERegistry: bound registrations cannot be replayed; revoked measurements stay dead."""

import dataclasses

import ape
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, strategies as st

from opgkit.testing import isolated_example
from registry_helpers import HOUR, PCR_V1

EXPECTED_ERROR = {
    "other operator": "TEERegistryNotStatementOperator",
    "other chain": "TEERegistryWrongChain",
    "other registry": "TEERegistryWrongRegistry",
    "expired": "TEERegistryAttestationExpired",
    "reused nonce": "InvalidAccountNonce",
    "altered field": "TEERegistryAttestationRejected",
}


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
        with ape.reverts(getattr(tees, EXPECTED_ERROR[replay])):
            tees.registerTee(statement.as_args(), endpoint, evidence, sender=sender)


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
