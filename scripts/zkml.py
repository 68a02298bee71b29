"""ZKML with EZKL: set up a shipped model, prove an inference, put the model on chain, check a proof there.

    ape run zkml setup [--model liquidation_risk] [--srs ceremony.srs] [--rebuild]
    ape run zkml prove 0.9 0.8 0.95 0.1 [--model liquidation_risk] [--out proof.json]
    ape run zkml deploy --network ethereum:local:foundry --account TEST::0 [--model ...] [--price WEI]
    ape run zkml verify proof.json --model-id 0x... --network ...
    ape run zkml check --model-id 0x... [--model ...] --network ...   (is it this model and this key?)
    ape run zkml bench --network ethereum:local:foundry        (writes benchmarks/zkml.md)

Artifacts (keys, SRS, generated verifier) go to the git-ignored .zkml/ folder and are reused. Without --srs
the SRS is a development one generated locally: fine for anvil, NOT for production.
"""

import json
import shutil
from pathlib import Path

import click
from ape import accounts, config, project
from ape.logging import LogLevel, logger
from eth_utils import is_hex, to_bytes

from opgkit import PROJECT_ROOT
from opgkit.benchmarks import zkml as zkml_benchmark
from opgkit.cli import (
    GROUP_EXIT_CODES, ExitCode, NetworkCommand, ScriptCommand, UserError, contract_at, ensure_writable, exit_codes_help,
    fail, is_development_chain, nonzero_address, prepare_signer, read_json, signing_options,
)
from opgkit.deployments_record import record_path_for, recorded_address
from opgkit.zkml import pipeline
from opgkit.zkml.models import LIQUIDATION_RISK, MODELS, model_named
from opgkit.zkml.onchain import check_registration, deploy_model
from opgkit.zkml.features import checked_features
from opgkit.zkml.pipeline import DEVELOPMENT_SRS_WARNING, InferenceProof

model_option = click.option(
    "--model", "model_name", type=click.Choice(sorted(MODELS)), default=LIQUIDATION_RISK.name, show_default=True,
    help="Which shipped model (models/<name>.onnx).",
)
srs_option = click.option(
    "--srs", "srs_path", type=click.Path(dir_okay=False, path_type=Path),
    help="SRS from a public ceremony (ezkl.get_srs downloads one). Default: a local development SRS.",
)


@click.group(short_help="ZKML with EZKL: setup, prove, deploy, verify", epilog=GROUP_EXIT_CODES)
def cli():
    """Prove the shipped ONNX models with EZKL and verify the proofs on chain."""


DONE = exit_codes_help("done", None)


def _artifacts(model, srs_path, rebuild=False):
    if rebuild:
        cached = pipeline.load(model, srs_path)
        if cached is not None:
            shutil.rmtree(cached.directory)
    return pipeline.build(model, srs_path, progress=lambda step: click.echo(f"  ... {step}"))


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


@cli.command(cls=ScriptCommand, short_help="Run the EZKL pipeline for a model (cached)", epilog=DONE)
@model_option
@srs_option
@click.option("--rebuild", is_flag=True, help="Discard the cached artifacts and build them again.")
def setup(model_name, srs_path, rebuild):
    """Settings, calibration, circuit, SRS, keys and the Solidity verifier for one model."""
    model = model_named(model_name)
    artifacts = _artifacts(model, srs_path, rebuild)
    shown = artifacts.directory.relative_to(PROJECT_ROOT) if artifacts.directory.is_relative_to(PROJECT_ROOT) \
        else artifacts.directory
    click.echo(f"{'model':<16} {model.name} ({len(model.features)} features -> {len(model.outputs)} outputs)")
    click.echo(f"{'artifacts':<16} {shown} ({'reused' if artifacts.reused else f'built in {artifacts.build_seconds:.1f} s'})")
    click.echo(f"{'srs':<16} {artifacts.srs_kind} (2^{artifacts.logrows} rows)")
    if artifacts.is_development:
        click.echo(f"{'':<16} WARNING: {DEVELOPMENT_SRS_WARNING}")
    click.echo(f"{'scales':<16} inputs 2^{artifacts.input_scale}, outputs 2^{artifacts.output_scale}")
    click.echo(f"{'proving key':<16} {_mib(artifacts.proving_key_bytes)}")
    click.echo(f"{'verifying key':<16} keccak256 0x{artifacts.vk_digest.hex()}")
    click.echo(f"{'verifier':<16} {artifacts.verifier_source.relative_to(artifacts.directory)}")


