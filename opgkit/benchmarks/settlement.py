"""Settlement gas: individual settlement per mode, batches amortized per receipt, challenges, async, payments."""

from __future__ import annotations

import hashlib

from ape import chain, project
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak

from opgkit.attestation import build_statement, quorum_evidence, sign_heartbeat
from opgkit.benchmarks import GasRow, gas_of
from opgkit.deploy import DAY, OPG, ProtocolParameters
from opgkit.manifest import OutputManifest
from opgkit.receipts import (
    Mode, PaymentAuthorization, Receipt, ReceiptBatch, SignedReceipt, instances_hash, sign_payment, sign_receipt,
    zkml_evidence,
)

NITRO = 1
HOUR = 3_600
INFERENCE_TEE_MASK, RELAYER_MASK = 3, 4
BATCH_SIZES = (16, 256, 1024)
HEARTBEATS = 256
HISTORY_RATIO_LIMIT = 1.10
INDIVIDUAL_TEE_TARGET = 60_000
INDIVIDUAL_TEE_SOURCE = ("target ≤ 60,000 incl. replay guard (generic floor: 2 new slots + event + ecrecover "
                         "= 74,929)")
PER_RECEIPT_TARGET = 100
CHALLENGE_TARGET = 150_000
NO_ANCHOR = "no external anchor; tracked for regressions"
ZERO32 = b"\x00" * 32
ATTESTOR = Account.from_key(keccak(text="settlement benchmark attestor"))
TEE_KEY = Account.from_key(keccak(text="settlement benchmark tee"))


class World:
    """A whole protocol with one inference + TEE node, one relayer, and models for every mode."""

    def __init__(self, deployer, node, relayer, payer):
        params = ProtocolParameters()
        self.deployer, self.node, self.relayer, self.payer = deployer, node, relayer, payer
        self.token = deployer.deploy(project.OPGToken, deployer)
        self.staking = deployer.deploy(
            project.NodeStaking, self.token, deployer, deployer, list(params.minimum_stakes), params.unbonding_delay,
            params.reporter_reward_bps, params.jail_duration,
        )
        for operator, mask in ((node, INFERENCE_TEE_MASK), (relayer, RELAYER_MASK)):
            self.token.transfer(operator, 1_000_000 * OPG, sender=deployer)
            self.token.approve(self.staking, 2**256 - 1, sender=operator)
            self.staking.registerOperator(mask, 100_000 * OPG, 0, sender=operator)
        self.models = deployer.deploy(project.ModelRegistry)
        self.verifier = deployer.deploy(project.ReexecutionVerifier, [2, 0, 1, 1, 3, 0], [5, 7], 3)
        self.open_model = self._register("open", 3)
        self.zk_model = self._register("zk", 4, zk=True)
        attestors = deployer.deploy(project.AttestorQuorumVerifier, deployer, [ATTESTOR.address], 1)
        self.tees = deployer.deploy(project.TEERegistry, self.staking, attestors, deployer, HOUR)
        self.tees.addTeeType(NITRO, "AWS Nitro", sender=deployer)
        measurement = hashlib.sha256(b"benchmark enclave").digest()
        self.tees.approveMeasurement(measurement, NITRO, 1, sender=deployer)
        statement = build_statement(
            self.tees, operator=node.address, tee_key=TEE_KEY.address, tee_type=NITRO, measurement=measurement,
            tls_cert_hash=keccak(text="tls"), payment_address=node.address, endpoint="https://tee.example",
            expiry=2**40,
        )
        self.tees.registerTee(statement.as_args(), "https://tee.example", quorum_evidence(attestors, statement,
                                                                                           [ATTESTOR]), sender=node)
        self.settlement = deployer.deploy(
            project.InferenceSettlement, self.token, self.staking, self.models, self.tees, deployer, deployer,
            HOUR, HOUR, DAY,
        )
        self.staking.grantRole(self.staking.SLASHER_ROLE(), self.settlement, sender=deployer)
        self.token.transfer(payer, 1_000 * OPG, sender=deployer)
        self.counter = 0

    def _register(self, label, modes, zk=False):
        spec = (hashlib.sha256(label.encode()).digest(), f"ipfs://{label}", 2 * OPG, modes, 2 if zk else 0, ZERO32,
                False, 0, self.verifier.address if zk else ZERO_ADDRESS, keccak(text=label) if zk else ZERO32)
        tx = self.models.register(spec, sender=self.deployer)
        return tx.events.filter(self.models.ModelRegistered)[0].modelId

    def receipt(self, mode=Mode.VANILLA, signer=None, price=0, **fields) -> Receipt:
        self.counter += 1
        label = f"benchmark request {self.counter}"
        values = dict(
            requestId=keccak(text=label), modelId=self.open_model, inputHash=keccak(text=f"{label} input"),
            outputHash=OutputManifest(text=f"{label} answer").output_hash(), mode=mode,
            signer=signer or self.node.address, timestamp=chain.blocks.head.timestamp,
            payer=self.payer.address if price else ZERO_ADDRESS, price=price,
        ) | fields
        return Receipt(**values)

    def signed(self, receipt, key) -> bytes:
        return sign_receipt(self.settlement, receipt, key)


