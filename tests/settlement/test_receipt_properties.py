"""Python and Solidity agree: receipt and payment digests for random values, batch trees verified on chain."""

import pytest
from hypothesis import given, settings, strategies as st

from opgkit.receipts import (
    Mode, PaymentAuthorization, Receipt, ReceiptBatch, SignedReceipt, payment_digest, receipt_digest,
)
from opgkit.testing import isolated_example

bytes32 = st.binary(min_size=32, max_size=32)
address = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
receipts = st.builds(
    Receipt, requestId=bytes32, modelId=bytes32, inputHash=bytes32, outputHash=bytes32,
    mode=st.sampled_from(list(Mode)), signer=address, timestamp=st.integers(0, 2**64 - 1), payer=address,
    price=st.integers(0, 2**256 - 1),
)
authorizations = st.builds(
    PaymentAuthorization, payer=address, requestId=bytes32, node=address, modelId=bytes32, inputHash=bytes32,
    mode=st.sampled_from(list(Mode)), maxAmount=st.integers(0, 2**256 - 1), deadline=st.integers(0, 2**64 - 1), nonce=st.integers(0, 2**256 - 1),
)


@settings(max_examples=40, deadline=None)
@pytest.mark.property
@given(receipt=receipts)
def test_receipt_digest__random_receipt__python_equals_contract(settlement, receipt):
    assert settlement.receiptDigest(receipt.as_args()) == receipt_digest(settlement, receipt)


@settings(max_examples=25, deadline=None)
@pytest.mark.property
@given(authorization=authorizations)
def test_payment_digest__random_authorization__python_equals_contract(settlement, authorization):
    assert settlement.paymentDigest(authorization.as_args()) == payment_digest(settlement, authorization)


@settings(max_examples=25, deadline=None)
@pytest.mark.property
@given(receipt=receipts)
def test_payment_authorization__for_random_receipt__binds_it_and_digests_agree(settlement, receipt):
    auth = PaymentAuthorization.for_receipt(receipt, deadline=123, nonce=4)
    assert (auth.payer, auth.requestId, auth.node, auth.modelId, auth.inputHash, auth.mode, auth.maxAmount,
            auth.deadline, auth.nonce) == (receipt.payer, receipt.requestId, receipt.signer, receipt.modelId,
                                           receipt.inputHash, receipt.mode, receipt.price, 123, 4)
    assert settlement.paymentDigest(auth.as_args()) == payment_digest(settlement, auth)


@settings(max_examples=8, deadline=None)
@pytest.mark.property
@given(batch_receipts=st.lists(receipts, min_size=1, max_size=20, unique_by=lambda r: r.requestId),
       signatures=st.lists(st.binary(min_size=65, max_size=65), min_size=20, max_size=20))
def test_batch_tree__random_leaves__every_proof_verifies_on_chain(batches, operator2, batch_receipts, signatures):
    batch = ReceiptBatch([SignedReceipt(r, s) for r, s in zip(batch_receipts, signatures)])
    with isolated_example():
        tx = batches.postBatch(batch.root, len(batch), "", sender=operator2)
        batch_id = tx.events.filter(batches.BatchPosted)[0].batchId
        for index in range(len(batch)):
            assert batches.isIncluded(batch_id, batch.leaf(index))
