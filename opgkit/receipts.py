"""Inference receipts and payment authorizations: build, sign, verify, batch.

The typed-data definitions mirror ``contracts/ReceiptHashing.sol`` field for field, and are hashed by the
``eip712`` library under the domain the settlement contract reports (ERC-5267), so a digest computed here
equals ``InferenceSettlement.receiptDigest`` on chain.

Batches are OpenZeppelin StandardMerkleTrees whose values are a receipt's fields followed by its signature.
In ZKML mode a receipt commits to ``keccak256(abi.encode(uint256[]))`` of the proof's input and output
instances instead of a request body and an output manifest (see ``IZkmlVerifier``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import IntEnum

from ape.utils import ZERO_ADDRESS
from eth_abi import encode
from eth_account import Account
from eth_account.messages import _hash_eip191_message
from eth_utils import keccak, to_checksum_address

from opgkit import receipt_typed_data as typed
from opgkit.merkle import StandardMerkleTree, verify
from opgkit.typed_data import domain_of, sign

LEAF_TYPES = ("bytes32", "bytes32", "bytes32", "bytes32", "uint8", "address", "uint64", "address", "uint256", "bytes")


class Mode(IntEnum):
    """``IModelRegistry.Mode``: how a receipt's output is covered, weakest first."""

    VANILLA = 0
    TEE = 1
    ZKML = 2


class Status(IntEnum):
    """``IInferenceSettlement.Status``."""

    NONE = 0
    PENDING = 1
    FINAL = 2
    REJECTED = 3
    FAILED = 4


class Fault(IntEnum):
    """``IBatchSettlement.Fault``: what a batch challenge proved."""

    NONE = 0
    BAD_SIGNATURE = 1
    SIGNER_INACTIVE = 2
    UNKNOWN_MODEL = 3
    MODEL_DEPRECATED = 4
    MODE_NOT_ACCEPTED = 5
    MODE_NOT_BATCHABLE = 6
    TIMESTAMP_OUT_OF_BOUNDS = 7


def _flat_values(record) -> tuple:
    """A flat dataclass's field values in order (``astuple`` would deep-copy each of them)."""
    return tuple(getattr(record, field.name) for field in fields(record))


@dataclass(frozen=True)
class Receipt:
    """A receipt's fields in contract order; ``as_args`` is the tuple contracts take."""

    requestId: bytes
    modelId: bytes
    inputHash: bytes
    outputHash: bytes
    mode: Mode
    signer: str
    timestamp: int
    payer: str = ZERO_ADDRESS
    price: int = 0

    def __post_init__(self):
        for name in ("requestId", "modelId", "inputHash", "outputHash"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise ValueError(f"receipt field {name} must be 32 bytes")
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "signer", to_checksum_address(self.signer))
        object.__setattr__(self, "payer", to_checksum_address(self.payer))

    def as_args(self) -> tuple:
        values = _flat_values(self)
        return (*values[:4], int(self.mode), *values[5:])

    def with_changes(self, **changes) -> "Receipt":
        return replace(self, **changes)

    def message(self, settlement) -> typed.Receipt:
        fields = dict(zip(typed.Receipt.model_fields, self.as_args()))
        return typed.Receipt(**fields, eip712_domain=domain_of(settlement))


@dataclass(frozen=True)
class PaymentAuthorization:
    """What ``payer`` signs to let ``node`` answer ``requestId`` with ``modelId`` on ``inputHash`` in ``mode`` for
    at most ``maxAmount``; ``for_receipt`` builds the one a receipt needs."""

    payer: str
    requestId: bytes
    node: str
    modelId: bytes
    inputHash: bytes
    mode: Mode
    maxAmount: int
    deadline: int
    nonce: int = 0

    def __post_init__(self):
        object.__setattr__(self, "payer", to_checksum_address(self.payer))
        object.__setattr__(self, "node", to_checksum_address(self.node))
        object.__setattr__(self, "mode", Mode(self.mode))

    @classmethod
    def for_receipt(cls, receipt: "Receipt", deadline: int, node: str | None = None, max_amount: int | None = None,
                    nonce: int = 0) -> "PaymentAuthorization":
        """The authorization ``receipt`` needs; ``node`` defaults to its signer (pass the operator for TEE)."""
        return cls(receipt.payer, receipt.requestId, node or receipt.signer, receipt.modelId, receipt.inputHash,
                   receipt.mode, receipt.price if max_amount is None else max_amount, deadline, nonce)

    def as_args(self) -> tuple:
        values = _flat_values(self)
        return (*values[:5], int(self.mode), *values[6:])

    def message(self, settlement) -> typed.PaymentAuthorization:
        fields = dict(zip(typed.PaymentAuthorization.model_fields, self.as_args()))
        return typed.PaymentAuthorization(**fields, eip712_domain=domain_of(settlement))


