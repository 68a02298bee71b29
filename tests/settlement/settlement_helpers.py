"""Constants and receipt builders for the settlement tests."""

from ape.utils import ZERO_ADDRESS
import hashlib

from eth_utils import keccak

from opgkit.deploy import DAY, OPG
from opgkit.manifest import OutputManifest
from opgkit.receipts import Mode, PaymentAuthorization, Receipt, instances_hash

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
