"""OpenZeppelin's StandardMerkleTree, in Python: same leaf hashing, tree layout, root and proofs.

Leaves are ``keccak256(keccak256(abi.encode(values)))``; inner nodes hash their two children sorted; leaves
are sorted by hash before the tree is laid out in an array (children of ``i`` at ``2i+1`` and ``2i+2``).
Roots and proofs therefore match ``@openzeppelin/merkle-tree`` exactly and verify with OpenZeppelin's
``MerkleProof``. Used for batches of inference receipts.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_utils import keccak


def leaf_hash(types: Sequence[str], values: Sequence) -> bytes:
    """The double-hashed leaf of one value tuple."""
    return keccak(keccak(encode(list(types), list(values))))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


class StandardMerkleTree:
    """A tree over ``values`` (tuples ABI-encoded as ``types``)."""

    def __init__(self, values: Sequence[Sequence], types: Sequence[str], sort_leaves: bool = True) -> None:
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.types = list(types)
        self.values = [tuple(v) for v in values]
        hashed = [(leaf_hash(self.types, value), index) for index, value in enumerate(self.values)]
        if sort_leaves:
            hashed.sort(key=lambda item: item[0])
        size = 2 * len(hashed) - 1
        self._tree: list[bytes] = [b""] * size
        self._tree_index: dict[int, int] = {}
        for position, (digest, value_index) in enumerate(hashed):
            self._tree[size - 1 - position] = digest
            self._tree_index[value_index] = size - 1 - position
        for node in range(size - 1 - len(hashed), -1, -1):
            self._tree[node] = hash_pair(self._tree[2 * node + 1], self._tree[2 * node + 2])

    @property
    def root(self) -> bytes:
        return self._tree[0]

    def proof(self, value_index: int) -> list[bytes]:
        """Sibling hashes from the leaf of ``values[value_index]`` up to (not including) the root."""
        node = self._tree_index[value_index]
        path = []
        while node > 0:
            sibling = node + 1 if node % 2 == 1 else node - 1
            path.append(self._tree[sibling])
            node = (node - 1) // 2
        return path


def verify(root: bytes, types: Sequence[str], value: Sequence, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows ``value`` is a leaf of the tree with ``root`` (as OpenZeppelin's MerkleProof)."""
    node = leaf_hash(types, value)
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root
