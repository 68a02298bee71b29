"""Settlement fixtures: a whole protocol (token, staking, registries, settlement) per test module.

Roles: `operator` is an inference + TEE node and runs the TEE `tee_key`; `operator2` is a settlement
relayer; `alice` pays; `carol` owns the models; `reporter` challenges; `gov` administers everything.
"""

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit.attestation import build_statement, quorum_evidence, sign_heartbeat
from opgkit.receipts import sign_payment, sign_receipt
from opgkit.testing import advance
from opgkit.zkml.onchain import deploy_model
from settlement_helpers import post_batch, signed_batch
from settlement_helpers import (
    CHALLENGE_WINDOW, INFERENCE_BIT, MAX_RECEIPT_AGE, NITRO, OPG, PCR, PROOF_WINDOW, RELAYER_BIT, TEE_BIT,
    PRICE, TLS_CERT_HASH, ZK_BIASES, ZK_INPUT_COUNT, ZK_WEIGHTS, Mode, model_spec, receipt,
)

FUNDING = 1_000_000 * OPG
NODE_BOND = 50_000 * OPG
MAX_UINT = 2**256 - 1


@pytest.fixture(scope="module")
def staking(deploy_staking, token, gov, treasury, operator, operator2, alice, bob):
    staking = deploy_staking(token, gov, treasury)
    for account in (operator, operator2, alice, bob):
        token.transfer(account, FUNDING, sender=treasury)
        token.approve(staking, MAX_UINT, sender=account)
    staking.registerOperator(INFERENCE_BIT | TEE_BIT, NODE_BOND, 1_000, sender=operator)
    staking.registerOperator(RELAYER_BIT, NODE_BOND, 0, sender=operator2)
    return staking


