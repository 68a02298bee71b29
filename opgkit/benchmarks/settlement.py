"""Settlement gas: individual settlement per mode, batches amortized per receipt, claims, challenges, async,
payments, each beside the floor of recording one signed receipt (`BenchmarkReceiptFloor`, same run)."""

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
    NO_AUTHORIZATION, Mode, PaymentAuthorization, Receipt, ReceiptBatch, SignedReceipt, instances_hash, sign_payment,
    sign_receipt, zkml_evidence,
)

NITRO = 1
HOUR = 3_600
INFERENCE_TEE_MASK, RELAYER_MASK = 3, 4
BATCH_SIZES = (16, 256, 1024)
HEARTBEATS = 256
HISTORY_RATIO_LIMIT = 1.10
PRICE = 2 * OPG
AUTHORIZATION_DEADLINE = 2**40
ZERO32 = b"\x00" * 32
ATTESTOR = Account.from_key(keccak(text="settlement benchmark attestor"))
TEE_KEY = Account.from_key(keccak(text="settlement benchmark tee"))

FLOOR_SOURCE = "floor: `BenchmarkReceiptFloor` record, same run"
FLOOR = "record (TEE receipt, by its payer): the floor of recording one signed receipt"
FLOOR_CONTENTS = ("benchmark anchor, never deployed: EIP-712 digest + ecrecover + 1 new slot + 1 event, same calldata "
                  "as settle")

# Operations, as named in the table, and the targets the settlement issue sets for them.
SETTLE_TEE = "settle (TEE, by its payer, no price)"
SETTLE_TEE_AUTHORIZED = "settleWithAuthorization (TEE, by a third party, no price)"
SETTLE_VANILLA = "settle (VANILLA, by its payer, no price)"
SETTLE_ZKML = "settle (ZKML, by its payer, re-execution verifier 3→2)"
# Paid as the v1 `settleAndPay` row was: a model without a parent (no royalty), so the price is split between
# the node, its stakers, the model owner and the treasury (the deployer owns the model and is the treasury).
SETTLE_AND_PAY_TEE = "settleWithAuthorization (TEE, priced, from escrow, split: node, stakers, owner, treasury)"
# The same payment again: every payee's balance and the pool's reward state already exist (the usual case).
SETTLE_AND_PAY_TEE_AGAIN = "settleWithAuthorization (TEE, priced, same payees again: no new balances)"
PER_RECEIPT = "postBatch, per receipt at"
PER_RECEIPT_1024 = f"{PER_RECEIPT} 1,024"
CLAIM_FREE = "claimBatchReceipt (free leaf, by its payer, 1,024-leaf tree)"
CLAIM_HELD = "claimBatchReceipt (priced leaf, by its payer, payment held from escrow, 1,024-leaf tree)"
RELEASE = "releaseBatchPayment (batch final: held payment split)"
CHALLENGE = "challenge (bad signature; slashes the relayer)"
POST_PENDING = "postPending (TEE, by its operator, payer's authorization, no price)"
DELIVER = "deliverProof (TEE signature)"
OPEN_REQUEST = "InferenceRequests open (fee escrowed from the consumer)"
FULFILL_FREE = "InferenceRequests fulfill (TEE, free model: settle + callback; callback cost excluded)"
FULFILL_PRICED = "InferenceRequests fulfill (TEE, priced: settle, split, unspent fee back; callback cost excluded)"
TARGETS = {
    SETTLE_TEE: 80_000,
    SETTLE_VANILLA: 70_000,
    SETTLE_AND_PAY_TEE: 150_000,
    CHALLENGE: 150_000,
    PER_RECEIPT_1024: 100,
}


