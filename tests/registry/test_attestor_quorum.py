"""Unit tests of AttestorQuorumVerifier: attestor set, threshold, and what counts as a quorum."""

import dataclasses

from eth_abi import decode, encode
from eth_account import Account
from eth_utils import keccak

from opgkit.attestation import quorum_evidence
from opgkit.testing import reverts

OUTSIDER = Account.from_key(keccak(text="outsider"))
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def test_deploy__attestors_and_threshold__stored(verifier, attestor_keys):
    assert sorted(verifier.attestors()) == sorted(key.address for key in attestor_keys)
    assert verifier.threshold() == 2
    assert all(verifier.isAttestor(key.address) for key in attestor_keys)


def test_deploy__threshold_above_attestors__reverts(project, deployer, gov, attestor_keys):
    with reverts(project.AttestorQuorumVerifier.AttestorQuorumInvalidThreshold):
        deployer.deploy(project.AttestorQuorumVerifier, gov, [attestor_keys[0].address], 2)


def test_verify__two_of_three__true_and_statement_bound(tees, attest, verifier, operator, attestor_keys):
    statement, _, evidence = attest(operator, OUTSIDER, signers=attestor_keys[1:])
    assert verifier.verifyAttestation(statement.as_args(), evidence)
    changed = dataclasses.replace(statement, nonce=statement.nonce + 1)
    assert not verifier.verifyAttestation(changed.as_args(), evidence)


def test_verify__signers_not_ascending__false(tees, attest, verifier, operator, attestor_keys):
    statement, _, _ = attest(operator, OUTSIDER)
    signers, signatures = decode(["address[]", "bytes[]"], quorum_evidence(verifier, statement, attestor_keys[:2]))
    reversed_evidence = encode(["address[]", "bytes[]"], [list(reversed(signers)), list(reversed(signatures))])
    assert not verifier.verifyAttestation(statement.as_args(), reversed_evidence)


def test_add_and_remove_attestor__admin__updates_set_and_emits(verifier, gov):
    assert verifier.addAttestor(OUTSIDER.address, sender=gov).events == [verifier.AttestorAdded(OUTSIDER.address)]
    assert verifier.removeAttestor(OUTSIDER.address, sender=gov).events == [verifier.AttestorRemoved(OUTSIDER.address)]
    assert not verifier.isAttestor(OUTSIDER.address)


def test_add_attestor__duplicate_or_zero__reverts(verifier, gov, attestor_keys):
    with reverts(verifier.AttestorQuorumAlreadyAttestor, attestor=attestor_keys[0].address):
        verifier.addAttestor(attestor_keys[0].address, sender=gov)
    with reverts(verifier.AttestorQuorumZeroAddress):
        verifier.addAttestor(ZERO_ADDRESS, sender=gov)


def test_remove_attestor__would_break_threshold__reverts(verifier, gov, attestor_keys):
    verifier.removeAttestor(attestor_keys[0].address, sender=gov)
    with reverts(verifier.AttestorQuorumInvalidThreshold, threshold=2, attestors=1):
        verifier.removeAttestor(attestor_keys[1].address, sender=gov)


def test_remove_attestor__unknown__reverts(verifier, gov):
    with reverts(verifier.AttestorQuorumNotAttestor, attestor=OUTSIDER.address):
        verifier.removeAttestor(OUTSIDER.address, sender=gov)


def test_set_threshold__bounds__enforced_and_emitted(verifier, gov):
    assert verifier.setThreshold(3, sender=gov).events == [verifier.ThresholdSet(2, 3)]
    with reverts(verifier.AttestorQuorumInvalidThreshold, threshold=0, attestors=3):
        verifier.setThreshold(0, sender=gov)
    with reverts(verifier.AttestorQuorumInvalidThreshold, threshold=4, attestors=3):
        verifier.setThreshold(4, sender=gov)
