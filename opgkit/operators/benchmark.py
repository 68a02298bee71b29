"""Timing the operators on a local chain (``ape run operators_bench``): the code the daemons run, in process."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ape import chain
from eth_utils import keccak

from opgkit.batch_document import BatchDocument, publish
from opgkit.receipt_verifier import document_json
from opgkit.demo import Cast, Story
from opgkit.leaf_faults import Contracts, LeafJudge
from opgkit.operators.command import Operator, chain_identity
from opgkit.operators.relayer import SCHEMA as RELAYER_SCHEMA, Counters, Intake, Relayer, RelayerOptions, ingest_spool
from opgkit.operators.metrics import OperatorMetrics
from opgkit.operators.runtime import Runtime
from opgkit.operators.sending import SENDS_SCHEMA, Sender
from opgkit.operators.store import Store
from opgkit.operators.watchtower import SCHEMA, Settings, Watchtower
from opgkit.testing import advance
from opgkit.receipts import Mode, Receipt, ReceiptBatch, SignedReceipt, sign_receipt


@dataclass
class Context:
    """The deployed protocol and the cast that acts on it."""

    story: Story
    model: bytes

    @property
    def settlement(self):
        return self.story.suite["InferenceSettlement"]


@dataclass
class RelayerFigures:
    accepted_per_second: float
    batched_per_second: float


@dataclass
class WatchtowerFigures:
    seconds: float
    context: Context


def deployed(test_accounts) -> Context:
    """The protocol deployed and staked by the demo's own first chapters, and a model to sign receipts for."""
    story = Story(Cast.from_accounts(test_accounts), lambda line: None)
    story.deploy()
    story.stake()
    model = story._register_model("benchmark", allowed=1 | 2, minimum=Mode.VANILLA)
    advance(chain, 3_600)  # receipts spread over the last ten minutes are all newer than the model
    return Context(story, model)


def signed_receipts(context: Context, count: int, label: str) -> list[SignedReceipt]:
    node, settlement = context.story.cast.node, context.settlement
    stamp = chain.blocks.head.timestamp - 1
    receipts = []
    for i in range(count):
        r = Receipt(requestId=keccak(text=f"{label} {i}"), modelId=context.model, inputHash=keccak(text=f"q {i}"),
                    outputHash=keccak(text=f"a {i}"), mode=Mode.VANILLA, signer=node.address, timestamp=stamp - i % 600,
                    payer=context.story.cast.payer.address)
        receipts.append(SignedReceipt(r, sign_receipt(settlement, r, node.private_key)))
    return receipts


def operator_for(role: str, schema: str, context: Context, state: Path, account) -> Operator:
    runtime = Runtime(role, True, OperatorMetrics(role))
    store = Store(state, role, chain_identity(chain.provider), str(context.settlement.address), schema + SENDS_SCHEMA)
    return Operator(runtime, store, Sender(store, account, chain.provider), account, chain.provider,
                    context.settlement, chain.chain_id)


def measure_watchtower(test_accounts, scratch: Path, leaves: int) -> WatchtowerFigures:
    """Seconds for one watchtower pass that finds a posted ``leaves``-leaf batch: read its event, fetch its
    document (file://), rebuild the root and judge every leaf against the chain."""
    context = deployed(test_accounts)
    batches = context.story.suite["BatchSettlement"]
    signed = signed_receipts(context, leaves, "watchtower benchmark")
    path, root = publish(scratch / "batches", BatchDocument(chain.chain_id, str(batches.address), tuple(signed)))
    first_block = chain.blocks.head.number + 1
    batches.postBatch(root, len(signed), path.resolve().as_uri(), sender=context.story.cast.relayer)
    operator = operator_for("watchtower", SCHEMA, context, scratch / "watchtower.db", context.story.cast.challenger)
    watchtower = Watchtower(operator, Settings(confirmations=0, from_block=first_block, allow_files=True))
    started = time.perf_counter()
    watchtower.step()
    seconds = time.perf_counter() - started
    (state,) = operator.store.one("SELECT state FROM batches")
    if state != "honest":
        raise RuntimeError(f"the benchmark batch was judged {state}, not honest")
    return WatchtowerFigures(seconds, context)


def measure_relayer(context: Context, scratch: Path, receipts: int, batch_size: int = 256) -> RelayerFigures:
    """Receipts per second the relayer's own code takes in from a spool (read, judge, commit, move) and then
    batches (re-judge, cut, publish, post each root and find its event), on ``context``'s chain."""
    spool = scratch / "spool"
    for name in ("accepted", "rejected"):
        (spool / name).mkdir(parents=True, exist_ok=True)
    for index, signed in enumerate(signed_receipts(context, receipts, "relayer benchmark")):
        (spool / f"{index:06}.json").write_text(json.dumps(document_json(signed.receipt, signed.signature)))
    operator = operator_for("relayer", RELAYER_SCHEMA, context, scratch / "relayer.db", context.story.cast.relayer)
    contracts = Contracts.of(context.settlement)
    options = RelayerOptions(batch_size=batch_size, publish_dir=scratch / "published",
                             publish_url=(scratch / "published").resolve().as_uri())
    options.publish_dir.mkdir()
    counters = Counters(operator.runtime.metrics)
    intake = Intake(operator.store, LeafJudge(chain.provider.web3, contracts), operator.runtime, options, counters)
    relayer = Relayer(operator, context.story.suite["BatchSettlement"], intake.judge, intake, options, None)
    started = time.perf_counter()
    ingest_spool(spool, intake, lambda: False)
    accepted = time.perf_counter()
    relayer.step(flush=True)
    finished = time.perf_counter()
    posted = operator.store.one("SELECT count(*) FROM receipts WHERE state = 'batched'")[0]
    if posted != receipts:
        raise RuntimeError(f"the relayer batched {posted} of {receipts} receipts")
    return RelayerFigures(receipts / (accepted - started), receipts / (finished - accepted))
