"""The EZKL pipeline: from an ONNX model to proving/verifying keys, a Solidity verifier and proofs.

Artifacts are cached under ``.zkml/<model>/<key>/`` (git-ignored; the proving key alone is over 100 MB).
The key digests everything that determines them: the ONNX bytes, the run arguments, the calibration data,
the EZKL version and the SRS. A build writes into a scratch folder and renames it into place only when
complete, so an interrupted build leaves nothing half-made behind and the next run starts it again.

SRS: by default a *development* SRS is generated locally with ``ezkl.gen_srs``. Whoever generated it can
forge proofs, so it is for local chains and tests only; artifacts record it and ``opgkit.zkml.onchain``
refuses to deploy them to a public network unless told otherwise. For a real deployment pass the path of
an SRS from a public powers-of-tau ceremony (``ezkl.get_srs`` downloads the right size for the settings).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from eth_utils import keccak

from opgkit import PROJECT_ROOT
from opgkit.cli.errors import UserError
from opgkit.receipts import instances_hash
from opgkit.zkml.features import checked_features
from opgkit.zkml.models import DenseReluModel

CACHE_ROOT = Path(os.environ.get("OPG_ZKML_CACHE") or PROJECT_ROOT / ".zkml")
"""Where artifacts are cached (``$OPG_ZKML_CACHE`` overrides)."""

RUN_ARGS = {"input_visibility": "public", "output_visibility": "public", "param_visibility": "fixed"}
"""Inputs and outputs are public instances; weights are constants of the circuit."""

CALIBRATION_TARGET = "resources"
VERIFIER_CONTRACT = "Halo2Verifier"
MANIFEST = "artifacts.json"
DEVELOPMENT_SRS = "development"
DEVELOPMENT_SRS_WARNING = (
    "development SRS generated on this machine: anyone holding it can forge proofs. "
    "NOT FOR PRODUCTION - use a ceremony SRS (--srs) for a public network."
)


class ZkmlError(UserError):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class Artifacts:
    """Everything one model needs to be proven and verified, all in ``directory``."""

    model: DenseReluModel
    directory: Path
    srs_kind: str
    """``development`` or ``ceremony``."""
    input_scale: int
    output_scale: int
    logrows: int
    vk_digest: bytes
    """keccak-256 of the verifying key file: what ModelRegistry records as the verifying-key digest."""
    build_seconds: float
    reused: bool = False

    @property
    def settings(self) -> Path:
        return self.directory / "settings.json"

    @property
    def circuit(self) -> Path:
        return self.directory / "network.ezkl"

    @property
    def srs(self) -> Path:
        return self.directory / "kzg.srs"

    @property
    def verifying_key(self) -> Path:
        return self.directory / "vk.key"

    @property
    def proving_key(self) -> Path:
        return self.directory / "pk.key"

    @property
    def verifier_project(self) -> Path:
        """An ape project folder holding the generated verifier (see ``opgkit.zkml.onchain``)."""
        return self.directory / "verifier"

    @property
    def verifier_source(self) -> Path:
        return self.verifier_project / "contracts" / f"{VERIFIER_CONTRACT}.sol"

    @property
    def is_development(self) -> bool:
        return self.srs_kind == DEVELOPMENT_SRS

    @property
    def proving_key_bytes(self) -> int:
        return self.proving_key.stat().st_size

    @property
    def content_hash(self) -> bytes:
        """sha256 of the ONNX file: the content hash the model is registered under."""
        return hashlib.sha256(self.model.path.read_bytes()).digest()

    def quantize(self, features: Sequence[float]) -> tuple[int, ...]:
        """The public input instances EZKL makes of ``features`` (fixed point at the input scale)."""
        ezkl = _ezkl()
        features = _check_features(self.model, features)
        return tuple(_felt_to_uint(ezkl.float_to_felt(x, self.input_scale)) for x in features)


@dataclass(frozen=True)
class InferenceProof:
    """A proven inference: the proof bytes and the public instances it proves, split as the circuit lays
    them out (inputs first, then outputs)."""

    model: str
    proof: bytes
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    output_scale: int
    proving_seconds: float = field(default=0.0, compare=False)

    @property
    def input_hash(self) -> bytes:
        return instances_hash(self.inputs)

    @property
    def output_hash(self) -> bytes:
        return instances_hash(self.outputs)

    @property
    def output_values(self) -> list[float]:
        """The outputs as real numbers (field elements above p/2 are negative)."""
        return [felt_to_signed(value) / 2**self.output_scale for value in self.outputs]

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "proof": "0x" + self.proof.hex(),
            "inputs": [str(value) for value in self.inputs],
            "outputs": [str(value) for value in self.outputs],
            "outputScale": self.output_scale,
            "inputHash": "0x" + self.input_hash.hex(),
            "outputHash": "0x" + self.output_hash.hex(),
        }

    @classmethod
    def from_json(cls, document: dict) -> "InferenceProof":
        def instances(key: str) -> tuple[int, ...]:
            values = document[key]
            if not isinstance(values, list) or not all(
                    isinstance(v, (int, str)) and not isinstance(v, bool) and 0 <= int(v) < 2**256 for v in values):
                raise ValueError(f"{key} must be a list of integers from 0 to 2^256-1")
            return tuple(int(value) for value in values)

        try:
            return cls(
                model=str(document["model"]),
                proof=bytes.fromhex(str(document["proof"]).removeprefix("0x")),
                inputs=instances("inputs"),
                outputs=instances("outputs"),
                output_scale=int(document["outputScale"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise ZkmlError(f"not a proof document written by `ape run zkml prove`: {error}") from None


SNARK_SCALAR_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""The BN254 scalar field: every public instance is an element of it."""