class World:
    """A whole protocol with one inference + TEE node, one relayer, models for every mode, and the floor."""

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
        self.free_model = self._register("free", 3, price=0)
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
        # Treasury and admin: the deployer, who also owns the models (the split the v1 rows measured).
        self.settlement = deployer.deploy(
            project.InferenceSettlement, self.token, self.staking, self.models, self.tees, deployer, deployer,
            HOUR, DAY,
        )
        self.batches = deployer.deploy(
            project.BatchSettlement, self.settlement, self.staking, self.models, self.tees, deployer, HOUR, DAY,
        )
        self.settlement.setBatchSettlement(self.batches, sender=deployer)
        for slasher in (self.settlement, self.batches):
            self.staking.grantRole(self.staking.SLASHER_ROLE(), slasher, sender=deployer)
        self.requests = deployer.deploy(project.InferenceRequests, self.settlement, self.models, self.token)
        self.floor = deployer.deploy(project.BenchmarkReceiptFloor)
        self.floor_gas: int | None = None
        self.token.transfer(payer, 1_000 * OPG, sender=deployer)
        self.counter = 0

    def _register(self, label, modes, zk=False, price=PRICE):
        spec = (hashlib.sha256(label.encode()).digest(), f"ipfs://{label}", price, modes, 2 if zk else 0, ZERO32,
                False, 0, self.verifier.address if zk else ZERO_ADDRESS, keccak(text=label) if zk else ZERO32)
        tx = self.models.register(spec, sender=self.deployer)
        return tx.events.filter(self.models.ModelRegistered)[0].modelId

    def receipt(self, mode=Mode.VANILLA, signer=None, price=0, **fields) -> Receipt:
        self.counter += 1
        label = f"benchmark request {self.counter}"
        values = dict(
            requestId=keccak(text=label), modelId=self.open_model, inputHash=keccak(text=f"{label} input"),
            outputHash=OutputManifest(text=f"{label} answer").output_hash(), mode=mode,
            signer=signer or self.node.address, timestamp=chain.blocks.head.timestamp, payer=self.payer.address,
            price=price,
        ) | fields
        return Receipt(**values)

    def tee_receipt(self, price=0, **fields) -> Receipt:
        return self.receipt(Mode.TEE, signer=TEE_KEY.address, price=price, **fields)

    def signed(self, receipt, key, contract=None) -> bytes:
        return sign_receipt(contract or self.settlement, receipt, key)

    def authorization(self, receipt) -> tuple[tuple, bytes]:
        """The payer's authorization for ``receipt`` (the TEE's operator is the node) and its signature."""
        node = self.node.address if receipt.mode == Mode.TEE else receipt.signer
        auth = PaymentAuthorization.for_receipt(receipt, AUTHORIZATION_DEADLINE, node=node)
        return auth.as_args(), sign_payment(self.settlement, auth, self.payer.private_key)

    def row(self, contract, operation, gas, anchor=None, source=None, target=None) -> GasRow:
        """A row against the floor, unless another anchor is given; with the issue's target if it has one."""
        if anchor is None:
            anchor, source = self.floor_gas, FLOOR_SOURCE
        return GasRow(contract, operation, gas, anchor, source, target or TARGETS.get(operation))


def _floor_row(world) -> GasRow:
    r = world.tee_receipt()
    signature = world.signed(r, TEE_KEY.key, world.floor)
    world.floor_gas = gas_of(lambda: world.floor.record(r.as_args(), signature, sender=world.payer))
    return GasRow("BenchmarkReceiptFloor", FLOOR, world.floor_gas, None, FLOOR_CONTENTS)


