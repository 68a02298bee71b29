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

Fields other than these are ignored, so a document may carry more. A request is recorded in its payer's
namespace: the record of ``(payer, requestId)`` holds the leading 24 bytes of the receipt's EIP-712 struct
hash, the mode that was verified, its status and when it became final. A receipt without a payer (from a
document written before requests had one) can never have a record.

``verify_document`` runs every check it can and returns a ``Report``; nothing in it raises for a failing
check. ``ReceiptDocumentError`` is raised only for a document that cannot be read at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ape import project
from ape.utils import ZERO_ADDRESS
from eth_utils import is_address, is_hex, to_bytes

from opgkit.cli import UserError, read_json, shown
from opgkit.manifest import ManifestError, manifest_from_response
from opgkit.leaf_faults import Contracts, LeafJudge, recover_signer
from opgkit.receipts import Fault, Mode, Receipt, Status, instances_hash

COVERAGE = {
    Mode.VANILLA: (
        "signed by a node that was a staked inference node at the receipt's timestamp, slashable for provable "
        "misbehaviour",
        "no evidence that the node ran this model on this input: the answer is only signed, not proven",
    ),
    Mode.TEE: (
        "signed inside an enclave whose AWS Nitro attestation document the attestors verified (approved code "
        "measurement, live heartbeat) run by a staked operator",
        "trust in the enclave vendor's hardware and root CA, in the approved image's build and in a threshold of "
        "honest attestors; the input and output hashes are signed, their contents are not revealed on chain",
    ),
    Mode.ZKML: (
        "a proof, checked by the model's registered verifier, that the registered circuit maps the committed "
        "input instances to the committed output instances",
        "that the circuit faithfully encodes the published model; anything outside the public instances",
    ),
}
_BYTES32_FIELDS = ("requestId", "modelId", "inputHash", "outputHash")
RECORDED_HASH_BYTES = 24


