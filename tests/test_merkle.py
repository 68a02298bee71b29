"""opgkit.merkle is OpenZeppelin's StandardMerkleTree: same roots and proofs as @openzeppelin/merkle-tree."""

import json
import subprocess

import pytest
from hypothesis import given, strategies as st

from opgkit import PROJECT_ROOT
from opgkit.merkle import StandardMerkleTree, verify

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
