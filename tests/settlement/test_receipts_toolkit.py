"""opgkit.receipts off chain: signer recovery, field validation, ZKML binding, batches."""

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from opgkit.receipts import (
    Mode, Receipt, ReceiptBatch, SignedReceipt, instances_hash, leaf_is_included, recover_receipt_signer,
    sign_receipt,
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