class ReceiptDocumentError(UserError, ValueError):
    """The receipt document cannot be read; the message says which part and why."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (the document lacks what it needs)
    detail: str


@dataclass(frozen=True)
class Record:
    """``IInferenceSettlement.RecordView`` of one request."""

    status: Status
    mode: Mode
    settled_at: int
    receipt_hash: bytes

    @classmethod
    def read(cls, settlement, payer: str, request_id: bytes) -> "Record":
        view = settlement.recordOf(payer, request_id)
        return cls(Status(view.status), Mode(view.mode), int(view.settledAt), bytes(view.receiptHash))


@dataclass
class Report:
    """What was checked. ``claimed_mode`` is the receipt's mode; ``mode`` is the mode the chain verified, set
    only when the record is final and (with a document) is exactly this receipt."""

    receipt: Receipt | None
    request_id: bytes
    payer: str
    checks: list[Check] = field(default_factory=list)
    status: Status = Status.NONE
    claimed_mode: Mode | None = None
    mode: Mode | None = None
    record: Record | None = None

    @property
    def passed(self) -> bool:
        return all(check.ok is not False for check in self.checks)

    @property
    def verified(self) -> bool:
        """Every check held and the chain holds the request as final at ``mode``."""
        return self.passed and self.mode is not None

    def covers(self) -> tuple[str, str] | None:
        """What the verified mode covers and what it does not (the claimed mode's, before verification)."""
        mode = self.mode if self.mode is not None else self.claimed_mode
        return COVERAGE.get(mode) if mode is not None else None


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
        return Mode[value.upper() if value.isascii() else value] if isinstance(value, str) else Mode(
            _integer(value, "receipt.mode", 8))
    except (KeyError, ValueError) as error:
        raise ReceiptDocumentError(f"receipt.mode must be VANILLA, TEE or ZKML (or 0, 1, 2), not {value!r}") from error


def _integer(value, name: str, bits: int) -> int:
    """``value`` as an integer in [0, 2^bits): a JSON number without a fraction, or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise ReceiptDocumentError(f"{name} must be an integer, not {type(value).__name__}")
    try:
        if isinstance(value, str):
            number = int(value) if value.isascii() and value.isdigit() and len(value) <= 80 else None
        else:
            number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (ValueError, OverflowError):
        number = None
    if number is None or not 0 <= number < 2**bits:
        raise ReceiptDocumentError(f"{name} must be an integer from 0 to 2^{bits}-1, not {str(value)[:80]!r}")
    return number


def _address(value, name: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ReceiptDocumentError(f"{name} must be a 0x address (40 hex digits), not {str(value)[:80]!r}")
    return value


def _object(value, name: str, shape: str) -> dict:
    if not isinstance(value, dict):
        raise ReceiptDocumentError(f"{name} must be an object {shape}, not {type(value).__name__}")
    return value


def _list(value, name: str) -> list:
    if not isinstance(value, list):
        raise ReceiptDocumentError(f"{name} must be a list, not {type(value).__name__}")
    return value


def parse_document(data: dict) -> ReceiptDocument:
    """A receipt document from its JSON object; every field's type and range checked."""
    if not isinstance(data, dict) or not isinstance(data.get("receipt"), dict):
        raise ReceiptDocumentError('the document needs a "receipt" object')
    raw = data["receipt"]
    missing = [name for name in (*_BYTES32_FIELDS, "mode", "signer", "timestamp") if name not in raw]
    if missing:
        raise ReceiptDocumentError(f"receipt is missing {', '.join(missing)}")
    receipt = Receipt(
        **{name: _hex_bytes(raw[name], f"receipt.{name}", 32) for name in _BYTES32_FIELDS},
        mode=_mode(raw["mode"]),
        signer=_address(raw["signer"], "receipt.signer"),
        timestamp=_integer(raw["timestamp"], "receipt.timestamp", 64),
        payer=_address(raw.get("payer") or ZERO_ADDRESS, "receipt.payer"),
        price=_integer(raw.get("price", 0), "receipt.price", 256),
    )
    signature = _hex_bytes(data["signature"], "signature", 65) if data.get("signature") else None
    batch = _object(data.get("batch") or {}, "batch", '{"batchId": n, "proof": ["0x…", …]}')
    proof = tuple(_hex_bytes(node, "batch.proof[]", 32) for node in _list(batch.get("proof", []), "batch.proof"))
    batch_id = _integer(batch["batchId"], "batch.batchId", 256) if "batchId" in batch else None
    response = data.get("response")
    if response is not None:
        _object(response, "response", '{"text": …, "images": […], "tool_calls": […], "usage": {…}}')
    zkml = _zkml_evidence(data["zkml"]) if data.get("zkml") else None
    return ReceiptDocument(receipt, signature, batch_id, proof, response, zkml)


def _zkml_evidence(raw) -> ZkmlEvidence:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(key), list) for key in ("inputs", "outputs")):
        raise ReceiptDocumentError('zkml needs "proof" and the "inputs" and "outputs" instance lists')
    return ZkmlEvidence(_hex_bytes(raw.get("proof"), "zkml.proof"),
                        tuple(_integer(v, "zkml.inputs[]", 256) for v in raw["inputs"]),
                        tuple(_integer(v, "zkml.outputs[]", 256) for v in raw["outputs"]))


def load_document(path: Path) -> ReceiptDocument:
    """The receipt document in the file ``path`` (JSON, at most ``DOCUMENT_LIMIT`` bytes)."""
    return parse_document(read_json(path, "receipt document"))


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


def recorded_hash(settlement, receipt: Receipt) -> bytes:
    """What a record of ``receipt`` holds: the leading 24 bytes of its EIP-712 struct hash."""
    return receipt.message(settlement).signable_message.body[:RECORDED_HASH_BYTES]


def batch_settlement_of(settlement):
    """The ``BatchSettlement`` whose leaves ``settlement`` records, or None if it has none connected."""
    address = settlement.batchSettlement()
    return None if address == ZERO_ADDRESS else project.BatchSettlement.at(address)