def felt_to_signed(value: int) -> int:
    return value - SNARK_SCALAR_FIELD if value > SNARK_SCALAR_FIELD // 2 else value


def cache_key(model: DenseReluModel, srs_path: Path | None = None) -> str:
    """A digest of everything the artifacts of ``model`` depend on."""
    digest = hashlib.sha256()
    digest.update(model.path.read_bytes())
    digest.update(json.dumps(RUN_ARGS, sort_keys=True).encode())
    digest.update(json.dumps([CALIBRATION_TARGET, model.calibration]).encode())
    digest.update(_ezkl().__version__.encode())
    digest.update(_file_sha256(srs_path).encode() if srs_path else DEVELOPMENT_SRS.encode())
    return digest.hexdigest()[:16]


def load(model: DenseReluModel, srs_path: Path | None = None, cache_root: Path = CACHE_ROOT) -> Artifacts | None:
    """The cached artifacts of ``model``, or None when they have not been built."""
    return _load_from(cache_root / model.name / cache_key(model, srs_path), model)


def build(
    model: DenseReluModel,
    srs_path: Path | None = None,
    cache_root: Path = CACHE_ROOT,
    progress=lambda step: None,
) -> Artifacts:
    """Run the EZKL pipeline for ``model`` unless its artifacts are cached; return them either way."""
    if not model.path.is_file():
        raise ZkmlError(f"{model.path} is missing: run `python -m opgkit.zkml.models` to write it")
    if srs_path is not None and not Path(srs_path).is_file():
        raise ZkmlError(f"SRS file {srs_path} does not exist (download one with ezkl.get_srs, or omit --srs)")
    final = cache_root / model.name / cache_key(model, srs_path)
    cached = _load_from(final, model)
    if cached is not None:
        return cached

    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(final.parent)
    scratch = Path(tempfile.mkdtemp(prefix=f"{final.name}.partial-{os.getpid()}-", dir=final.parent))
    try:
        _run_pipeline(model, scratch, srs_path, progress)
        try:
            scratch.rename(final)
        except OSError:
            if _load_from(final, model) is None:  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return replace(_load_from(final, model), reused=False)


def prove(artifacts: Artifacts, features: Sequence[float]) -> InferenceProof:
    """Run the model on ``features`` in the circuit and prove it; the proof is checked before returning.
    Features must be finite and inside the model's range (see ``opgkit.zkml.features``)."""
    ezkl = _ezkl()
    features = _check_features(artifacts.model, features)
    with tempfile.TemporaryDirectory(prefix="opg-zkml-proof-") as scratch:
        scratch = Path(scratch)
        data, witness, proof_file = scratch / "input.json", scratch / "witness.json", scratch / "proof.json"
        data.write_text(json.dumps({"input_data": [list(features)]}))
        _call(ezkl.gen_witness, str(data), str(artifacts.circuit), str(witness))
        started = time.perf_counter()
        _call(ezkl.prove, str(witness), str(artifacts.circuit), str(artifacts.proving_key), str(proof_file),
              str(artifacts.srs))
        proving_seconds = time.perf_counter() - started
        if not _call(ezkl.verify, str(proof_file), str(artifacts.settings), str(artifacts.verifying_key),
                     str(artifacts.srs)):
            raise ZkmlError("EZKL produced a proof its own verifier rejects; rebuild the artifacts (--rebuild)")
        document = json.loads(proof_file.read_text())
    instances = [_felt_to_uint(value) for value in document["instances"][0]]
    inputs_count = len(artifacts.model.features)
    return InferenceProof(
        model=artifacts.model.name,
        proof=bytes(document["proof"]),
        inputs=tuple(instances[:inputs_count]),
        outputs=tuple(instances[inputs_count:]),
        output_scale=artifacts.output_scale,
        proving_seconds=proving_seconds,
    )


# ---------------------------------------------------------------- internals


