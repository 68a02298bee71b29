"""Constants and receipt builders for the settlement tests."""

import ape
from ape.utils import ZERO_ADDRESS
import hashlib
import re
from contextlib import contextmanager

from eth_abi import encode
from eth_utils import keccak

from opgkit.deploy import DAY, OPG
from opgkit.manifest import OutputManifest
from opgkit.receipts import Mode, PaymentAuthorization, Receipt, ReceiptBatch, SignedReceipt, instances_hash
from opgkit.inprocess.contracts import ErrorType
from opgkit.testing import reverts

HOUR = 3_600
CHALLENGE_WINDOW = HOUR
PROOF_WINDOW = HOUR
MAX_RECEIPT_AGE = DAY
PRICE = 2 * OPG
NITRO = 1
PCR = hashlib.sha256(b"enclave image v1").digest()
TLS_CERT_HASH = hashlib.sha256(b"tls certificate").digest()
INFERENCE_BIT, TEE_BIT, RELAYER_BIT = 1, 2, 4
MODE_BITS = {Mode.VANILLA: 1, Mode.TEE: 2, Mode.ZKML: 4}
ZERO32 = b"\x00" * 32
# The re-execution verifier's model: outputs = W x + b, 3 inputs, 2 outputs.
ZK_WEIGHTS = [2, 0, 1, 1, 3, 0]
ZK_BIASES = [5, 7]
ZK_INPUT_COUNT = 3


def zk_outputs(inputs):
    return [
        ZK_BIASES[j] + sum(ZK_WEIGHTS[j * ZK_INPUT_COUNT + i] * x for i, x in enumerate(inputs))
        for j in range(len(ZK_BIASES))
    ]


def request_id(label) -> bytes:
    return keccak(text=f"request {label}")


def answer_hash(text: str) -> bytes:
    return OutputManifest(text=text).output_hash()


def model_spec(label, allowed, minimum=Mode.VANILLA, price=PRICE, parent=ZERO32, royalty_bps=0, verifier=ZERO_ADDRESS,
               same_family=False):
    zk = any(mode == Mode.ZKML for mode in allowed)
    return dict(
        contentHash=hashlib.sha256(f"model blob {label}".encode()).digest(),
        uri=f"ipfs://{label}",
        price=price,
        allowedModes=sum(MODE_BITS[m] for m in allowed),
        minimumMode=int(minimum),
        parent=parent,
        sameFamily=same_family,
        royaltyBps=royalty_bps,
        zkVerifier=verifier if zk else ZERO_ADDRESS,
        verifyingKeyDigest=keccak(text=f"vk {label}") if zk else ZERO32,
    )


def receipt(label, model_id, signer, timestamp, mode=Mode.VANILLA, payer=ZERO_ADDRESS, price=0, text=None,
            input_hash=None, output_hash=None) -> Receipt:
    return Receipt(
        requestId=request_id(label),
        modelId=model_id,
        inputHash=input_hash or keccak(text=f"input {label}"),
        outputHash=output_hash or answer_hash(text if text is not None else f"answer {label}"),
        mode=mode,
        signer=signer,
        timestamp=timestamp,
        payer=payer,
        price=price,
    )


def zk_receipt(label, model_id, signer, timestamp, inputs, outputs=None, **kwargs) -> Receipt:
    outputs = zk_outputs(inputs) if outputs is None else outputs
    return receipt(label, model_id, signer, timestamp, mode=Mode.ZKML, input_hash=instances_hash(inputs),
                   output_hash=instances_hash(outputs), **kwargs)


def authorization(r: Receipt, max_amount=None, deadline=2**63, nonce=0, node=None) -> PaymentAuthorization:
    """The payer's authorization for ``r``: ``node`` defaults to the signer (pass the operator for a TEE)."""
    return PaymentAuthorization.for_receipt(r, deadline, node=node, max_amount=max_amount, nonce=nonce)