def verify_document(settlement, tees, staking, models, document: ReceiptDocument, batches=None) -> Report:
    """Check ``document`` against the contracts (ape instances) and return what held and what did not.

    ``batches`` is the ``BatchSettlement`` to check a batched receipt's inclusion in (default: the one
    ``settlement`` records leaves from)."""
    r = document.receipt
    report = Report(receipt=r, request_id=r.requestId, payer=r.payer, claimed_mode=r.mode)
    # The judge the relayer and the watchtower use: signatures and signers checked exactly as the contracts do.
    judge = LeafJudge(settlement.provider.web3, Contracts(str(settlement.address), str(staking.address),
                                                          str(tees.address), str(models.address)))
    report.checks.append(_signature_check(judge, document))
    report.checks.append(_zkml_check(models, document) if r.mode == Mode.ZKML else _output_check(document))
    report.checks.append(_signer_check(judge, r))
    report.checks.append(_policy_check(models, r))
    report.checks.append(_settlement_check(settlement, r, report))
    if document.batch_id is not None:
        report.checks.append(_inclusion_check(batches or batch_settlement_of(settlement), document))
    return report


def verify_request(settlement, payer: str, request_id: bytes) -> Report:
    """What the chain records for ``request_id`` in ``payer``'s namespace when no receipt is at hand."""
    record = Record.read(settlement, payer, request_id)
    report = Report(receipt=None, request_id=request_id, payer=payer, status=record.status, record=record)
    if record.status == Status.NONE:
        report.checks.append(Check("settlement", False, f"never settled on this contract for payer {payer}"))
        return report
    report.claimed_mode = record.mode
    if record.status == Status.FINAL:
        report.mode = record.mode
    detail = (f"{_status_text(settlement, payer, request_id, record)}; recorded receipt hash "
              f"0x{record.receipt_hash.hex()} (the record keeps only this: check the receipt document itself to see "
              "what was answered)")
    report.checks.append(Check("settlement", _status_ok(record.status), detail))
    return report


def _status_ok(status: Status) -> bool | None:
    return True if status == Status.FINAL else (None if status == Status.PENDING else False)


def _status_text(settlement, payer: str, request_id: bytes, record: Record) -> str:
    """The record's status in words, and what it means for the mode on it."""
    mode = record.mode.name
    if record.status == Status.FINAL:
        return f"FINAL since {record.settled_at}, mode {mode} verified"
    if record.status == Status.REJECTED:
        return (f"REJECTED: its batch was proven faulty, so mode {mode} was never verified (the request may be "
                "recorded again)")
    custody = settlement.custodyOf(payer, request_id)
    if record.status == Status.PENDING:
        if custody.node != ZERO_ADDRESS:
            return (f"PENDING: posted before its evidence; {custody.node} owes the {mode} evidence by the proof "
                    "deadline, and until it is delivered nothing is verified")
        return f"PENDING: recorded from a batch still open to challenges; mode {mode} not final yet"
    if custody.node != ZERO_ADDRESS:
        return (f"FAILED: the {mode} evidence was not delivered by its deadline (an overdue pending result reads "
                f"FAILED at once); not reported yet: reportMissedProof({payer}, 0x{request_id.hex()}) slashes "
                f"{custody.node} and refunds the payer")
    return f"FAILED: the {mode} evidence was not delivered by its deadline; the node was slashed and the payer refunded"


def _signature_check(judge: LeafJudge, document) -> Check:
    if document.signature is None:
        return Check("signature", None, "no signature in the document")
    if document.receipt.mode == Mode.ZKML:
        note = " (ZKML: the signature names the node; the proof is what covers the output)"
    else:
        note = ""
    recovered = recover_signer(judge.receipt_digest(document.receipt), document.signature)
    if recovered is None:
        return Check("signature", False, "not a signature the contract accepts (65 bytes, s in the lower half of the "
                                         "curve order, v 27 or 28, recoverable)")
    if recovered == document.receipt.signer:
        return Check("signature", True, f"signed by {recovered} for this contract and chain{note}")
    return Check("signature", False, f"recovers to {recovered}, not the receipt's signer {document.receipt.signer}")


