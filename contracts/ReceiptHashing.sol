// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceSettlement} from "../interfaces/IInferenceSettlement.sol";

/// @title Receipt hashing
/// @notice EIP-712 struct hashes of receipts and payment authorizations, and the Merkle leaf of a batched
/// receipt. The type strings are the single source the Python toolkit mirrors (`opgkit.receipts`).
library ReceiptHashing {
    bytes32 internal constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(bytes32 requestId,bytes32 modelId,bytes32 inputHash,bytes32 outputHash,uint8 mode,address signer,"
        "uint64 timestamp,address payer,uint256 price)"
    );
    bytes32 internal constant PAYMENT_TYPEHASH = keccak256(
        "PaymentAuthorization(address payer,bytes32 requestId,address node,bytes32 modelId,bytes32 inputHash,"
        "uint8 mode,uint256 maxAmount,uint64 deadline,uint256 nonce)"
    );

    /// @dev Every Receipt field is static, so `abi.encode` lays the struct out word by word, exactly as
    /// EIP-712's `encodeData` does (the enum as its uint8 value).
    function structHash(IInferenceSettlement.Receipt calldata receipt) internal pure returns (bytes32) {
        return keccak256(abi.encode(RECEIPT_TYPEHASH, receipt));
    }

    function structHash(IInferenceSettlement.PaymentAuthorization calldata authorization)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(PAYMENT_TYPEHASH, authorization));
    }

    /// @notice The leaf of a receipt and its signature in a batch tree, as OpenZeppelin's StandardMerkleTree
    /// hashes the value `[...receipt fields, signature]` with types
    /// `[bytes32, bytes32, bytes32, bytes32, uint8, address, uint64, address, uint256, bytes]`.
    function leaf(IInferenceSettlement.Receipt calldata receipt, bytes calldata signature)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(receipt, signature))));
    }
}
