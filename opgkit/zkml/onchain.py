"""Put an EZKL model on chain: compile its generated verifier, deploy it behind an adapter, register it.

The generated ``Halo2Verifier.sol`` is compiled by ape-solidity with the project's own compiler settings
(the ``solidity`` section of ``ape-config.yaml``: pinned solc, EVM version, optimizer), as a small ape
project inside the artifact folder, because the file depends on the key and so cannot live in
``contracts/``. Deployments are recorded (``deployments/<ecosystem>-<network>-zkml.json``) and reused on a
re-run, so an interrupted deployment resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from ape import Project, chain

from opgkit import PROJECT_ROOT
from opgkit.deploy import Suite
from opgkit.receipts import Mode
from opgkit.zkml.pipeline import VERIFIER_CONTRACT, Artifacts, ZkmlError

ZERO32 = b"\x00" * 32
ZKML_MODE_BIT = 1 << int(Mode.ZKML)
COMPILER_SETTINGS = ("version", "evm_version", "optimize", "optimization_runs", "via_ir")


@dataclass(frozen=True)
class OnChainModel:
    """A model's verifier pair and the id it is registered under."""

    name: str
    halo2_verifier: object
    adapter: object
    model_id: bytes
    newly_registered: bool


def verifier_container(artifacts: Artifacts):
    """The generated verifier, compiled with the project's compiler settings."""
    project_config = yaml.safe_load((PROJECT_ROOT / "ape-config.yaml").read_text())
    solidity = {key: value for key, value in project_config["solidity"].items() if key in COMPILER_SETTINGS}
    config = yaml.safe_dump({"name": f"{artifacts.model.name}-verifier", "solidity": solidity}, sort_keys=True)
    config_file = artifacts.verifier_project / "ape-config.yaml"
    if not config_file.is_file() or config_file.read_text() != config:
        config_file.write_text(config)
    if not artifacts.verifier_source.is_file():
        raise ZkmlError(f"{artifacts.verifier_source} is missing: rebuild the artifacts (`ape run zkml setup --rebuild`)")
    return Project(artifacts.verifier_project).get_contract(VERIFIER_CONTRACT)


def model_spec(artifacts: Artifacts, adapter: str, price: int = 0, uri: str | None = None) -> dict:
    """The ModelRegistry spec of a ZKML-only model verified by ``adapter``."""
    return dict(
        contentHash=artifacts.content_hash,
        uri=uri or f"opg://models/{artifacts.model.path.name}",
        price=price,
        allowedModes=ZKML_MODE_BIT,
        minimumMode=int(Mode.ZKML),
        parent=ZERO32,
        sameFamily=False,
        royaltyBps=0,
        zkVerifier=adapter,
        verifyingKeyDigest=artifacts.vk_digest,
    )


def deploy_model(
    artifacts: Artifacts,
    project,
    registry,
    deployer,
    *,
    record_path: Path | None = None,
    price: int = 0,
    uri: str | None = None,
    allow_development_srs: bool = True,
) -> OnChainModel:
    """Deploy the verifier and its adapter (reusing recorded ones) and register the model if it is not yet.

    ``allow_development_srs=False`` refuses artifacts made with a development SRS (use it for public
    networks: whoever generated that SRS can forge proofs).
    """
    if artifacts.is_development and not allow_development_srs:
        raise ZkmlError(
            f"{artifacts.model.name} was set up with a development SRS, which must not secure a public network. "
            "Set it up with a ceremony SRS (`ape run zkml setup --srs FILE`), or pass --allow-development-srs "
            "for a throwaway test deployment."
        )
    suite = Suite(record_path)
    vk_digest = "0x" + artifacts.vk_digest.hex()
    name = artifacts.model.name
    halo2 = suite.deploy(f"{name}.{VERIFIER_CONTRACT}", deployer, verifier_container(artifacts), identity=vk_digest)
    adapter = suite.deploy(
        f"{name}.EzklVerifierAdapter", deployer, project.EzklVerifierAdapter,
        halo2.address, len(artifacts.model.features), len(artifacts.model.outputs), artifacts.vk_digest,
    )
    # The id is bound to the registering account: the model is (or will be) registered by `deployer`.
    model_id = registry.modelIdOf(deployer.address, artifacts.content_hash, adapter.address, artifacts.vk_digest)
    newly_registered = not registry.exists(model_id)
    if newly_registered:
        registry.register(model_spec(artifacts, adapter.address, price, uri), sender=deployer)
    return OnChainModel(name, halo2, adapter, bytes(model_id), newly_registered)


@dataclass(frozen=True)
class BindingCheck:
    name: str
    ok: bool
    detail: str


def check_registration(artifacts: Artifacts, project, registry, model_id: bytes) -> list[BindingCheck]:
    """Whether ``model_id`` in ``registry`` is the model of ``artifacts``, verified by the verifier generated from
    its key: content hash, key digest, the adapter's code (up to its immutables) and settings, and the Halo2
    verifier's code byte for byte (the verifying key is built into it)."""
    model = registry.model(model_id)
    same_content = bytes(model.contentHash) == artifacts.content_hash
    same_key = bytes(model.verifyingKeyDigest) == artifacts.vk_digest
    checks = [
        BindingCheck("content", same_content, f"registered content hash {'is' if same_content else 'is not'} "
                                              f"sha256 of {artifacts.model.path.name}"),
        BindingCheck("key digest", same_key, f"registered key digest {'is' if same_key else 'is not'} "
                                             "keccak256 of the local verifying key"),
    ]
    adapter_code = bytes(chain.provider.get_code(model.zkVerifier))
    if not _same_code_up_to_immutables(adapter_code, _runtime_code(project.EzklVerifierAdapter)):
        checks.append(BindingCheck("adapter", False, f"{model.zkVerifier} is not an EzklVerifierAdapter"))
        return checks
    adapter = project.EzklVerifierAdapter.at(model.zkVerifier)
    layout = (adapter.inputCount(), adapter.outputCount(), bytes(adapter.verifyingKeyDigest()))
    expected = (len(artifacts.model.features), len(artifacts.model.outputs), artifacts.vk_digest)
    checks.append(BindingCheck("adapter", layout == expected,
                               f"EzklVerifierAdapter for {layout[0]} inputs, {layout[1]} outputs, key digest "
                               f"{'matching' if layout[2] == artifacts.vk_digest else 'NOT matching'}"
                               + ("" if layout[:2] == expected[:2] else f" (the model has {expected[0]} and {expected[1]})")))
    halo2 = adapter.halo2Verifier()
    same = bytes(chain.provider.get_code(halo2)) == _runtime_code(verifier_container(artifacts))
    checks.append(BindingCheck("verifier code", same,
                               f"{halo2} {'is' if same else 'is NOT'} the verifier EZKL generates from the local key"))
    return checks


def _runtime_code(container) -> bytes:
    return bytes.fromhex(container.contract_type.runtime_bytecode.bytecode.removeprefix("0x"))


def _same_code_up_to_immutables(deployed: bytes, compiled: bytes) -> bool:
    """Equal except inside 32-byte words that are all zero in the compiled code (where solc puts immutables)."""
    if len(deployed) != len(compiled):
        return False
    differing = [i for i in range(len(compiled)) if deployed[i] != compiled[i]]
    return all(
        any(start <= i < start + 32 and compiled[start:start + 32] == bytes(32) for start in range(max(0, i - 31), i + 1))
        for i in differing
    )
