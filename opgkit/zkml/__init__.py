"""ZKML with EZKL: small ONNX models, their Halo2 proofs, and the on-chain verifiers that check them.

- :mod:`opgkit.zkml.models` builds the shipped ONNX models deterministically from their weights.
- :mod:`opgkit.zkml.pipeline` runs EZKL (settings, calibration, circuit, SRS, keys, Solidity verifier,
  witness, proof) into a cached, git-ignored folder.
- :mod:`opgkit.zkml.onchain` compiles the generated verifier with the project's compiler settings, deploys
  it behind an ``EzklVerifierAdapter`` and registers the model in ``ModelRegistry``.

Visibility: model inputs and outputs are public instances, parameters are fixed in the circuit. A ZKML
receipt commits to ``inputHash = keccak256(abi.encode(inputInstances))`` and
``outputHash = keccak256(abi.encode(outputInstances))``, so settlement accepts a proof only for the
receipt whose hashes it matches, and a consumer contract can read the proven output values directly.
"""
