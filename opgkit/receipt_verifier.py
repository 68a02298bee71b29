"""The auditor's receipt check: what a receipt says, what holds on chain, and what its mode covers.

A receipt document is JSON:

    {
      "receipt":   {"requestId": "0x…", "modelId": "0x…", "inputHash": "0x…", "outputHash": "0x…",
                    "mode": "TEE", "signer": "0x…", "timestamp": 1700000000, "payer": "0x…", "price": "0"},
      "signature": "0x…",                                   (optional: 65 bytes)
      "batch":     {"batchId": 3, "proof": ["0x…", …]},      (optional)
      "response":  {"text": "…", "images": ["data:…"], …}   (optional: the answer as delivered)
      "zkml":      {"proof": "0x…", "inputs": ["…"], "outputs": ["…"]}   (optional: ZKML proof and
                   instances, as `ape run zkml prove --out` writes them)
    }

``verify_document`` runs every check it can and returns a ``Report``; nothing in it raises for a failing
check. ``ReceiptDocumentError`` is raised only for a document that cannot be read at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ape import project
from ape.exceptions import ContractLogicError
from ape.utils import ZERO_ADDRESS
from eth_utils import is_hex, to_bytes

from opgkit.manifest import ManifestError, manifest_from_response
from opgkit.receipts import Mode, Receipt, Status, instances_hash, recover_receipt_signer

COVERAGE = {
    Mode.VANILLA: (
        "signed by a staked inference node, which can be slashed for provable misbehaviour",
        "no evidence that the node ran this model on this input: the answer is only signed, not proven",
    ),
    Mode.TEE: (
        "signed inside an attested enclave (approved code measurement, live heartbeat) run by a staked operator",
        "trust in the enclave vendor's hardware and in the attestation services; the input and output hashes "
        "are signed, their contents are not revealed on chain",
    ),
    Mode.ZKML: (
        "a proof, checked by the model's registered verifier, that the registered circuit maps the committed "
        "input instances to the committed output instances",
        "that the circuit faithfully encodes the published model; anything outside the public instances",
    ),
}
_BYTES32_FIELDS = ("requestId", "modelId", "inputHash", "outputHash")


class ReceiptDocumentError(ValueError):
    """The receipt document cannot be read; the message says which part and why."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (the document lacks what it needs)
    detail: str


@dataclass
class Report:
    receipt: Receipt | None
    request_id: bytes
    checks: list[Check] = field(default_factory=list)
    status: Status = Status.NONE
    mode: Mode | None = None

    @property
    def passed(self) -> bool:
        return all(check.ok is not False for check in self.checks)

    def covers(self) -> tuple[str, str] | None:
        return COVERAGE.get(self.mode) if self.mode is not None else None


@dataclass(frozen=True)
class ZkmlEvidence:
    """A ZKML proof and the public instances it proves (inputs, then outputs)."""

    proof: bytes
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class ReceiptDocument:
    receipt: Receipt
    signature: bytes | None = None
    batch_id: int | None = None
    proof: tuple[bytes, ...] = ()
    response: dict | None = None
    zkml: ZkmlEvidence | None = None


def _hex_bytes(value, name: str, length: int | None = None) -> bytes:
    if not isinstance(value, str) or not is_hex(value) or not value.startswith("0x"):
        raise ReceiptDocumentError(f"{name} must be a 0x-prefixed hex string")
    data = to_bytes(hexstr=value)
    if length is not None and len(data) != length:
        raise ReceiptDocumentError(f"{name} must be {length} bytes, not {len(data)}")
    return data


def _mode(value) -> Mode:
    try:
        return Mode[value.upper()] if isinstance(value, str) else Mode(int(value))
    except (KeyError, ValueError) as error:
        raise ReceiptDocumentError(f"receipt.mode must be VANILLA, TEE or ZKML (or 0, 1, 2), not {value!r}") from error


