"""The EZKL pipeline off chain: deterministic models, cached artifacts, proofs that match the model."""

import json
import os
from pathlib import Path

import pytest
from eth_utils import keccak

from opgkit.zkml import pipeline
from opgkit.zkml.features import checked_features
from opgkit.zkml.models import (
    LIQUIDATION_RISK, MODELS, MODELS_DIR, RISKY_POSITION, SAFE_POSITION, DenseReluModel, model_named, write_models,
)
from opgkit.zkml.pipeline import InferenceProof, ZkmlError

pytestmark = pytest.mark.zkml

TOLERANCE = 1e-3  # fixed point at scale 2^13 in, 2^26 out


def test_models__rebuilt_from_their_weights__byte_identical_to_the_committed_files(tmp_path):
    for written in write_models(tmp_path):
        assert written.read_bytes() == (MODELS_DIR / written.name).read_bytes(), written.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.onnx" for name in MODELS)


def test_model_definition__mismatched_shapes__value_error():
    with pytest.raises(ValueError, match="one weight per feature"):
        DenseReluModel("bad", "", ("a", "b"), ("y",), ((1.0,),), (0.0,), ())
    with pytest.raises(ValueError, match="one weight row and one bias per output"):
        DenseReluModel("bad", "", ("a",), ("y", "z"), ((1.0,),), (0.0,), ())
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_named("nope")


@pytest.mark.parametrize("features", [RISKY_POSITION, SAFE_POSITION])
def test_prove__shipped_model__outputs_match_the_float_model(liquidation_artifacts, risky_proof, safe_proof, features):
    proof = risky_proof if features == RISKY_POSITION else safe_proof
    expected = LIQUIDATION_RISK.evaluate(features)
    assert proof.output_values == pytest.approx(expected, abs=TOLERANCE)
    assert proof.inputs == liquidation_artifacts.quantize(features)
    assert len(proof.proof) == 3_072


def test_artifacts__recorded__digest_of_the_verifying_key_and_development_srs(liquidation_artifacts):
    assert liquidation_artifacts.vk_digest == keccak(liquidation_artifacts.verifying_key.read_bytes())
    assert liquidation_artifacts.is_development
    manifest = json.loads((liquidation_artifacts.directory / pipeline.MANIFEST).read_text())
    assert manifest["srs"] == "development" and manifest["runArgs"]["input_visibility"] == "Public"
    assert liquidation_artifacts.verifier_source.read_text().count("contract Halo2Verifier") == 1
    assert liquidation_artifacts.proving_key_bytes > 1_000_000


def test_build__already_built__reused_from_the_cache(liquidation_artifacts):
    again = pipeline.build(LIQUIDATION_RISK)
    assert again.reused and again.directory == liquidation_artifacts.directory
    assert again.vk_digest == liquidation_artifacts.vk_digest


def test_cache_key__other_srs__other_artifacts(tmp_path):
    srs = tmp_path / "ceremony.srs"
    srs.write_bytes(b"not really an srs")
    assert pipeline.cache_key(LIQUIDATION_RISK) != pipeline.cache_key(LIQUIDATION_RISK, srs)


def test_build__ceremony_srs__recorded_as_ceremony(liquidation_artifacts, tmp_path):
    """Any SRS file given is used as is (here the development one stands in for a downloaded ceremony file)."""
    built = pipeline.build(LIQUIDATION_RISK, srs_path=liquidation_artifacts.srs, cache_root=tmp_path)
    assert (built.srs_kind, built.is_development, built.reused) == ("ceremony", False, False)
    assert built.srs.read_bytes() == liquidation_artifacts.srs.read_bytes()
    assert pipeline.load(LIQUIDATION_RISK, liquidation_artifacts.srs, cache_root=tmp_path).directory == built.directory


def test_build__srs_too_small__zkml_error_naming_the_size(tmp_path):
    small = tmp_path / "small.srs"
    pipeline._call(pipeline._ezkl().gen_srs, str(small), 4)
    with pytest.raises(ZkmlError, match=r"at least 2\^15"):
        pipeline.build(LIQUIDATION_RISK, srs_path=small, cache_root=tmp_path / "cache")
    assert not list((tmp_path / "cache" / LIQUIDATION_RISK.name).iterdir()), "no half-built artifacts left"


def test_build__missing_srs_file__zkml_error(tmp_path):
    with pytest.raises(ZkmlError, match="does not exist"):
        pipeline.build(LIQUIDATION_RISK, srs_path=tmp_path / "missing.srs", cache_root=tmp_path)


def test_build__abandoned_scratch_folders__removed_unless_their_builder_runs(tmp_path):
    dead = tmp_path / "abc.partial-999999999-x"
    live = tmp_path / f"abc.partial-{os.getpid()}-y"
    for folder in (dead, live):
        folder.mkdir()
    pipeline._remove_abandoned_builds(tmp_path)
    assert not dead.exists() and live.exists()


def test_prove__wrong_number_of_features__zkml_error(liquidation_artifacts):
    with pytest.raises(ZkmlError, match="takes 4 features"):
        pipeline.prove(liquidation_artifacts, [0.5, 0.5])
    with pytest.raises(ZkmlError, match="takes 4 features"):
        liquidation_artifacts.quantize([0.5])


def test_prove__feature_not_finite_or_out_of_range__zkml_error(liquidation_artifacts):
    with pytest.raises(ZkmlError, match=r"loan_to_value must be a finite number in \[0, 1\], got nan"):
        pipeline.prove(liquidation_artifacts, [float("nan"), 0.5, 0.5, 0.5])
    with pytest.raises(ZkmlError, match=r"collateral_liquidity must be in \[0, 1\], got 1.01"):
        liquidation_artifacts.quantize([0.5, 0.5, 0.5, 1.01])


def test_checked_features__edges_of_the_range_and_text__floats():
    assert LIQUIDATION_RISK.feature_range == (0.0, 1.0)
    assert checked_features(LIQUIDATION_RISK, ["0", "1", 0.5, 1]) == (0.0, 1.0, 0.5, 1.0)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got -1e-09"):
        checked_features(LIQUIDATION_RISK, [-1e-9, 0, 0, 0])


def test_proof_document__round_trip__same_proof(risky_proof):
    document = json.loads(json.dumps(risky_proof.to_json()))
    assert InferenceProof.from_json(document) == risky_proof
    assert document["inputHash"] == "0x" + risky_proof.input_hash.hex()
    with pytest.raises(ZkmlError, match="not a proof document"):
        InferenceProof.from_json({"model": "x"})


def test_felt_to_signed__upper_half__negative():
    assert pipeline.felt_to_signed(pipeline.SNARK_SCALAR_FIELD - 5) == -5
    assert pipeline.felt_to_signed(5) == 5
