"""ZKML with EZKL: the generated verifier alone against full settlement, proving time, key sizes.

Settlement is measured as its callers make it: ``settle`` by the receipt's payer, ``settleWithAuthorization``
by a third party under the payer's authorization, and ``postPending`` by the signing node (with the payer's
authorization) followed by ``deliverProof`` from anyone.

Not part of the reproducible gas table: every proof is randomised, so its calldata (zero bytes are cheaper)
moves the figures by a few hundred gas from run to run. ``ape run zkml bench`` writes ``benchmarks/zkml.md``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ape import project

from opgkit.benchmarks import GasRow, gas_of
from opgkit.benchmarks.settlement import World
from opgkit.receipts import Mode, PaymentAuthorization, sign_payment, zkml_evidence, zkml_proof_evidence
from opgkit.zkml import pipeline
from opgkit.zkml.models import LIQUIDATION_RISK, RISKY_POSITION
from opgkit.zkml.onchain import deploy_model

EZKL_VERIFIER_ANCHOR = 543_371
EZKL_VERIFIER_SOURCE = "EZKL Halo2 verifier, 4→2 linear+ReLU (py-evm, Prague)"
OVERHEAD_TARGET = 30_000
OVERHEAD_SOURCE = "target ≤ 30,000 above the bare verifier"
AUTHORIZATION_DEADLINE = 2**40


@dataclass(frozen=True)
class ZkmlFigures:
    gas: list[GasRow]
    proving_seconds: list[float]
    build_seconds: float
    proving_key_bytes: int
    verifying_key_bytes: int
    proof_bytes: int
    logrows: int

    @property
    def verifier_gas(self) -> int:
        return self._gas("Halo2Verifier.verifyProof (bare, as a transaction)")

    def overhead(self, operation: str) -> int:
        return self._gas(operation) - self.verifier_gas

    def _gas(self, operation: str) -> int:
        return next(row.gas for row in self.gas if row.operation == operation)


SETTLE = "settle (ZKML, by its payer, with the proof)"
POST_PENDING = "postPending (ZKML, by its node, payer's authorization)"
DELIVER = "deliverProof (ZKML, after postPending)"
SETTLE_AUTHORIZED = "settleWithAuthorization (ZKML, by a third party, with the proof)"
PROOF_CHECKED = (SETTLE, DELIVER, SETTLE_AUTHORIZED)


def measure(deployer, test_accounts, proofs: int = 3) -> ZkmlFigures:
    """Set up (or reuse) the liquidation model, prove ``proofs`` times, and measure its verification gas."""
    artifacts = pipeline.build(LIQUIDATION_RISK)
    timed = [pipeline.prove(artifacts, RISKY_POSITION) for _ in range(proofs)]
    proof = timed[-1]
    world = World(deployer, *test_accounts[:3])
    model = deploy_model(artifacts, project, world.models, deployer)
    node_key = world.node.private_key

    instances = [*proof.inputs, *proof.outputs]
    bare = gas_of(lambda: model.halo2_verifier.verifyProof(proof.proof, instances, sender=deployer))

    def zkml_receipt():
        return world.receipt(Mode.ZKML, modelId=model.model_id, inputHash=proof.input_hash,
                             outputHash=proof.output_hash, payer=world.payer.address)

    def authorized(receipt):
        auth = PaymentAuthorization.for_receipt(receipt, AUTHORIZATION_DEADLINE)
        return auth.as_args(), sign_payment(world.settlement, auth, world.payer.private_key)

    s = world.settlement
    immediate = zkml_receipt()
    evidence = zkml_evidence(world.signed(immediate, node_key), proof.proof, proof.inputs, proof.outputs)
    settle = gas_of(lambda: s.settle(immediate.as_args(), evidence, sender=world.payer))
    pending = zkml_receipt()
    post = gas_of(lambda: s.postPending(pending.as_args(), *authorized(pending), sender=world.node))
    owed = zkml_proof_evidence(proof.proof, proof.inputs, proof.outputs)
    deliver = gas_of(lambda: s.deliverProof(pending.as_args(), owed, sender=deployer))
    third_party = zkml_receipt()
    evidence = zkml_evidence(world.signed(third_party, node_key), proof.proof, proof.inputs, proof.outputs)
    settle_authorized = gas_of(lambda: s.settleWithAuthorization(third_party.as_args(), evidence,
                                                                 *authorized(third_party), sender=deployer))

    gas = [
        GasRow("Halo2Verifier", "Halo2Verifier.verifyProof (bare, as a transaction)", bare, EZKL_VERIFIER_ANCHOR,
               EZKL_VERIFIER_SOURCE),
        GasRow("InferenceSettlement", SETTLE, settle, bare + OVERHEAD_TARGET, OVERHEAD_SOURCE),
        GasRow("InferenceSettlement", POST_PENDING, post, None, "no proof checked yet"),
        GasRow("InferenceSettlement", DELIVER, deliver, bare + OVERHEAD_TARGET, OVERHEAD_SOURCE),
        GasRow("InferenceSettlement", SETTLE_AUTHORIZED, settle_authorized, None,
               "informative: settle plus the payer's EIP-712 authorization check"),
    ]
    return ZkmlFigures(
        gas=gas,
        proving_seconds=[p.proving_seconds for p in timed],
        build_seconds=artifacts.build_seconds,
        proving_key_bytes=artifacts.proving_key_bytes,
        verifying_key_bytes=artifacts.verifying_key.stat().st_size,
        proof_bytes=len(proof.proof),
        logrows=artifacts.logrows,
    )


def render(figures: ZkmlFigures, header: str) -> str:
    """The Markdown report: gas rows (overhead above the bare verifier), then proving time and sizes."""
    lines = [
        header.rstrip(), "",
        "| operation | gas | above bare verifier | anchor | vs anchor | anchor source |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in figures.gas:
        above = f"{figures.overhead(row.operation):+,}" if row.operation in PROOF_CHECKED else "—"
        anchor = f"{row.anchor:,}" if row.anchor else "—"
        lines.append(f"| {row.operation} | {row.gas:,} | {above} | {anchor} | {row.delta} | {row.anchor_source} |")
    median = statistics.median(figures.proving_seconds)
    lines += [
        "",
        "| model `liquidation_risk` (4 → 2, Gemm + ReLU) | figure |",
        "|---|---:|",
        f"| circuit size | 2^{figures.logrows} rows |",
        f"| proving time (median of {len(figures.proving_seconds)}) | {median:.2f} s |",
        f"| setup (settings, calibration, circuit, SRS, keys, verifier) | {figures.build_seconds:.1f} s |",
        f"| proving key | {figures.proving_key_bytes / 2**20:,.1f} MiB ({figures.proving_key_bytes:,} bytes) |",
        f"| verifying key | {figures.verifying_key_bytes:,} bytes |",
        f"| proof | {figures.proof_bytes:,} bytes |",
    ]
    return "\n".join(lines) + "\n"