def _individual_rows(world) -> list[GasRow]:
    s, node_key = world.settlement, world.node.private_key
    rows = []
    tee = world.receipt(Mode.TEE, signer=TEE_KEY.address)
    gas = gas_of(lambda: s.settle(tee.as_args(), world.signed(tee, TEE_KEY.key), sender=world.deployer))
    rows.append(GasRow("InferenceSettlement", "settle (TEE, individual)", gas, INDIVIDUAL_TEE_TARGET,
                       INDIVIDUAL_TEE_SOURCE))
    rows += _long_history_rows(world, gas)
    vanilla = world.receipt()
    gas = gas_of(lambda: s.settle(vanilla.as_args(), world.signed(vanilla, node_key), sender=world.deployer))
    rows.append(GasRow("InferenceSettlement", "settle (VANILLA, individual)", gas, None, NO_ANCHOR))

    inputs = [3, 4, 5]
    outputs = [5 + 2 * 3 + 5, 7 + 3 + 3 * 4]
    zk = world.receipt(Mode.ZKML, modelId=world.zk_model, inputHash=instances_hash(inputs),
                       outputHash=instances_hash(outputs))
    evidence = zkml_evidence(world.signed(zk, node_key), b"", inputs, outputs)
    gas = gas_of(lambda: s.settle(zk.as_args(), evidence, sender=world.deployer))
    rows.append(GasRow("InferenceSettlement", "settle (ZKML, re-execution verifier 3→2)", gas, None, NO_ANCHOR))

    world.token.approve(s, 2**256 - 1, sender=world.payer)
    s.deposit(100 * OPG, sender=world.payer)
    paid = world.receipt(Mode.TEE, signer=TEE_KEY.address, price=2 * OPG)
    auth = PaymentAuthorization(requestId=paid.requestId, maxAmount=2 * OPG, deadline=2**40, nonce=0)
    gas = gas_of(lambda: s.settleAndPay(paid.as_args(), world.signed(paid, TEE_KEY.key), auth.as_args(),
                                        sign_payment(s, auth, world.payer.private_key), sender=world.deployer))
    rows.append(GasRow("InferenceSettlement", "settleAndPay (TEE, from escrow, 5-way split)", gas, None, NO_ANCHOR))
    return rows


