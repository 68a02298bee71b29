"""Registry fixtures, module-scoped so each test module starts from fresh deployments."""

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit.attestation import build_statement, quorum_evidence
from registry_helpers import HOUR, MAX_HEARTBEAT_AGE, NITRO, OPG, PCR_V1, TEE_MINIMUM_STAKE, TLS_CERT_HASH, spec

BIT_TEE_ROLE = 2


@pytest.fixture(scope="module")
def models(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def register_model(models):
    """Factory: register a model from ``spec(label, **overrides)``; returns its id."""

    def register(owner, label="base", **overrides):
        tx = models.register(spec(label, **overrides), sender=owner)
        return tx.events.filter(models.ModelRegistered)[0].modelId

    return register


@pytest.fixture(scope="session")
def attestor_keys():
    """Three attestation services' keys (fixed, so failures reproduce)."""
    return [Account.from_key(keccak(text=f"attestation service {i}")) for i in range(3)]


@pytest.fixture(scope="module")
def verifier(project, deployer, gov, attestor_keys):
    return deployer.deploy(project.AttestorQuorumVerifier, gov, [key.address for key in attestor_keys], 2)


@pytest.fixture(scope="module")
def tee_staking(deploy_staking, token, gov, treasury, operator, operator2, alice):
    """NodeStaking where `operator` and `operator2` are TEE nodes; `alice` is funded but not an operator."""
    staking = deploy_staking(token, gov, treasury)
    staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
    for account in (operator, operator2, alice):
        token.transfer(account, 1_000_000 * OPG, sender=treasury)
        token.approve(staking, 2**256 - 1, sender=account)
    for account in (operator, operator2):
        staking.registerOperator(BIT_TEE_ROLE, TEE_MINIMUM_STAKE, 0, sender=account)
    return staking


@pytest.fixture(scope="module")
def tees(project, deployer, gov, tee_staking, verifier):
    registry = deployer.deploy(project.TEERegistry, tee_staking, verifier, gov, MAX_HEARTBEAT_AGE)
    registry.addTeeType(NITRO, "AWS Nitro", sender=gov)
    registry.approveMeasurement(PCR_V1, NITRO, 1, sender=gov)
    return registry


@pytest.fixture(scope="module")
def attest(chain, tees, verifier, attestor_keys):
    """Factory: a (statement, endpoint, evidence) triple for ``operator`` and ``tee_key``, signed by two attestors."""

    def attest(operator, tee_key, endpoint="https://tee.example:8443", signers=None, **overrides):
        fields = dict(
            operator=operator.address,
            tee_key=tee_key.address,
            tee_type=NITRO,
            measurement=PCR_V1,
            tls_cert_hash=TLS_CERT_HASH,
            payment_address=operator.address,
            endpoint=endpoint,
            expiry=chain.pending_timestamp + HOUR,
        ) | overrides
        statement = build_statement(tees, **fields)
        evidence = quorum_evidence(verifier, statement, attestor_keys[:2] if signers is None else signers)
        return statement, endpoint, evidence

    return attest


@pytest.fixture(scope="module")
def register_tee(tees, attest):
    """Factory: register a TEE for ``operator``; returns its key (a LocalAccount)."""

    def register(operator, label="tee-1", **overrides):
        tee_key = Account.from_key(keccak(text=f"tee key {label}"))
        statement, endpoint, evidence = attest(operator, tee_key, **overrides)
        tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)
        return tee_key

    return register