def parse_document(data: dict) -> ReceiptDocument:
    """A receipt document from its JSON object."""
    if not isinstance(data, dict) or not isinstance(data.get("receipt"), dict):
        raise ReceiptDocumentError('the document needs a "receipt" object')
    raw = data["receipt"]
    missing = [name for name in (*_BYTES32_FIELDS, "mode", "signer", "timestamp") if name not in raw]
    if missing:
        raise ReceiptDocumentError(f"receipt is missing {', '.join(missing)}")
    try:
        receipt = Receipt(
            **{name: _hex_bytes(raw[name], f"receipt.{name}", 32) for name in _BYTES32_FIELDS},
            mode=_mode(raw["mode"]),
            signer=raw["signer"],
            timestamp=int(raw["timestamp"]),
            payer=raw.get("payer", ZERO_ADDRESS),
            price=int(raw.get("price", 0)),
        )
    except (TypeError, ValueError) as error:
        if isinstance(error, ReceiptDocumentError):
            raise
        raise ReceiptDocumentError(f"receipt has an invalid field: {error}") from error
    signature = _hex_bytes(data["signature"], "signature", 65) if data.get("signature") else None
    batch = data.get("batch") or {}
    proof = tuple(_hex_bytes(node, "batch.proof[]", 32) for node in batch.get("proof", []))
    batch_id = int(batch["batchId"]) if "batchId" in batch else None
    zkml = _zkml_evidence(data["zkml"]) if data.get("zkml") else None
    return ReceiptDocument(receipt, signature, batch_id, proof, data.get("response"), zkml)


def _zkml_evidence(raw) -> ZkmlEvidence:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(key), list) for key in ("inputs", "outputs")):
        raise ReceiptDocumentError('zkml needs "proof" and the "inputs" and "outputs" instance lists')
    try:
        return ZkmlEvidence(_hex_bytes(raw.get("proof"), "zkml.proof"), tuple(int(v) for v in raw["inputs"]),
                            tuple(int(v) for v in raw["outputs"]))
    except (TypeError, ValueError) as error:
        if isinstance(error, ReceiptDocumentError):
            raise
        raise ReceiptDocumentError(f"zkml instances must be integers: {error}") from error


def load_document(path: Path) -> ReceiptDocument:
    try:
        return parse_document(json.loads(path.read_text()))
    except FileNotFoundError as error:
        raise ReceiptDocumentError(f"no file {path}") from error
    except json.JSONDecodeError as error:
        raise ReceiptDocumentError(f"{path} is not JSON: {error}") from error


def document_json(receipt: Receipt, signature: bytes | None = None, batch_id: int | None = None, proof=(),
                  response: dict | None = None, zkml: ZkmlEvidence | None = None) -> dict:
    """The JSON object of a receipt document (what ``parse_document`` reads)."""
    data = {
        "receipt": {
            **{name: "0x" + getattr(receipt, name).hex() for name in _BYTES32_FIELDS},
            "mode": receipt.mode.name, "signer": receipt.signer, "timestamp": receipt.timestamp,
            "payer": receipt.payer, "price": str(receipt.price),
        }
    }
    if signature is not None:
        data["signature"] = "0x" + signature.hex()
    if batch_id is not None:
        data["batch"] = {"batchId": batch_id, "proof": ["0x" + node.hex() for node in proof]}
    if response is not None:
        data["response"] = response
    if zkml is not None:
        data["zkml"] = {"proof": "0x" + zkml.proof.hex(), "inputs": [str(v) for v in zkml.inputs],
                        "outputs": [str(v) for v in zkml.outputs]}
    return data


def verify_document(settlement, tees, staking, models, document: ReceiptDocument) -> Report:
    """Check ``document`` against the contracts (ape instances) and return what held and what did not."""
    r = document.receipt
    report = Report(receipt=r, request_id=r.requestId, mode=r.mode)
    report.checks.append(_signature_check(settlement, document))
    report.checks.append(_zkml_check(models, document) if r.mode == Mode.ZKML else _output_check(document))
    report.checks.append(_signer_check(tees, staking, r))
    report.checks.append(_policy_check(models, r))
    report.checks.append(_settlement_check(settlement, r, report))
    if document.batch_id is not None:
        report.checks.append(_inclusion_check(settlement, document))
    return report


def verify_request(settlement, request_id: bytes) -> Report:
    """What the chain records for ``request_id`` when no receipt is at hand."""
    out = settlement.verifiedOutput(request_id)
    status = Status(out.status)
    report = Report(receipt=None, request_id=request_id, status=status,
                    mode=Mode(out.mode) if status != Status.NONE else None)
    detail = (f"{status.name}, mode {Mode(out.mode).name}, output hash 0x{bytes(out.outputHash).hex()}, settled at "
              f"{out.settledAt or '—'}" if status != Status.NONE else "never settled on this contract")
    report.checks.append(Check("settlement", status in (Status.FINAL, Status.PENDING), detail))
    return report


def _signature_check(settlement, document) -> Check:
    if document.signature is None:
        return Check("signature", None, "no signature in the document")
    if document.receipt.mode == Mode.ZKML:
        note = " (ZKML: the signature names the node; the proof is what covers the output)"
    else:
        note = ""
    recovered = recover_receipt_signer(settlement, document.receipt, document.signature)
    if recovered == document.receipt.signer:
        return Check("signature", True, f"signed by {recovered} for this contract and chain{note}")
    return Check("signature", False, f"recovers to {recovered}, not the receipt's signer {document.receipt.signer}")