def _individual_rows(world) -> list[GasRow]:
    s, payer, node_key = world.settlement, world.payer, world.node.private_key
    rows = []
    tee = world.tee_receipt()
    gas = gas_of(lambda: s.settle(tee.as_args(), world.signed(tee, TEE_KEY.key), sender=payer))
    rows.append(world.row("InferenceSettlement", SETTLE_TEE, gas))
    rows += _long_history_rows(world, gas)

    tee = world.tee_receipt()
    auth, auth_sig = world.authorization(tee)
    gas = gas_of(lambda: s.settleWithAuthorization(tee.as_args(), world.signed(tee, TEE_KEY.key), auth, auth_sig,
                                                   sender=world.deployer))
    rows.append(world.row("InferenceSettlement", SETTLE_TEE_AUTHORIZED, gas))

    vanilla = world.receipt()
    gas = gas_of(lambda: s.settle(vanilla.as_args(), world.signed(vanilla, node_key), sender=payer))
    rows.append(world.row("InferenceSettlement", SETTLE_VANILLA, gas))

    inputs = [3, 4, 5]
    outputs = [5 + 2 * 3 + 5, 7 + 3 + 3 * 4]
    zk = world.receipt(Mode.ZKML, modelId=world.zk_model, inputHash=instances_hash(inputs),
                       outputHash=instances_hash(outputs))
    evidence = zkml_evidence(world.signed(zk, node_key), b"", inputs, outputs)
    gas = gas_of(lambda: s.settle(zk.as_args(), evidence, sender=payer))
    rows.append(world.row("InferenceSettlement", SETTLE_ZKML, gas))

    world.token.approve(s, 2**256 - 1, sender=payer)
    s.deposit(100 * OPG, sender=payer)
    paid = world.tee_receipt(price=PRICE)
    auth, auth_sig = world.authorization(paid)
    gas = gas_of(lambda: s.settleWithAuthorization(paid.as_args(), world.signed(paid, TEE_KEY.key), auth, auth_sig,
                                                   sender=world.deployer))
    rows.append(world.row("InferenceSettlement", SETTLE_AND_PAY_TEE, gas))

    again = world.tee_receipt(price=PRICE)
    auth, auth_sig = world.authorization(again)
    gas = gas_of(lambda: s.settleWithAuthorization(again.as_args(), world.signed(again, TEE_KEY.key), auth, auth_sig,
                                                   sender=world.deployer))
    rows.append(world.row("InferenceSettlement", SETTLE_AND_PAY_TEE_AGAIN, gas))
    return rows


def _request_rows(world, rows) -> list[GasRow]:
    """A request opened and answered through InferenceRequests, beside the plain settlement it wraps. The
    consumer is an account without code, so the callback costs only the call: its own work is excluded."""
    gas_by_operation = {row.operation: row.gas for row in rows}
    requests, consumer = world.requests, world.payer
    world.token.approve(requests, 2**256 - 1, sender=consumer)
    source = "{} (same run)"
    out = []
    for model, price, operation, anchor in ((world.free_model, 0, FULFILL_FREE, SETTLE_TEE),
                                            (world.open_model, PRICE, FULFILL_PRICED, SETTLE_AND_PAY_TEE_AGAIN)):
        input_hash = keccak(text=f"request {operation}")
        opened = requests.open(model, input_hash, Mode.TEE, 0, price, 100_000, HOUR, sender=consumer)
        request_id = opened.events.filter(requests.RequestOpened)[0].requestId
        if price:
            out.append(GasRow("InferenceRequests", OPEN_REQUEST, opened.gas_used, None,
                              "no external anchor; tracked for regressions"))
        output = OutputManifest(text=f"answer {operation}").canonical_json()
        answer = world.tee_receipt(price=price, requestId=request_id, modelId=model, inputHash=input_hash,
                                   outputHash=keccak(output), payer=requests.address)
        gas = gas_of(lambda: requests.fulfill(request_id, answer.as_args(), world.signed(answer, TEE_KEY.key),
                                              output, sender=world.deployer))
        out.append(world.row("InferenceRequests", operation, gas, gas_by_operation[anchor],
                             source.format(f"InferenceSettlement {anchor}")))
    return out


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
        r = world.tee_receipt(timestamp=stamp)
        gas = gas_of(lambda: s.settle(r.as_args(), world.signed(r, TEE_KEY.key), sender=world.payer))
        rows.append(world.row("InferenceSettlement", f"settle (TEE), {HEARTBEATS} heartbeats, receipt {label}", gas,
                              fresh_gas, source))
    return rows


