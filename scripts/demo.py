"""Run the whole protocol story on a local chain and print what happened.

    ape run demo --network ethereum:local:foundry

Deploys everything, stakes operators, passes a governance proposal, registers models and a TEE, settles a
TEE receipt its payer authorized and pays it, rejects a batch with a forged receipt on BatchSettlement, pays
out of a risk-gated vault on a final TEE score in the vault owner's namespace, refuses an attacker node's
answer under the owner's authorization, liquidates a position only on a real EZKL proof verified on chain,
audits a receipt, trades twin shares and catches a scheduled fee rise. Exit codes: 0 done, 1 a step failed,
130 interrupted.
"""

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ApeException
from ape.logging import LogLevel, logger

from opgkit.demo import Cast, Story


@click.command(cls=ConnectedProviderCommand, short_help="Run the protocol story on a local chain")
def cli(provider):
    """Deploy the protocol on a local chain and run its story end to end."""
    if provider.network.name != "local":
        raise click.UsageError("the demo uses the local test accounts and time travel: run it with "
                               "--network ethereum:local:foundry")
    logger.set_level(LogLevel.WARNING)  # the report below says what each transaction did
    click.echo(f"OPG protocol demo on {provider.network_choice} (chain id {provider.chain_id})")
    story = Story(Cast.from_accounts(accounts.test_accounts), click.echo)
    try:
        story.run()
    except KeyboardInterrupt:
        click.echo("\ninterrupted; stopping the local chain", err=True)
        raise SystemExit(130)
    except ApeException as error:
        click.echo(f"\nError: the demo stopped: {error}", err=True)
        raise SystemExit(1) from error
    click.echo("\ndone: every step above ran on chain with real signatures")
