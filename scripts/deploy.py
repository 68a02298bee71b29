"""Deploy the OPG protocol and print what was deployed.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network ethereum:sepolia:<provider> --account <alias> --treasury 0x...
"""

import click
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context

from opgkit.cli import nonzero_address
from opgkit import PROJECT_ROOT
from opgkit.deploy import WiringError, deploy_all, record_path_for


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the OPG protocol")
@ape_cli_context()
@account_option()
@click.option(
    "--treasury",
    callback=nonzero_address,
    help="Address that receives the whole OPG supply. Defaults to the deploying account.",
)
def cli(cli_ctx, provider, account, treasury):
    """Deploy every contract in dependency order and print each address."""
    treasury = treasury or account.address
    network = f"{provider.network_choice} (chain id {provider.chain_id})"
    cli_ctx.logger.info(f"Deploying to {network} from {account.address}")
    record = record_path_for(provider.network.ecosystem.name, provider.network.name, PROJECT_ROOT)
    try:
        suite = deploy_all(account, treasury, record_path=record)
    except WiringError as error:
        raise click.ClickException(str(error)) from error

    click.echo(f"{'network':<22} {network}")
    click.echo(f"{'deployer':<22} {account.address}")
    for deployment in suite.deployments:
        click.echo(
            f"{deployment.name:<22} {deployment.contract.address}  tx {deployment.tx_hash}  block {deployment.block_number}"
            + ("  (reused)" if deployment.reused else "")
        )
    token = suite["OPGToken"]
    click.echo(f"{'treasury':<22} {treasury}  holds {token.balanceOf(treasury) // 10 ** token.decimals():,} {token.symbol()}")
    click.echo(f"{'wiring':<22} verified: the timelock is the only admin; the governor is its proposer")
    click.echo(f"{'record':<22} {record.relative_to(PROJECT_ROOT)}")
