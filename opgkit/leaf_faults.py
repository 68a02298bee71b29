"""A batch leaf's fault, judged in Python exactly as ``BatchSettlement.faultOf`` judges it.

One judge serves the relayer (nothing faulty enters a batch), the watchtower (every leaf of every posted batch
is checked, the first fault challenged) and ``receipts verify`` (signature and signer checks). It reads the
same histories the contract reads, at the receipt's timestamp, so its verdict is the contract's; the
watchtower still asks ``faultOf`` on chain before it spends gas on a challenge.

Reads go straight to the node as ``eth_call`` with pre-encoded calldata, and the answers that cannot change
(a model's registration, policy and deprecation; a signer's activity at a past second) are cached, so a
1,024-leaf batch costs one call per distinct (signer, timestamp) and a few per model.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode, encode
from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import function_signature_to_4byte_selector, keccak

from opgkit.receipts import Fault, Mode, Receipt

SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
RECEIPT_TYPEHASH = keccak(
    b"Receipt(bytes32 requestId,bytes32 modelId,bytes32 inputHash,bytes32 outputHash,uint8 mode,address signer,"
    b"uint64 timestamp,address payer,uint256 price)"
)
_RECEIPT_TYPES = ["bytes32", "bytes32", "bytes32", "bytes32", "bytes32", "uint8", "address", "uint64", "address",
                  "uint256"]
INFERENCE_NODE_ROLE = 0


def receipt_struct_hash(receipt: Receipt) -> bytes:
    """EIP-712 ``hashStruct`` of a receipt (``ReceiptHashing.structHash``)."""
    return keccak(encode(_RECEIPT_TYPES, [RECEIPT_TYPEHASH, *receipt.as_args()]))


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The address OpenZeppelin's ``ECDSA.tryRecover`` returns for ``signature`` over ``digest``, or None where it
    reports an error: not 65 bytes, ``s`` in the upper half of the curve order, ``v`` other than 27/28, or a
    signature ``ecrecover`` rejects."""
    if len(signature) != 65:
        return None
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if s > SECP256K1_HALF_N or v not in (27, 28):
        return None
    try:
        public_key = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValueError):
        return None
    return public_key.to_checksum_address()


@dataclass(frozen=True)
class Contracts:
    """The addresses a judge reads (ape contract instances or addresses)."""

    settlement: str
    staking: str
    tees: str
    models: str
    batches: str | None = None

    @classmethod
    def of(cls, settlement) -> "Contracts":
        """The contracts ``settlement`` (an ape InferenceSettlement) is wired to."""
        batches = settlement.batchSettlement()
        return cls(str(settlement.address), str(settlement.staking()), str(settlement.teeRegistry()),
                   str(settlement.models()), None if int(batches, 16) == 0 else str(batches))