# Unknown options pass through as features, so that a negative number is refused as out of range, not as an option.
@cli.command(cls=ScriptCommand, short_help="Prove one inference", context_settings={"ignore_unknown_options": True},
             epilog=DONE)
@click.argument("features", nargs=-1, required=True)
@model_option
@srs_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the proof document here (JSON).")
def prove(features, model_name, srs_path, out):
    """Run the model on FEATURES (one number per feature, each in the model's range: [0, 1] for the shipped
    models) inside the circuit, prove it, and check the proof."""
    model = model_named(model_name)
    unknown = next((value for value in features if value.startswith("--")), None)
    if unknown is not None:
        fail(f"no such option: {unknown} (see `ape run zkml prove --help`)")
    try:
        features = checked_features(model, features)
    except ValueError as error:
        fail(str(error))
    if out is not None:
        ensure_writable(out, "proof document")
    artifacts = _artifacts(model, srs_path)
    proof = pipeline.prove(artifacts, features)
    for name, value, instance in zip(model.features, features, proof.inputs):
        click.echo(f"  in   {name:<22} {value:<10g} instance {instance}")
    for name, value, instance in zip(model.outputs, proof.output_values, proof.outputs):
        click.echo(f"  out  {name:<22} {value:<10.6f} instance {instance}")
    click.echo(f"{'inputHash':<16} 0x{proof.input_hash.hex()}")
    click.echo(f"{'outputHash':<16} 0x{proof.output_hash.hex()}")
    click.echo(f"{'proof':<16} {len(proof.proof)} bytes, proved in {proof.proving_seconds:.2f} s, checked off chain")
    if artifacts.is_development:
        click.echo(f"{'':<16} (development SRS: valid on a local chain only)")
    if out is not None:
        out.write_text(json.dumps(proof.to_json(), indent=2) + "\n")
        click.echo(f"{'written':<16} {out}")


@cli.command(cls=NetworkCommand, short_help="Deploy a model's verifier and register the model", epilog=DONE)
@signing_options
@model_option
@srs_option
@click.option("--registry", callback=nonzero_address,
              help="ModelRegistry address (default: from the deployments record).")
@click.option("--price", type=click.IntRange(min=0), default=0, show_default=True, help="Price per inference, OPG wei.")
@click.option("--uri", help="Where the model is published (default opg://models/<name>.onnx).")
@click.option("--allow-development-srs", is_flag=True,
              help="Deploy development-SRS artifacts to a non-development chain (throwaway tests only).")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Record to write and resume from (default: deployments/<ecosystem>-<network>-zkml.json).")
def deploy(provider, account, autosign, model_name, srs_path, registry, price, uri, allow_development_srs, record):
    """Compile the generated verifier with the project's compiler settings, deploy it and its adapter, and
    register the model as ZKML-only. Safe to re-run: recorded contracts and registrations are reused."""
    model = model_named(model_name)
    ecosystem, network = provider.network.ecosystem.name, provider.network.name
    registry = registry or recorded_address(record_path_for(ecosystem, network, PROJECT_ROOT), "ModelRegistry")
    record = record or PROJECT_ROOT / "deployments" / f"{ecosystem}-{network}-zkml.json"
    ensure_writable(record, "record")
    models = contract_at(project.ModelRegistry, registry, "--registry")
    artifacts = _artifacts(model, srs_path)
    prepare_signer(account, autosign)
    on_chain = deploy_model(artifacts, project, models, account, record_path=record, price=price, uri=uri,
                            allow_development_srs=allow_development_srs or is_development_chain(provider))
    click.echo(f"{'network':<16} {provider.network_choice} (chain id {provider.chain_id})")
    click.echo(f"{'Halo2Verifier':<16} {on_chain.halo2_verifier.address}")
    click.echo(f"{'adapter':<16} {on_chain.adapter.address}")
    click.echo(f"{'model id':<16} 0x{on_chain.model_id.hex()} "
               f"({'registered' if on_chain.newly_registered else 'already registered'})")
    if artifacts.is_development:
        click.echo(f"{'':<16} WARNING: {DEVELOPMENT_SRS_WARNING}")


def _model_id(value: str) -> bytes:
    if not (value.startswith("0x") and is_hex(value) and len(value) == 66):
        raise click.BadParameter(f"must be 0x followed by 64 hex digits, got {value!r}", param_hint="--model-id")
    return to_bytes(hexstr=value)


