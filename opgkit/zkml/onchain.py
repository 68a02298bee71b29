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
from ape import Project

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
    model_id = registry.modelIdOf(artifacts.content_hash, adapter.address, artifacts.vk_digest)
    newly_registered = not registry.exists(model_id)
    if newly_registered:
        registry.register(model_spec(artifacts, adapter.address, price, uri), sender=deployer)
    return OnChainModel(name, halo2, adapter, bytes(model_id), newly_registered)