@pytest.fixture(scope="module")
def models(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def zk_verifier(project, deployer):
    return deployer.deploy(project.ReexecutionVerifier, ZK_WEIGHTS, ZK_BIASES, ZK_INPUT_COUNT)


@pytest.fixture(scope="module")
def register_model(models, carol):
    def register(label, allowed, owner=None, **kwargs):
        tx = models.register(model_spec(label, allowed, **kwargs), sender=owner or carol)
        return tx.events.filter(models.ModelRegistered)[0].modelId

    return register


@pytest.fixture(scope="module")
def open_model(register_model):
    """Accepts VANILLA and TEE."""
    return register_model("open", [Mode.VANILLA, Mode.TEE])


@pytest.fixture(scope="module")
def tee_model(register_model):
    """Accepts TEE only (minimum mode TEE)."""
    return register_model("tee-only", [Mode.TEE], minimum=Mode.TEE)


@pytest.fixture(scope="module")
def zk_model(register_model, zk_verifier):
    """Accepts ZKML only, verified by the re-execution verifier."""
    return register_model("zk", [Mode.ZKML], minimum=Mode.ZKML, verifier=zk_verifier.address)


@pytest.fixture(scope="module")
def fork_model(register_model, open_model, bob):
    """Bob's fork of `open_model`, owing carol (the parent's owner) a 10% royalty."""
    return register_model("fork", [Mode.VANILLA, Mode.TEE], owner=bob, parent=open_model, royalty_bps=1_000)


@pytest.fixture(scope="session")
def attestor_keys():
    return [Account.from_key(keccak(text=f"settlement attestor {i}")) for i in range(2)]


@pytest.fixture(scope="session")
def tee_key():
    return Account.from_key(keccak(text="settlement tee key"))


@pytest.fixture(scope="module")
def tees(project, deployer, gov, staking, attestor_keys, operator, tee_key, chain):
    verifier = deployer.deploy(project.AttestorQuorumVerifier, gov, [key.address for key in attestor_keys], 2)
    registry = deployer.deploy(project.TEERegistry, staking, verifier, gov, 3_600)
    registry.addTeeType(NITRO, "AWS Nitro", sender=gov)
    registry.approveMeasurement(PCR, NITRO, 1, sender=gov)
    endpoint = "https://tee.example:8443"
    statement = build_statement(
        registry, operator=operator.address, tee_key=tee_key.address, tee_type=NITRO, measurement=PCR,
        tls_cert_hash=TLS_CERT_HASH, payment_address=operator.address, endpoint=endpoint,
        expiry=chain.pending_timestamp + 3_600,
    )
    registry.registerTee(statement.as_args(), endpoint, quorum_evidence(verifier, statement, attestor_keys),
                         sender=operator)
    return registry


@pytest.fixture(scope="module")
def deploy_settlement(project, deployer, token, staking, models, tees, treasury, gov):
    """Deploy InferenceSettlement and its BatchSettlement, wired and allowed to slash; returns the pair."""

    def deploy(**overrides):
        params = dict(challenge_window=CHALLENGE_WINDOW, proof_window=PROOF_WINDOW, max_age=MAX_RECEIPT_AGE) | overrides
        settlement = deployer.deploy(
            project.InferenceSettlement, token, staking, models, tees, treasury, gov,
            params["proof_window"], params["max_age"],
        )
        batches = deployer.deploy(
            project.BatchSettlement, settlement, staking, models, tees, gov,
            params["challenge_window"], params["max_age"],
        )
        settlement.setBatchSettlement(batches, sender=gov)
        for slasher in (settlement, batches):
            staking.grantRole(staking.SLASHER_ROLE(), slasher, sender=gov)
        return settlement, batches

    return deploy


@pytest.fixture(scope="module")
def settlement_pair(deploy_settlement, token, alice, bob):
    settlement, batches = deploy_settlement()
    for payer in (alice, bob):
        token.approve(settlement, MAX_UINT, sender=payer)
    return settlement, batches


@pytest.fixture(scope="module")
def settlement(settlement_pair):
    """InferenceSettlement: records, individual and asynchronous settlement, payments, queries."""
    return settlement_pair[0]


@pytest.fixture(scope="module")
def batches(settlement_pair):
    """BatchSettlement wired to `settlement`."""
    return settlement_pair[1]


@pytest.fixture
def now(chain):
    """Timestamp of the latest block: a receipt made "now" is never from the future for the next one."""
    return lambda: chain.blocks.head.timestamp


@pytest.fixture
def heartbeat(tees, tee_key, chain, deployer):
    """Relay a heartbeat of `tee_key` signed at the time of the block that records it (a heartbeat counts from the
    block that records it), so the TEE is active from then on; returns that time, and the next transaction lands
    in a later second (a pending result needs a receipt from an earlier one)."""

    def beat():
        timestamp = chain.blocks.head.timestamp + 1  # a heartbeat must be newer than the last one
        chain.pending_timestamp = timestamp
        tees.heartbeat(tee_key.address, timestamp, sign_heartbeat(tees, tee_key, timestamp), sender=deployer)
        assert chain.blocks.head.timestamp == timestamp
        advance(chain, 1)
        return timestamp

    return beat


@pytest.fixture
def tee_receipt(open_model, tee_key, alice, heartbeat):
    """A TEE receipt by `tee_key` (run by `operator`) that `alice` pays `price` for."""

    def make(label, price=PRICE):
        return receipt(label, open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address,
                       price=price)

    return make


def private_key(signer):
    """The key of a LocalAccount or an ape test account."""
    return signer.key if hasattr(signer, "key") else signer.private_key


@pytest.fixture
def sign(settlement):
    """Sign a receipt with a LocalAccount or an ape test account."""
    return lambda receipt, signer: sign_receipt(settlement, receipt, private_key(signer))


@pytest.fixture
def sign_auth(settlement):
    return lambda authorization, payer: sign_payment(settlement, authorization, private_key(payer))


# ---------------------------------------------------------------- batches and jailing


@pytest.fixture
def make_batch(sign):
    """A ReceiptBatch of (receipt, signer) or (receipt, None, signature) items."""
    return lambda items: signed_batch(sign, items)


@pytest.fixture
def post(batches, operator2, chain):
    """Post a batch (by `operator2` unless told) a second after the latest block: a leaf must be strictly older
    than its batch. Modules about asynchronous settlement define their own `post`."""

    def post(batch, relayer=None):
        advance(chain, 1)
        return post_batch(batches, batch, relayer or operator2)

    return post


@pytest.fixture
def jail(staking, gov):
    """Slash (and so jail) an operator for an unrelated offence."""

    def jail(operator, label="unrelated offence"):
        staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
        staking.slash(operator, 100, keccak(text=label), gov, sender=gov)

    return jail


# ---------------------------------------------------------------- EZKL models on chain (see tests/conftest.py)

@pytest.fixture(scope="module")
def liquidation_model(liquidation_artifacts, project, models, carol):
    """The liquidation-risk model on chain: EZKL verifier + adapter, registered ZKML-only by carol."""
    return deploy_model(liquidation_artifacts, project, models, carol)


@pytest.fixture(scope="module")
def credit_model(credit_artifacts, project, models, carol):
    return deploy_model(credit_artifacts, project, models, carol)


# ---------------------------------------------------------------- requests with callbacks

REQUEST_CALLBACK_GAS = 300_000
DELAYED_FINALITY = 1  # IInferenceRequests.Finality.Delayed


@pytest.fixture(scope="module")
def requests(project, deployer, settlement, models, token):
    """InferenceRequests on `settlement`."""
    return deployer.deploy(project.InferenceRequests, settlement, models, token)


@pytest.fixture(scope="module")
def feed(project, deployer, requests, token, open_model, alice):
    """The example consumer, asking `open_model` for answers at VANILLA or stronger, batches accepted; `alice`
    asks."""
    feed = deployer.deploy(project.ModelAnswerFeed, requests, token, open_model, Mode.VANILLA, DELAYED_FINALITY,
                           REQUEST_CALLBACK_GAS)
    token.approve(feed, MAX_UINT, sender=alice)
    return feed