NO_AUTHORIZATION = (ZERO_ADDRESS, b"\x00" * 32, ZERO_ADDRESS, b"\x00" * 32, b"\x00" * 32, 0, 0, 0, 0)
"""The empty authorization argument, for calls made by the payer itself."""


PAYMENT_AUTHORIZATION_TYPES = ("address", "bytes32", "address", "bytes32", "bytes32", "uint8", "uint256", "uint64",
                               "uint256")


def contract_consent(authorization: PaymentAuthorization) -> bytes:
    """The "signature" ``InferenceRequests`` checks through ERC-1271 when it is the payer: the authorization
    itself, ABI-encoded (the contract consents by reading it against its open request, not by a key)."""
    return encode(list(PAYMENT_AUTHORIZATION_TYPES), list(authorization.as_args()))


def receipt_digest(settlement, receipt: Receipt) -> bytes:
    """The EIP-712 digest a node signs for ``receipt`` on ``settlement`` (an ape contract)."""
    return _hash_eip191_message(receipt.message(settlement).signable_message)


def payment_digest(settlement, authorization: PaymentAuthorization) -> bytes:
    return _hash_eip191_message(authorization.message(settlement).signable_message)


def sign_receipt(settlement, receipt: Receipt, private_key) -> bytes:
    """65-byte signature of ``receipt`` by ``private_key`` (the node's or TEE's key)."""
    return sign(receipt.message(settlement), private_key).packed


def sign_payment(settlement, authorization: PaymentAuthorization, private_key) -> bytes:
    """65-byte signature of ``authorization`` by the payer's key."""
    return sign(authorization.message(settlement), private_key).packed


def recover_receipt_signer(settlement, receipt: Receipt, signature: bytes) -> str:
    """The address that signed ``receipt`` (compare it with ``receipt.signer``)."""
    return Account.recover_message(receipt.message(settlement).signable_message, signature=signature)


def instances_hash(instances) -> bytes:
    """``keccak256(abi.encode(uint256[]))``: what a ZKML receipt's input or output hash commits to."""
    return keccak(encode(["uint256[]"], [list(instances)]))


def zkml_evidence(signature: bytes, proof: bytes, inputs, outputs) -> bytes:
    """Evidence for an individual ZKML settlement: the node's signature and the bound proof."""
    return encode(["bytes", "bytes", "uint256[]", "uint256[]"], [signature, proof, list(inputs), list(outputs)])


def zkml_proof_evidence(proof: bytes, inputs, outputs) -> bytes:
    """Evidence owed for an asynchronous ZKML result."""
    return encode(["bytes", "uint256[]", "uint256[]"], [proof, list(inputs), list(outputs)])


@dataclass(frozen=True)
class SignedReceipt:
    receipt: Receipt
    signature: bytes

    def leaf_value(self) -> tuple:
        return (*self.receipt.as_args(), self.signature)


class ReceiptBatch:
    """A batch of signed receipts as the relayer commits it: root, and each leaf with its proof."""

    def __init__(self, signed: list[SignedReceipt]) -> None:
        self.signed = list(signed)
        self.tree = StandardMerkleTree([s.leaf_value() for s in self.signed], LEAF_TYPES)

    @property
    def root(self) -> bytes:
        return self.tree.root

    def __len__(self) -> int:
        return len(self.signed)

    def leaf(self, index: int) -> tuple:
        """``IBatchSettlement.BatchLeaf`` of the ``index``-th receipt: (receipt, signature, proof)."""
        item = self.signed[index]
        return (item.receipt.as_args(), item.signature, self.tree.proof(index))

    def index_of(self, request_id: bytes) -> int:
        for index, item in enumerate(self.signed):
            if item.receipt.requestId == request_id:
                return index
        raise KeyError(f"no receipt for request 0x{request_id.hex()} in this batch")


def leaf_is_included(root: bytes, signed: SignedReceipt, proof) -> bool:
    return verify(root, LEAF_TYPES, signed.leaf_value(), proof)