def _batch_rows(world) -> tuple[list[GasRow], ReceiptBatch, int]:
    """Posting per receipt at each size, then claims of a free and a priced leaf of the 1,024-receipt batch."""
    b, node_key = world.batches, world.node.private_key
    rows = []
    batches = {}
    for size in BATCH_SIZES:
        receipts = [world.receipt() for _ in range(size - 1)] + [world.receipt(price=PRICE)]
        batch = ReceiptBatch([SignedReceipt(r, world.signed(r, node_key)) for r in receipts])
        gas = gas_of(lambda: b.postBatch(batch.root, size, "ipfs://bafybeibenchmarkbatch", sender=world.relayer))
        batches[size] = (batch, b.batchCount())
        per_receipt = -(-gas // size)
        rows.append(world.row("BatchSettlement", f"{PER_RECEIPT} {size:,} ({gas:,} / {size:,})", per_receipt,
                              target=TARGETS[PER_RECEIPT_1024] if size == 1024 else None))
    batch, batch_id = batches[1024]
    gas = gas_of(lambda: b.claimBatchReceipt(batch_id, batch.leaf(7), NO_AUTHORIZATION, b"", sender=world.payer))
    rows.append(world.row("BatchSettlement", CLAIM_FREE, gas))
    priced = len(batch) - 1
    gas = gas_of(lambda: b.claimBatchReceipt(batch_id, batch.leaf(priced), NO_AUTHORIZATION, b"",
                                             sender=world.payer))
    rows.append(world.row("BatchSettlement", CLAIM_HELD, gas))
    return rows, batch, priced


def _challenge_row(world) -> GasRow:
    b, node_key = world.batches, world.node.private_key
    forged = world.receipt()
    leaves = [SignedReceipt(r, world.signed(r, node_key)) for r in (world.receipt() for _ in range(15))]
    bad = ReceiptBatch(leaves + [SignedReceipt(forged, b"\x11" * 65)])
    gas_of(lambda: b.postBatch(bad.root, len(bad), "ipfs://bafybeibenchmarkbad", sender=world.relayer))
    bad_id = b.batchCount()
    gas = gas_of(lambda: b.challenge(bad_id, bad.leaf(15), sender=world.deployer))
    return world.row("BatchSettlement", CHALLENGE, gas)


def _async_rows(world) -> list[GasRow]:
    s = world.settlement
    tee = world.tee_receipt()
    auth, auth_sig = world.authorization(tee)
    post = gas_of(lambda: s.postPending(tee.as_args(), auth, auth_sig, sender=world.node))
    deliver = gas_of(lambda: s.deliverProof(tee.as_args(), world.signed(tee, TEE_KEY.key), sender=world.deployer))
    return [world.row("InferenceSettlement", POST_PENDING, post), world.row("InferenceSettlement", DELIVER, deliver)]


def _release_row(world, batch, priced) -> GasRow:
    """Once the batch's challenge window is over, its held payment is split."""
    chain.pending_timestamp = chain.blocks.head.timestamp + HOUR
    chain.mine()
    leaf = batch.signed[priced].receipt
    gas = gas_of(lambda: world.settlement.releaseBatchPayment(leaf.as_args(), sender=world.deployer))
    return world.row("InferenceSettlement", RELEASE, gas)


def measure(deployer, test_accounts) -> list[GasRow]:
    world = World(deployer, *test_accounts[:3])
    rows = [_floor_row(world)] + _individual_rows(world)
    rows += _request_rows(world, rows)
    batch_rows, batch, priced = _batch_rows(world)
    rows += batch_rows + [_challenge_row(world)] + _async_rows(world)
    return rows + [_release_row(world, batch, priced)]