class LeafJudge:
    """``faultOf`` in Python over a web3 connection: same order of checks, same histories, same answer."""

    def __init__(self, web3, contracts: Contracts) -> None:
        self.web3 = web3
        self.contracts = contracts
        self._domain_separator: bytes | None = None
        self._cache: dict[tuple, object] = {}

    # ------------------------------------------------------------ reads

    def _call(self, to: str, signature: str, types: list[str], args: list, returns: str):
        key = (to, signature, *args)
        if key in self._cache:
            return self._cache[key]
        data = function_signature_to_4byte_selector(signature) + encode(types, args)
        (value,) = decode([returns], bytes(self.web3.eth.call({"to": to, "data": data})))
        self._cache[key] = value
        return value

    def domain_separator(self) -> bytes:
        """The settlement's EIP-712 domain separator, read once (``eip712Domain``, ERC-5267)."""
        if self._domain_separator is None:
            data = function_signature_to_4byte_selector("eip712Domain()")
            raw = bytes(self.web3.eth.call({"to": self.contracts.settlement, "data": data}))
            _, name, version, chain_id, verifying, _, _ = decode(
                ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"], raw)
            domain_type = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
            self._domain_separator = keccak(encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [domain_type, keccak(name.encode()), keccak(version.encode()), chain_id, verifying]))
        return self._domain_separator

    def receipt_digest(self, receipt: Receipt) -> bytes:
        """What the signer signs (``InferenceSettlement.receiptDigest``)."""
        return keccak(b"\x19\x01" + self.domain_separator() + receipt_struct_hash(receipt))

    def signed_by_signer(self, receipt: Receipt, signature: bytes) -> bool:
        return recover_signer(self.receipt_digest(receipt), signature) == receipt.signer

    def signer_was_active(self, receipt: Receipt) -> bool:
        """The signer's activity at the receipt's timestamp: a TEE key in the TEE registry's history, any other
        signer as a staked inference node in the staking history."""
        if receipt.mode == Mode.TEE:
            return self._call(self.contracts.tees, "isActive(address,uint256)", ["address", "uint256"],
                              [receipt.signer, receipt.timestamp], "bool")
        return self._call(self.contracts.staking, "wasActiveOperator(address,uint8,uint256)",
                          ["address", "uint8", "uint256"], [receipt.signer, INFERENCE_NODE_ROLE, receipt.timestamp],
                          "bool")

    def model_times(self, model_id: bytes) -> tuple[int, int]:
        """(registeredAt, deprecatedAt) of a model; zero for never. Not cached: a deprecation may come later."""
        read = lambda name: decode(["uint256"], bytes(self.web3.eth.call({  # noqa: E731
            "to": self.contracts.models, "data": function_signature_to_4byte_selector(f"{name}(bytes32)") + model_id})))[0]
        return read("registeredAt"), read("deprecatedAt")

    def policy_accepts(self, model_id: bytes, mode: Mode) -> bool:
        return self._call(self.contracts.models, "policyAccepts(bytes32,uint8)", ["bytes32", "uint8"],
                          [model_id, int(mode)], "bool")

    def max_receipt_age_at(self, posted_at: int) -> int:
        if self.contracts.batches is None:
            raise ValueError("the settlement has no batch settlement connected")
        return self._call(self.contracts.batches, "maxReceiptAgeAt(uint256)", ["uint256"], [posted_at], "uint256")

    # ------------------------------------------------------------ the verdict

    def fault_of(self, receipt: Receipt, signature: bytes, posted_at: int, max_age: int | None = None,
                 models: dict | None = None, signature_checked: bool = False) -> Fault:
        """The first fault of a leaf in a batch posted at ``posted_at``, in ``faultOf``'s order.

        ``max_age`` is the receipt age limit in force before the posting (read when omitted); ``models`` caches
        model times for one batch (a model's deprecation is final once it is in the past); ``signature_checked``
        skips the signature (the caller checked it over another timestamp)."""
        if receipt.mode == Mode.ZKML:
            return Fault.MODE_NOT_BATCHABLE
        if max_age is None:
            max_age = self.max_receipt_age_at(posted_at)
        timestamp = receipt.timestamp
        if timestamp >= posted_at or posted_at - timestamp > max_age:
            return Fault.TIMESTAMP_OUT_OF_BOUNDS
        if not signature_checked and not self.signed_by_signer(receipt, signature):
            return Fault.BAD_SIGNATURE
        if not self.signer_was_active(receipt):
            return Fault.SIGNER_INACTIVE
        models = {} if models is None else models
        if receipt.modelId not in models:
            models[receipt.modelId] = self.model_times(receipt.modelId)
        registered_at, deprecated_at = models[receipt.modelId]
        if registered_at == 0 or registered_at > timestamp:
            return Fault.UNKNOWN_MODEL
        if deprecated_at != 0 and deprecated_at < timestamp:
            return Fault.MODEL_DEPRECATED
        if not self.policy_accepts(receipt.modelId, receipt.mode):
            return Fault.MODE_NOT_ACCEPTED
        return Fault.NONE