def _output_check(document) -> Check:
    if document.response is None:
        return Check("output", None, "no response in the document: the output hash was not recomputed")
    try:
        manifest = manifest_from_response(document.response)
    except ManifestError as error:
        return Check("output", False, f"the response cannot be hashed: {error}")
    computed = manifest.output_hash()
    if computed == document.receipt.outputHash:
        return Check("output", True, f"the response (text, {len(manifest.images)} image(s), "
                                     f"{len(manifest.tool_calls)} tool call(s), usage) hashes to outputHash")
    return Check("output", False, f"the response hashes to 0x{computed.hex()}, not the receipt's outputHash: "
                                  "something was changed after signing")


def _zkml_check(models, document) -> Check:
    """ZKML: the instances hash to the receipt's hashes and the model's registered verifier accepts the proof."""
    r, evidence = document.receipt, document.zkml
    if evidence is None:
        return Check("proof", None, "no zkml proof in the document: the output was not checked against a proof")
    if instances_hash(evidence.inputs) != r.inputHash:
        return Check("proof", False, "the input instances do not hash to the receipt's inputHash")
    if instances_hash(evidence.outputs) != r.outputHash:
        return Check("proof", False, "the output instances do not hash to the receipt's outputHash")
    verifier = models.zkVerifierOf(r.modelId)
    if verifier == ZERO_ADDRESS:
        return Check("proof", False, f"model 0x{r.modelId.hex()} has no registered ZKML verifier")
    # EzklVerifierAdapter's ABI for verifyInference is IZkmlVerifier's, so it serves any registered verifier.
    holds = project.EzklVerifierAdapter.at(verifier).verifyInference(evidence.proof, evidence.inputs, evidence.outputs)
    if holds:
        return Check("proof", True, f"the model's verifier {verifier} accepts the proof of these instances")
    return Check("proof", False, f"the model's verifier {verifier} rejects the proof")


def _signer_check(tees, staking, r: Receipt) -> Check:
    if r.mode == Mode.TEE:
        active = tees.isActive(r.signer, r.timestamp)
        return Check("signer", active, f"TEE key {'was' if active else 'was not'} active at {r.timestamp} "
                                       "(approved measurement, enabled, fresh heartbeat, staked operator)")
    active = staking.isActiveOperator(r.signer, 0)
    return Check("signer", active, f"{'is' if active else 'is not'} an active staked inference node now "
                                   "(staking keeps no history, so this is judged now, not at the timestamp)")


def _policy_check(models, r: Receipt) -> Check:
    if not models.exists(r.modelId):
        return Check("model policy", False, f"model 0x{r.modelId.hex()} is not registered")
    if models.acceptsMode(r.modelId, int(r.mode)):
        return Check("model policy", True, f"the model accepts {r.mode.name} receipts and is not deprecated")
    if models.deprecatedAt(r.modelId):
        return Check("model policy", False, f"the model was deprecated at {models.deprecatedAt(r.modelId)}")
    return Check("model policy", False, f"the model's policy does not accept {r.mode.name}")


def _settlement_check(settlement, r: Receipt, report: Report) -> Check:
    out = settlement.verifiedOutput(r.requestId)
    report.status = Status(out.status)
    if report.status == Status.NONE:
        return Check("settlement", None, "not recorded on chain by requestId (a batch receipt may be unclaimed)")
    if report.status in (Status.REJECTED, Status.FAILED):
        why = "its batch was proven faulty" if report.status == Status.REJECTED else "its proof never came"
        return Check("settlement", False, f"{report.status.name}: {why}; never reported verified")
    try:
        settlement.requireVerifiedReceipt(r.as_args(), 0, False)
    except ContractLogicError:
        return Check("settlement", False, "the chain settled a different receipt under this requestId")
    return Check("settlement", report.status == Status.FINAL or None,
                 f"{report.status.name}" + (f" since {out.settledAt}" if out.settledAt else " (not final yet)"))


def _inclusion_check(settlement, document) -> Check:
    if document.signature is None:
        return Check("batch", False, "a batch leaf needs the signature it was committed with")
    leaf = (document.receipt.as_args(), document.signature, list(document.proof))
    included = settlement.isIncluded(document.batch_id, leaf)
    status = Status(settlement.batchStatus(document.batch_id))
    if not included:
        return Check("batch", False, f"not included in batch {document.batch_id} under this proof")
    ok = True if status == Status.FINAL else (None if status == Status.PENDING else False)
    return Check("batch", ok, f"included in batch {document.batch_id}, which is {status.name}")
