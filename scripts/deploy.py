"""Deploy the OPG protocol and print what was deployed.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network ethereum:sepolia:node --account deployer --autosign --treasury 0x... [--config file] [--dry-run]
    ape run deploy --network base:sepolia:node --account deployer --dry-run      (an L2: config/deploy/base-sepolia.yaml)

Parameters come from --config, else config/deploy/local.yaml on any development chain (chain id 31337 or
1337), else config/deploy/<network>.yaml (<ecosystem>-<network>.yaml off Ethereum); on an OP Stack L2 the
challenge and proof windows must outlast its sequencing window. They, the deployments record and every path are checked in full
before any transaction. A run that stops part-way (a crash, a kill) resumes from the deployments record
when run again: recorded contracts are reused and finished wiring steps skipped.
"""

import sys
from pathlib import Path

import click
from ape.cli import ape_cli_context

from opgkit import PROJECT_ROOT
from opgkit.cli import (
    ExitCode, NetworkCommand, UserError, ensure_writable, exit_codes_help, is_development_chain, nonzero_address,
    prepare_signer, signing_options,
)
from opgkit.deploy import DeploymentBlocked, ProtocolParameters, WiringError, deploy_all, plan, planned_wiring, preflight
from opgkit.deploy_config import config_path_for, load_parameters
from opgkit.deployments_record import load_record, record_path_for


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.resolve().is_relative_to(PROJECT_ROOT) else str(path)


def _parameters(config: Path | None, provider, local: bool) -> tuple[ProtocolParameters, str]:
    network = provider.network
    path = config or config_path_for("local" if local else network.name, PROJECT_ROOT, network.ecosystem.name)
    if config is None and not path.exists():
        if not local:
            raise UserError(f"no parameters for {network.ecosystem.name}:{network.name}: write {_shown(path)} (see "
                            "config/deploy/sepolia.yaml or base-sepolia.yaml) or pass --config")
        return ProtocolParameters(), "built-in defaults"
    params = load_parameters(path, local=local, chain_id=provider.chain_id)
    return params, _shown(path) + (" (a development chain)" if local and config is None else "")


def _publish(provider, suite, logger) -> None:
    explorer = provider.network.explorer
    for deployment in suite.deployments:
        if not deployment.reused:
            explorer.publish_contract(deployment.contract.address)
            logger.info(f"published {deployment.name} to {explorer.name}")


def _print_plan(account, steps, handover, params) -> None:
    click.echo(f"{'plan':<22} (nothing is sent)")
    for step in steps:
        where = step.address if step.action == "reuse" else ""
        click.echo(f"  {step.action:<7} {step.name:<22} {where}".rstrip())
    for step, done in planned_wiring(steps, account.address, handover, params):
        click.echo(f"  {'done' if done else 'wire':<7} {step.description}")


@click.command(cls=NetworkCommand, short_help="Deploy the OPG protocol",
               epilog=exit_codes_help("deployed (or planned, with --dry-run)", "the wiring check failed"))
@ape_cli_context()
@signing_options
@click.option("--treasury", callback=nonzero_address,
              help="Address that receives the whole OPG supply. Defaults to the deploying account.")
@click.option("--config", type=click.Path(path_type=Path),
              help="Parameters YAML (default: config/deploy/local.yaml on a development chain, else "
                   "config/deploy/<network>.yaml).")
@click.option("--dry-run", is_flag=True, help="Print the plan (deploy or reuse, step by step) and send nothing.")
@click.option("--handover/--no-handover", default=True, show_default=True,
              help="Hand every admin role to the timelock and renounce the deployer's.")
@click.option("--record", type=click.Path(path_type=Path),
              help="Deployments record to write and resume from (default: deployments/<ecosystem>-<network>.json).")
@click.option("--publish", is_flag=True, help="Publish each new contract's source to the network's explorer "
                                               "(needs the ape-etherscan plugin and an API key).")
def cli(cli_ctx, provider, account, autosign, treasury, config, dry_run, handover, record, publish):
    """Deploy every contract in dependency order, wire the roles, check the wiring, print a summary."""
    treasury = treasury or account.address
    local = is_development_chain(provider)
    params, source = _parameters(config, provider, local)
    if publish and provider.network.explorer is None:
        raise UserError("--publish needs an explorer plugin: pip install ape-etherscan==0.8.7 and set ETHERSCAN_API_KEY")
    record = record or record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
    recorded = load_record(record)
    if (recorded["contracts"] or recorded.get("pending")) and recorded["chain_id"] != provider.chain_id:
        raise UserError(f"{_shown(record)} records a deployment on chain {recorded['chain_id']}, not this chain "
                        f"({provider.chain_id}); give another --record (or move that file away) so it is kept")
    ensure_writable(record, "deployments record")
    steps = plan(account.address, treasury, params, record, handover)
    preflight(account.address, treasury, params, steps, handover)
    click.echo(f"{'network':<22} {provider.network_choice} (chain id {provider.chain_id})")
    click.echo(f"{'deployer':<22} {account.address}")
    click.echo(f"{'parameters':<22} {source}")
    if dry_run:
        _print_plan(account, steps, handover, params)
        return
    unattended = prepare_signer(account, autosign)
    if unattended:
        click.echo(f"{'signing':<22} {unattended}")

    try:
        suite = deploy_all(account, treasury, params, record_path=record, handover=handover)
    except DeploymentBlocked:
        raise
    except WiringError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(int(ExitCode.CHECK_FAILED))

    click.echo(f"{'contract':<22} {'address':<42}  {'status':<8} {'block':>6}  tx")
    for deployment in suite.deployments:
        status = "reused" if deployment.reused else "new"
        click.echo(f"{deployment.name:<22} {deployment.contract.address}  {status:<8} {deployment.block_number:>6}  "
                   f"{deployment.tx_hash}")
    token = suite["OPGToken"]
    click.echo(f"{'treasury':<22} {treasury}  holds {token.balanceOf(treasury) // 10 ** token.decimals():,} {token.symbol()}")
    admin = "the timelock is the only admin" if handover else "the deployer keeps every admin role (no handover)"
    click.echo(f"{'wiring':<22} verified: {admin}; InferenceSettlement records BatchSettlement's batches; both may "
               "slash; the governor proposes to the timelock")
    if params.guardian is not None:
        powers = "cancel and schedule" if params.guardian_proposes else "cancel (veto)"
        click.echo(f"{'guardian':<22} {params.guardian} may {powers} timelock operations, never execute them alone")
    click.echo(f"{'record':<22} {_shown(record)}")
    if publish:
        _publish(provider, suite, cli_ctx.logger)
