"""Deploy the OPG protocol and print what was deployed.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network ethereum:sepolia:node --account deployer --treasury 0x... [--config file] [--dry-run]

Parameters come from --config, else config/deploy/<network>.yaml, else the built-in defaults; they are
checked in full before any transaction. A run that stops part-way (a crash, a kill) resumes from the
deployments record when run again: recorded contracts are reused and finished wiring steps skipped. Exit codes: 0 deployed (or planned), 1 wiring check failed,
2 bad input (parameters, addresses, options).
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context

from opgkit import PROJECT_ROOT
from opgkit.cli import is_development_chain, nonzero_address
from opgkit.deploy import ProtocolParameters, WiringError, deploy_all, plan, record_path_for, wiring_steps
from opgkit.deploy_config import ConfigError, config_path_for, load_parameters


def _parameters(config: Path | None, network: str, local: bool) -> tuple[ProtocolParameters, str]:
    path = config or config_path_for(network, PROJECT_ROOT)
    if config is None and not path.exists():
        if not local:
            raise click.UsageError(f"no parameters for {network}: write {path.relative_to(PROJECT_ROOT)} "
                                   "(see config/deploy/sepolia.yaml) or pass --config")
        return ProtocolParameters(), "built-in defaults"
    try:
        shown = path.relative_to(PROJECT_ROOT) if path.resolve().is_relative_to(PROJECT_ROOT) else path
        return load_parameters(path, local=local), str(shown)
    except ConfigError as error:
        raise click.UsageError(f"{path}:\n{error}") from error


def _publish(provider, suite, logger) -> None:
    explorer = provider.network.explorer
    for deployment in suite.deployments:
        if not deployment.reused:
            explorer.publish_contract(deployment.contract.address)
            logger.info(f"published {deployment.name} to {explorer.name}")


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the OPG protocol")
@ape_cli_context()
@account_option()
@click.option("--treasury", callback=nonzero_address,
              help="Address that receives the whole OPG supply. Defaults to the deploying account.")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="Parameters YAML (default: config/deploy/<network>.yaml).")
@click.option("--dry-run", is_flag=True, help="Print the plan (deploy or reuse, step by step) and send nothing.")
@click.option("--handover/--no-handover", default=True, show_default=True,
              help="Hand every admin role to the timelock and renounce the deployer's.")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Deployments record to write and resume from (default: deployments/<ecosystem>-<network>.json).")
@click.option("--publish", is_flag=True, help="Publish each new contract's source to the network's explorer "
                                               "(needs the ape-etherscan plugin and an API key).")
def cli(cli_ctx, provider, account, treasury, config, dry_run, handover, record, publish):
    """Deploy every contract in dependency order, wire the roles, check the wiring, print a summary."""
    treasury = treasury or account.address
    local = is_development_chain(provider)
    params, source = _parameters(config, provider.network.name, local)
    if publish and provider.network.explorer is None:
        raise click.UsageError("--publish needs an explorer plugin: pip install ape-etherscan==0.8.7 and set "
                               "ETHERSCAN_API_KEY")
    network = f"{provider.network_choice} (chain id {provider.chain_id})"
    record = record or record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
    click.echo(f"{'network':<22} {network}")
    click.echo(f"{'deployer':<22} {account.address}")
    click.echo(f"{'parameters':<22} {source}")

    if dry_run:
        click.echo(f"{'plan':<22} (nothing is sent)")
        for step in plan(account.address, treasury, params, record, handover):
            where = step.address if step.action == "reuse" else ""
            click.echo(f"  {step.action:<7} {step.name:<22} {where}".rstrip())
        for description in wiring_steps(handover):
            click.echo(f"  wire    {description}")
        return

    try:
        suite = deploy_all(account, treasury, params, record_path=record, handover=handover)
    except WiringError as error:
        raise click.ClickException(str(error)) from error

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
    shown = record.relative_to(PROJECT_ROOT) if record.resolve().is_relative_to(PROJECT_ROOT) else record
    click.echo(f"{'record':<22} {shown}")
    if publish:
        _publish(provider, suite, cli_ctx.logger)
