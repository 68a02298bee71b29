"""opgkit.receipts off chain: signer recovery, field validation, authorizations, record hashes, ZKML binding,
batches."""

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from opgkit.receipt_verifier import recorded_hash
from opgkit.receipts import (
    Mode, PaymentAuthorization, Receipt, ReceiptBatch, SignedReceipt, instances_hash,
    leaf_is_included, recover_receipt_signer, sign_receipt,
)

NODE = Account.from_key(keccak(text="toolkit node"))


def make(label, **changes):
    values = dict(requestId=keccak(text=label), modelId=b"\x01" * 32, inputHash=b"\x02" * 32,
                  outputHash=b"\x03" * 32, mode=Mode.TEE, signer=NODE.address, timestamp=1_700_000_000)
    return Receipt(**(values | changes))


def test_recover_receipt_signer__signed_then_altered__only_original_recovers(settlement):
    r = make("recover")
    signature = sign_receipt(settlement, r, NODE.key)
    assert recover_receipt_signer(settlement, r, signature) == NODE.address
    assert recover_receipt_signer(settlement, r.with_changes(outputHash=b"\x04" * 32), signature) != NODE.address


def test_receipt__short_hash__refused_with_field_name():
    with pytest.raises(ValueError, match="outputHash must be 32 bytes"):
        make("short", outputHash=b"\x03" * 31)


def test_receipt__mode_as_int__normalised_and_addresses_checksummed():
    r = make("normalised", mode=2, signer=NODE.address.lower())
    assert r.mode is Mode.ZKML and r.signer == NODE.address
    assert r.as_args()[4] == 2


def test_authorization_for_receipt__names_the_payer_signer_model_input_and_mode_unless_told():
    r = make("authorized", payer="0x" + "22" * 20, price=7)
    auth = PaymentAuthorization.for_receipt(r, deadline=99)
    assert auth.as_args() == (r.payer, r.requestId, NODE.address, r.modelId, r.inputHash, int(r.mode), 7, 99, 0)
    operator = Account.from_key(keccak(text="toolkit operator")).address
    tee = PaymentAuthorization.for_receipt(r, 99, node=operator.lower(), max_amount=9, nonce=2)
    assert (tee.node, tee.maxAmount, tee.nonce) == (operator, 9, 2)


def test_recorded_hash__leading_24_bytes_of_the_struct_hash__what_the_record_keeps(settlement):
    r = make("recorded")
    type_hash = keccak(text="Receipt(bytes32 requestId,bytes32 modelId,bytes32 inputHash,bytes32 outputHash,"
                            "uint8 mode,address signer,uint64 timestamp,address payer,uint256 price)")
    struct_hash = keccak(encode(["bytes32", "bytes32", "bytes32", "bytes32", "bytes32", "uint8", "address", "uint64",
                                 "address", "uint256"], [type_hash, *r.as_args()]))
    assert recorded_hash(settlement, r) == struct_hash[:24]
    assert recorded_hash(settlement, r.with_changes(price=1)) != struct_hash[:24]


def test_instances_hash__is_keccak_of_abi_encoded_array():
    assert instances_hash([1, 2, 3]) == keccak(encode(["uint256[]"], [[1, 2, 3]]))
    assert instances_hash([1, 2, 3]) != instances_hash([1, 2])


def test_batch__leaf_and_lookup():
    signed = [SignedReceipt(make(f"leaf {i}"), bytes([i]) * 65) for i in range(5)]
    batch = ReceiptBatch(signed)
    index = batch.index_of(signed[3].receipt.requestId)
    receipt_args, signature, proof = batch.leaf(index)
    assert receipt_args == signed[3].receipt.as_args() and signature == signed[3].signature
    assert leaf_is_included(batch.root, signed[3], proof)
    assert not leaf_is_included(batch.root, SignedReceipt(signed[3].receipt, b"\x00" * 65), proof)
    with pytest.raises(KeyError, match="no receipt for request"):
        batch.index_of(b"\x09" * 32)