__all__ = [
    "CHALLENGE_WINDOW", "DAY", "HOUR", "INFERENCE_BIT", "MAX_RECEIPT_AGE", "MODE_BITS", "Mode",
    "NITRO", "OPG", "PCR", "PRICE", "PROOF_WINDOW", "RELAYER_BIT", "TEE_BIT",
    "TLS_CERT_HASH", "ZERO32", "ZERO_ADDRESS", "ZK_BIASES", "ZK_INPUT_COUNT", "ZK_WEIGHTS", "answer_hash",
    "authorization", "model_spec", "receipt", "request_id", "zk_outputs", "zk_receipt",
]


def recorded_hash(settlement, r: Receipt) -> bytes:
    """What ``recordOf(...).receiptHash`` holds for ``r``: the leading 24 bytes of its EIP-712 struct hash."""
    return r.message(settlement).signable_message.body[:24]


def missed_proof_evidence_id(settlement, payer: str, request: bytes) -> bytes:
    """The slashing evidence id of a missed proof for ``request`` in ``payer``'s namespace."""
    key = keccak(encode(["address", "bytes32"], [payer, request]))
    return keccak(encode(["uint256", "address", "string", "bytes32"],
                         [settlement.provider.chain_id, settlement.address, "missed-proof", key]))


__all__ += ["missed_proof_evidence_id", "recorded_hash"]


def signed_batch(sign, items) -> ReceiptBatch:
    """A batch of ``(receipt, signer)`` items, each signed by its signer with ``sign`` (the conftest fixture), or
    ``(receipt, None, signature)`` to put a given signature in the leaf."""
    signed = []
    for item in items:
        r, signer = item[0], item[1]
        signed.append(SignedReceipt(r, item[2] if len(item) > 2 else sign(r, signer)))
    return ReceiptBatch(signed)


def post_batch(batches, batch: ReceiptBatch, relayer, data_uri="ipfs://batch") -> int:
    """Post ``batch`` on ``batches`` as ``relayer``; returns its batch id."""
    tx = batches.postBatch(batch.root, len(batch), data_uri, sender=relayer)
    return tx.events.filter(batches.BatchPosted)[0].batchId


def funds_of(settlement, token, account) -> int:
    """What ``account`` holds for paying: its wallet and its escrow on ``settlement``."""
    return token.balanceOf(account) + settlement.escrowOf(account)


def _revert_data(exception) -> bytes | None:
    """The raw revert data of an exception ape could not decode, from its message."""
    message = str(exception.revert_message or "")
    found = re.fullmatch(r"(?:custom error )?0x([0-9a-fA-F]{8}):?\s*([0-9a-fA-F]*)", message)
    return bytes.fromhex(found[1] + found[2]) if found else None


@contextmanager
def reverts_exactly(error, **inputs):
    """``ape.reverts(error, **inputs)``, stricter: the revert must be ``error`` with these inputs. ape decodes a
    custom error raised in a nested call only when the reverting contract is the last one the transaction
    touched, and lets a revert it could not decode pass; this decodes such a revert with ``error``'s ABI. Every
    named input must exist on ``error``. (In-process, every revert is decoded by selector: already exact.)"""
    if isinstance(error, ErrorType):
        missing = {name for name in inputs} - {item.name for item in error.abi.inputs}
        assert not missing, f"{error.name} has no input named {', '.join(sorted(missing))}"
        with reverts(error, **inputs) as info:
            yield info
        return
    with reverts(error, **inputs) as info:
        yield info
    exception = info.value
    if isinstance(exception, error):
        actual = exception.inputs
    else:
        data = _revert_data(exception)
        assert data is not None and data[:4] == keccak(text=error.abi.selector)[:4], \
            f"expected {error.abi.signature}, got {exception!r}"
        actual = ape.chain.provider.network.ecosystem.decode_calldata(error.abi, data[4:])
    missing = set(inputs) - set(actual)
    assert not missing, f"{error.__name__} has no input named {', '.join(sorted(missing))}"
    wrong = {name: actual[name] for name, expected in inputs.items() if actual[name] != expected}
    assert not wrong, f"{error.__name__} reverted with {wrong}, expected {inputs}"


__all__ += ["funds_of", "post_batch", "reverts_exactly", "signed_batch"]
