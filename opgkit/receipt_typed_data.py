"""EIP-712 types of the settlement contract, named as in Solidity (the class name is the type name)."""

from eip712.messages import EIP712Message
from eth_pydantic_types import abi


class Receipt(EIP712Message):
    """``Receipt`` of ``contracts/ReceiptHashing.sol``, field for field."""

    requestId: abi.bytes32
    modelId: abi.bytes32
    inputHash: abi.bytes32
    outputHash: abi.bytes32
    mode: abi.uint8
    signer: abi.address
    timestamp: abi.uint64
    payer: abi.address
    price: abi.uint256


class PaymentAuthorization(EIP712Message):
    """``PaymentAuthorization`` of ``contracts/ReceiptHashing.sol``, field for field."""

    payer: abi.address
    requestId: abi.bytes32
    node: abi.address
    modelId: abi.bytes32
    inputHash: abi.bytes32
    mode: abi.uint8
    maxAmount: abi.uint256
    deadline: abi.uint64
    nonce: abi.uint256