def _long_history_rows(world, fresh_gas) -> list[GasRow]:
    """TEE settlement once the key has a long heartbeat history: the lookup must not grow with it."""
    s, tees = world.settlement, world.tees
    beats = []
    for _ in range(HEARTBEATS):
        stamp = chain.blocks.head.timestamp
        gas_of(lambda: tees.heartbeat(TEE_KEY.address, stamp, sign_heartbeat(tees, TEE_KEY, stamp),
                                      sender=world.deployer))
        beats.append(stamp)
    cases = (
        ("after the latest heartbeat", chain.blocks.head.timestamp,
         f"settle (TEE) with one heartbeat, same run; must stay within ×{HISTORY_RATIO_LIMIT}"),
        ("between two old heartbeats", beats[HEARTBEATS // 2] + 1,
         "settle (TEE) with one heartbeat, same run; an older receipt searches the history (logarithmic)"),
    )
    rows = []
    for label, stamp, source in cases:
        r = world.receipt(Mode.TEE, signer=TEE_KEY.address, timestamp=stamp)
        gas = gas_of(lambda: s.settle(r.as_args(), world.signed(r, TEE_KEY.key), sender=world.deployer))
        rows.append(GasRow("InferenceSettlement", f"settle (TEE), {HEARTBEATS} heartbeats, receipt {label}", gas,
                           fresh_gas, source))
    return rows


def _batch_rows(world) -> list[GasRow]:
    s, node_key = world.settlement, world.node.private_key
    rows = []
    batches = {}
    for size in BATCH_SIZES:
        batch = ReceiptBatch([SignedReceipt(r, world.signed(r, node_key)) for r in
                              (world.receipt() for _ in range(size))])
        gas = gas_of(lambda: s.postBatch(batch.root, size, "ipfs://bafybeibenchmarkbatch", sender=world.relayer))
        batches[size] = (batch, s.batchCount())
        per_receipt = -(-gas // size)
        anchor, source = (PER_RECEIPT_TARGET, "target ≤ 100 gas per receipt at 1,024") if size == 1024 else (None,
                                                                                                            NO_ANCHOR)
        rows.append(GasRow("InferenceSettlement", f"postBatch, per receipt at {size:,} ({gas:,} / {size:,})",
                           per_receipt, anchor, source))
    batch, batch_id = batches[1024]
    no_auth = (ZERO32, 0, 0, 0)
    gas = gas_of(lambda: s.claimBatchReceipt(batch_id, batch.leaf(7), no_auth, b"", sender=world.node))
    rows.append(GasRow("InferenceSettlement", "claimBatchReceipt (free leaf, 1,024-leaf tree)", gas, None, NO_ANCHOR))

    forged = world.receipt()
    leaves = [SignedReceipt(r, world.signed(r, node_key)) for r in (world.receipt() for _ in range(15))]
    bad = ReceiptBatch(leaves + [SignedReceipt(forged, b"\x11" * 65)])
    s.postBatch(bad.root, len(bad), "ipfs://bafybeibenchmarkbad", sender=world.relayer)
    bad_id = s.batchCount()
    gas = gas_of(lambda: s.challenge(bad_id, bad.leaf(15), sender=world.deployer))
    rows.append(GasRow("InferenceSettlement", "challenge (bad signature; slashes the relayer)", gas, CHALLENGE_TARGET,
                       "target ≤ 150,000 (NodeStaking.slash alone: see its row)"))
    return rows


def _async_rows(world) -> list[GasRow]:
    s = world.settlement
    tee = world.receipt(Mode.TEE, signer=TEE_KEY.address)
    post = gas_of(lambda: s.postPending(tee.as_args(), sender=world.node))
    deliver = gas_of(lambda: s.deliverProof(tee.as_args(), world.signed(tee, TEE_KEY.key), sender=world.deployer))
    return [
        GasRow("InferenceSettlement", "postPending (TEE)", post, None, NO_ANCHOR),
        GasRow("InferenceSettlement", "deliverProof (TEE signature)", deliver, None, NO_ANCHOR),
    ]


def measure(deployer, test_accounts) -> list[GasRow]:
    world = World(deployer, *test_accounts[:3])
    return _individual_rows(world) + _batch_rows(world) + _async_rows(world)