def _output_check(document) -> Check:
    if document.response is None:
        return Check("output", None, "no response in the document: the output hash was not recomputed")
    try:
        manifest = manifest_from_response(document.response)
        computed = manifest.output_hash()
    except (ManifestError, ValueError, TypeError, AttributeError, OverflowError, MemoryError, RecursionError) as error:
        return Check("output", False, f"the response cannot be hashed: {shown(error)}")
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


def _signer_check(judge: LeafJudge, r: Receipt) -> Check:
    active = judge.signer_was_active(r)
    if r.mode == Mode.TEE:
        return Check("signer", active, f"TEE key {'was' if active else 'was not'} active at {r.timestamp} "
                                       "(approved measurement, enabled, fresh heartbeat, staked operator)")
    return Check("signer", active, f"{'was' if active else 'was not'} an active staked inference node at "
                                   f"{r.timestamp}")


def _policy_check(models, r: Receipt) -> Check:
    if not models.exists(r.modelId):
        return Check("model policy", False, f"model 0x{r.modelId.hex()} is not registered")
    if not models.policyAccepts(r.modelId, int(r.mode)):
        return Check("model policy", False, f"the model's policy does not accept {r.mode.name}")
    deprecated_at = models.deprecatedAt(r.modelId)
    if not deprecated_at:
        return Check("model policy", True, f"the model accepts {r.mode.name} receipts and is not deprecated")
    if r.timestamp < deprecated_at:
        return Check("model policy", True, f"the model accepts {r.mode.name} receipts; deprecated at "
                                           f"{deprecated_at}, after this receipt")
    return Check("model policy", False, f"the model was deprecated at {deprecated_at}, before this receipt")


def _settlement_check(settlement, r: Receipt, report: Report) -> Check:
    if r.payer == ZERO_ADDRESS:
        return Check("settlement", False, "the receipt names no payer: every request is recorded under its payer, "
                                          "so this receipt can have no record")
    record = Record.read(settlement, r.payer, r.requestId)
    report.record, report.status = record, record.status
    if record.status == Status.NONE:
        return Check("settlement", None, f"no record of this request for payer {r.payer} (a batched receipt may be "
                                         "unclaimed)")
    if record.receipt_hash != recorded_hash(settlement, r):
        return Check("settlement", False, f"{record.status.name}: the record under this payer and requestId is of "
                                          f"a different receipt (hash 0x{record.receipt_hash.hex()})")
    if record.status == Status.FINAL:
        report.mode = record.mode
    return Check("settlement", _status_ok(record.status), _status_text(settlement, r.payer, r.requestId, record))


def _inclusion_check(batches, document) -> Check:
    batch_id = document.batch_id
    if batches is None:
        return Check("batch", False, "the settlement contract has no batch settlement connected")
    if document.signature is None:
        return Check("batch", False, "a batch leaf needs the signature it was committed with")
    status = Status(batches.batchStatus(batch_id))
    if status == Status.NONE:
        return Check("batch", False, f"batch {batch_id} was never posted to {batches.address}")
    leaf = (document.receipt.as_args(), document.signature, list(document.proof))
    if not batches.isIncluded(batch_id, leaf):
        return Check("batch", False, f"not included in batch {batch_id} under this proof")
    fault = Fault(batches.faultOf(batch_id, leaf))
    where = f"included in batch {batch_id}, which is {status.name}"
    if status == Status.PENDING:
        deadline = batches.batch(batch_id).challengeDeadline
        if fault != Fault.NONE:
            return Check("batch", False,
                         f"{where}, and faulty ({fault.name}): anyone may challenge it until {deadline}")
        return Check("batch", None, f"{where}: open to challenges until {deadline}")
    if status != Status.FINAL:
        return Check("batch", False, where)
    if fault != Fault.NONE:
        return Check("batch", False, f"{where}, but the leaf is faulty ({fault.name}): nobody proved it in time")
    return Check("batch", True, f"{where} (optimistic: final because no fault was proven in its challenge "
                                "window; this leaf has none)")