def _registered(provider, registry, model_id: bytes):
    """The ModelRegistry (given or recorded), once it is known to hold ``model_id``."""
    models = _registry(provider, registry)
    if not models.exists(model_id):
        raise UserError(f"model 0x{model_id.hex()} is not registered in {models.address}")
    return models


def _registry(provider, registry):
    record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
    return contract_at(project.ModelRegistry, registry or recorded_address(record, "ModelRegistry"), "--registry")


@cli.command(cls=NetworkCommand, short_help="Check a registered model against the local artifacts",
             epilog=exit_codes_help("every check held", "a check failed"))
@click.option("--model-id", required=True, help="The registered model (0x + 64 hex digits).")
@model_option
@srs_option
@click.option("--registry", callback=nonzero_address,
              help="ModelRegistry address (default: from the deployments record).")
def check(provider, model_id, model_name, srs_path, registry):
    """Is MODEL-ID this ONNX model, with this verifying key, checked by the verifier EZKL generates from it?"""
    model_id = _model_id(model_id)
    models = _registered(provider, registry, model_id)
    checks = check_registration(_artifacts(model_named(model_name), srs_path), project, models, model_id)
    for item in checks:
        click.echo(f"  {'ok  ' if item.ok else 'FAIL'} {item.name:<14} {item.detail}")
    passed = all(item.ok for item in checks)
    click.echo(f"{'result':<16} {'this model, this key, this verifier' if passed else 'NOT the local model and key'}")
    raise SystemExit(int(ExitCode.OK if passed else ExitCode.CHECK_FAILED))


@cli.command(cls=NetworkCommand, short_help="Check a proof document against a model's verifier",
             epilog=exit_codes_help("the proof holds", "the verifier rejects the proof"))
@click.argument("document", type=click.Path(path_type=Path))
@click.option("--model-id", required=True, help="The registered model (0x + 64 hex digits).")
@click.option("--registry", callback=nonzero_address,
              help="ModelRegistry address (default: from the deployments record).")
def verify(provider, document, model_id, registry):
    """Ask the model's registered verifier whether DOCUMENT (from `prove --out`) proves its inference."""
    model_id = _model_id(model_id)
    proof = InferenceProof.from_json(read_json(document, "proof document"))
    models = _registered(provider, registry, model_id)
    verifier = models.zkVerifierOf(model_id)
    valid = project.EzklVerifierAdapter.at(verifier).verifyInference(proof.proof, proof.inputs, proof.outputs)
    click.echo(f"{'verifier':<16} {verifier}")
    click.echo(f"{'inputHash':<16} 0x{proof.input_hash.hex()}")
    click.echo(f"{'outputHash':<16} 0x{proof.output_hash.hex()}")
    click.echo(f"{'result':<16} {'proof holds' if valid else 'proof REJECTED'}")
    raise SystemExit(int(ExitCode.OK if valid else ExitCode.CHECK_FAILED))


BENCH_HEADER = """# ZKML benchmark

Regenerated by `make zkml-bench` (anvil, solc {solc}, optimizer on, EVM {evm}, EZKL {ezkl}). Gas is `gasUsed`
of one transaction receipt, intrinsic 21,000 and calldata included. Proofs are randomised, so figures move by
a few hundred gas between runs; times depend on the machine.
"""


@cli.command(cls=NetworkCommand, short_help="Measure ZKML gas, proving time and key sizes", epilog=DONE)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=PROJECT_ROOT / "benchmarks" / "zkml.md", show_default=True)
@click.option("--proofs", type=click.IntRange(min=1), default=3, show_default=True, help="Proofs to time.")
def bench(provider, output, proofs):
    """Verifier call alone vs full ZKML settlement (by the payer, by a third party, asynchronously), proving
    time, key sizes."""
    if provider.name != "foundry":
        raise click.UsageError("ZKML gas is measured on anvil: use --network ethereum:local:foundry")
    logger.set_level(LogLevel.WARNING)  # the table says what each transaction cost
    ensure_writable(output, "benchmark table")
    figures = zkml_benchmark.measure(accounts.test_accounts[0], accounts.test_accounts[1:], proofs)
    header = BENCH_HEADER.format(solc=config.solidity.version, evm=config.solidity.evm_version,
                                 ezkl=pipeline._ezkl().__version__)
    output.write_text(zkml_benchmark.render(figures, header))
    click.echo(output.read_text())