def _load_from(directory: Path, model: DenseReluModel) -> Artifacts | None:
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    recorded = json.loads(manifest.read_text())
    return Artifacts(
        model=model,
        directory=directory,
        srs_kind=recorded["srs"],
        input_scale=recorded["inputScale"],
        output_scale=recorded["outputScale"],
        logrows=recorded["logrows"],
        vk_digest=bytes.fromhex(recorded["vkDigest"].removeprefix("0x")),
        build_seconds=recorded["buildSeconds"],
        reused=True,
    )


def _run_pipeline(model: DenseReluModel, directory: Path, srs_path: Path | None, progress) -> None:
    ezkl = _ezkl()
    started = time.perf_counter()
    onnx, settings = str(model.path), str(directory / "settings.json")
    circuit, srs = str(directory / "network.ezkl"), directory / "kzg.srs"
    vk, pk = str(directory / "vk.key"), str(directory / "pk.key")
    calibration = directory / "calibration.json"
    # One flat vector per model input; EZKL cuts it into samples of the input's size.
    calibration.write_text(json.dumps({"input_data": [[x for sample in model.calibration for x in sample]]}))

    progress("settings")
    run_args = ezkl.PyRunArgs()
    for name, value in RUN_ARGS.items():
        setattr(run_args, name, value)
    _require(_call(ezkl.gen_settings, onnx, settings, py_run_args=run_args), "gen_settings")
    progress("calibration")
    # EZKL logs a fidelity table here (a warning on the `ezkl` logger): callers that want a clean report run
    # the build inside opgkit.quiet.output_to.
    _require(_call(ezkl.calibrate_settings, str(calibration), onnx, settings, CALIBRATION_TARGET),
             "calibrate_settings")
    progress("circuit")
    _require(_call(ezkl.compile_circuit, onnx, circuit, settings), "compile_circuit")
    recorded = json.loads(Path(settings).read_text())
    logrows = recorded["run_args"]["logrows"]

    if srs_path is None:
        progress("development SRS")
        _call(ezkl.gen_srs, str(srs), logrows)
    else:
        progress("SRS")
        shutil.copyfile(srs_path, srs)
    progress("keys")
    try:
        _require(_call(ezkl.setup, circuit, vk, pk, str(srs)), "setup")
    except RuntimeError as error:
        raise ZkmlError(f"key generation failed ({error}); is the SRS at least 2^{logrows} points?") from None

    progress("verifier")
    verifier = directory / "verifier" / "contracts" / f"{VERIFIER_CONTRACT}.sol"
    verifier.parent.mkdir(parents=True)
    _create_evm_verifier(vk, settings, verifier, directory, srs)

    (directory / MANIFEST).write_text(json.dumps({
        "model": model.name,
        "srs": DEVELOPMENT_SRS if srs_path is None else "ceremony",
        "srsSha256": _file_sha256(srs),
        "ezkl": ezkl.__version__,
        "runArgs": recorded["run_args"],
        "inputScale": recorded["model_input_scales"][0],
        "outputScale": recorded["model_output_scales"][0],
        "logrows": logrows,
        "vkDigest": "0x" + keccak(Path(vk).read_bytes()).hex(),
        "buildSeconds": round(time.perf_counter() - started, 3),
    }, indent=2))


def _create_evm_verifier(vk: str, settings: str, verifier: Path, directory: Path, srs: Path) -> None:
    """Write the Solidity verifier. EZKL then tries to download solc to make an ABI, which fails offline; the
    ABI is not needed (the project's own compiler builds the contract), so only a missing file is an error."""
    ezkl = _ezkl()
    try:
        _call(ezkl.create_evm_verifier, vk, settings, str(verifier), str(directory / "verifier.abi"), str(srs))
    except RuntimeError as error:
        offline_abi_step = "solc" in str(error) or "svm" in str(error)
        if not (verifier.is_file() and offline_abi_step):
            raise ZkmlError(f"EZKL could not write the Solidity verifier: {error}") from None


def _remove_abandoned_builds(model_folder: Path) -> None:
    for partial in model_folder.glob("*.partial-*"):
        pid = partial.name.split(".partial-", 1)[1].split("-", 1)[0]
        if not pid.isdigit() or not _process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_features(model: DenseReluModel, features: Sequence[float]) -> tuple[float, ...]:
    try:
        return checked_features(model, features)
    except ValueError as error:
        raise ZkmlError(str(error)) from None


def _felt_to_uint(little_endian_hex: str) -> int:
    """EZKL writes field elements as 32-byte little-endian hex."""
    return int.from_bytes(bytes.fromhex(little_endian_hex.removeprefix("0x")), "little")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require(ok, step: str) -> None:
    if ok is False:
        raise ZkmlError(f"EZKL step {step} failed")


def _call(function, *args, **kwargs):
    """Call an EZKL function; some return futures that need a running event loop."""

    async def run():
        result = function(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return asyncio.run(run())


def _ezkl():
    """Import EZKL with its Rust logger wired to Python logging first (it aborts on some threads otherwise)."""
    logging.getLogger("ezkl").setLevel(logging.WARNING)
    import ezkl

    return ezkl
