// Reference: build an OpenZeppelin StandardMerkleTree with @openzeppelin/merkle-tree and print its root
// and every value's proof as JSON. Input on stdin: {"types": [...], "values": [[...], ...]}.
'use strict';
const fs = require('fs');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const { types, values } = JSON.parse(fs.readFileSync(0, 'utf8'));
const tree = StandardMerkleTree.of(values, types);
const proofs = values.map((_, index) => {
  for (const [i, value] of tree.entries()) {
    if (i === index) return tree.getProof(value);
  }
  throw new Error(`value ${index} not in tree`);
});
process.stdout.write(JSON.stringify({ root: tree.root, proofs }));
