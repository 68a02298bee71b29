"""opgkit.merkle is OpenZeppelin's StandardMerkleTree: same roots and proofs as @openzeppelin/merkle-tree."""

import json
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from opgkit import PROJECT_ROOT
from opgkit.merkle import StandardMerkleTree, verify
from opgkit.receipts import LEAF_TYPES

TYPES = ["bytes32", "address", "uint256"]
REFERENCE = PROJECT_ROOT / "tests" / "tools" / "oz_merkle_tree.js"

leaf = st.tuples(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    st.integers(min_value=0, max_value=2**256 - 1),
)


def reference_tree(values):
    payload = {"types": TYPES, "values": [["0x" + v[0].hex(), v[1], str(v[2])] for v in values]}
    result = subprocess.run(["node", str(REFERENCE)], input=json.dumps(payload), capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    return json.loads(result.stdout)


@given(values=st.lists(leaf, min_size=1, max_size=40, unique_by=lambda v: v[0]))
def test_tree__random_leaves__matches_openzeppelin_merkle_tree(values):
    tree = StandardMerkleTree(values, TYPES)
    reference = reference_tree(values)
    assert "0x" + tree.root.hex() == reference["root"]
    for index, value in enumerate(values):
        proof = tree.proof(index)
        assert ["0x" + p.hex() for p in proof] == reference["proofs"][index]
        assert verify(tree.root, TYPES, value, proof)


def test_verify__altered_value__fails():
    values = [(bytes([i]) * 32, "0x" + "11" * 20, i) for i in range(5)]
    tree = StandardMerkleTree(values, TYPES)
    assert not verify(tree.root, TYPES, (bytes([9]) * 32, "0x" + "11" * 20, 2), tree.proof(2))


def test_tree__no_leaves__refused():
    with pytest.raises(ValueError, match="at least one leaf"):
        StandardMerkleTree([], TYPES)


receipt_leaf = st.tuples(
    st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32), st.integers(0, 2), st.binary(min_size=20, max_size=20),
    st.integers(0, 2**64 - 1), st.binary(min_size=20, max_size=20), st.integers(0, 2**256 - 1),
    st.binary(min_size=65, max_size=65),
)


def _json_value(kind, value):
    if kind in ("address",) or kind.startswith("bytes"):
        return "0x" + value.hex()
    return str(value)


@settings(max_examples=20, deadline=None)
@given(values=st.lists(receipt_leaf, min_size=1, max_size=24, unique_by=lambda v: v[0]))
def test_tree__random_receipt_leaves__matches_openzeppelin_merkle_tree(values):
    """The batch leaf layout (receipt fields and signature) hashes as @openzeppelin/merkle-tree does."""
    values = [tuple("0x" + v.hex() if i in (5, 7) else v for i, v in enumerate(value)) for value in values]
    tree = StandardMerkleTree(values, LEAF_TYPES)
    payload = {"types": list(LEAF_TYPES),
               "values": [[_json_value(t, bytes.fromhex(v[2:]) if t == "address" else v)
                           for t, v in zip(LEAF_TYPES, value)] for value in values]}
    result = subprocess.run(["node", str(REFERENCE)], input=json.dumps(payload), capture_output=True, text=True,
                            cwd=PROJECT_ROOT, check=True)
    reference = json.loads(result.stdout)
    assert "0x" + tree.root.hex() == reference["root"]
    assert [["0x" + p.hex() for p in tree.proof(i)] for i in range(len(values))] == reference["proofs"]
