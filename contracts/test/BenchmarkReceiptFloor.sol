// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IInferenceSettlement} from "../../interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "../../interfaces/IModelRegistry.sol";
import {ReceiptHashing} from "../ReceiptHashing.sol";

/// @title Gas-benchmark anchor: the floor of recording one signed receipt
/// @notice Never deployed by the deploy script. `make gas` measures it beside `InferenceSettlement`, in the same
/// run, with the same compiler settings and the same calldata layout, so the table shows what settlement costs
/// above the part of recording a receipt that no design avoids: the receipt's EIP-712 digest (the `Receipt`
/// type of `ReceiptHashing`), one ecrecover, one new storage slot in the payer's namespace, one event. It reads
/// no registry, judges no signer active and takes no payment; its two guards (the payer submits, each request
/// once) add no storage access.
contract BenchmarkReceiptFloor is EIP712 {
    mapping(bytes32 key => bytes32 receiptHash) private _records;

    /// @dev Same fields and indexing as `IInferenceSettlement.ReceiptSettled`.
    event ReceiptRecorded(
        bytes32 indexed requestId,
        address indexed payer,
        bytes32 indexed modelId,
        IModelRegistry.Mode mode,
        bytes32 outputHash,
        address signer
    );

    error BenchmarkReceiptFloorNotPayer(address caller, address payer);
    error BenchmarkReceiptFloorAlreadyRecorded(address payer, bytes32 requestId);
    error BenchmarkReceiptFloorBadSignature(address signer);

    constructor() EIP712("BenchmarkReceiptFloor", "1") {}

    /// @notice Record `receipt`, signed by its signer under this contract's domain, in its payer's namespace.
    function record(IInferenceSettlement.Receipt calldata receipt, bytes calldata signature) external {
        if (msg.sender != receipt.payer) revert BenchmarkReceiptFloorNotPayer(msg.sender, receipt.payer);
        bytes32 key = _keyOf(receipt.payer, receipt.requestId);
        if (_records[key] != 0) revert BenchmarkReceiptFloorAlreadyRecorded(receipt.payer, receipt.requestId);
        bytes32 receiptHash = ReceiptHashing.structHash(receipt);
        (address recovered, ECDSA.RecoverError error,) =
            ECDSA.tryRecoverCalldata(_hashTypedDataV4(receiptHash), signature);
        if (error != ECDSA.RecoverError.NoError || recovered != receipt.signer) {
            revert BenchmarkReceiptFloorBadSignature(receipt.signer);
        }
        _records[key] = receiptHash;
        emit ReceiptRecorded(
            receipt.requestId, receipt.payer, receipt.modelId, receipt.mode, receipt.outputHash, receipt.signer
        );
    }

    /// @notice The EIP-712 struct hash recorded for `requestId` in `payer`'s namespace (zero if none).
    function recordOf(address payer, bytes32 requestId) external view returns (bytes32) {
        return _records[_keyOf(payer, requestId)];
    }

    function _keyOf(address payer, bytes32 requestId) private pure returns (bytes32) {
        return keccak256(abi.encode(payer, requestId));
    }
}
