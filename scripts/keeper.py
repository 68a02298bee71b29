"""The keeper: report missed proofs, apply recorded slashes and refresh operators' activity, each at most once.

    ape run keeper --network ethereum:local:foundry --account TEST::9 --confirmations 0 --follow
    ape run keeper --network ethereum:sepolia:node --account keeper --autosign --from-block 7000000 \\
        --follow --metrics 127.0.0.1:9103 --json

Anyone may run it (every action is permissionless; a missed-proof report earns the reporter's reward). Its
state (--state, SQLite) makes restarts exact: nothing is missed and nothing is sent twice, even after a crash.
"""

import click

from opgkit.cli import NetworkCommand, exit_codes_help
from opgkit.operators.command import operator_options, start_operator
from opgkit.operators.keeper import ROLE, SCHEMA, Keeper


@click.command(cls=NetworkCommand, short_help="Report missed proofs, apply slashes, refresh activity",
               epilog=exit_codes_help("stopped normally (or one pass done)", None))
@operator_options(ROLE, "keeper.db")
@click.option("--confirmations", type=click.IntRange(min=0, max=1_000), default=2, show_default=True,
              help="Blocks below the head left unscanned (events of a block that may still be reorganised away).")
@click.option("--from-block", type=click.IntRange(min=0), default=0, show_default=True,
              help="First block to scan when the state is new (the settlement's deployment block saves time).")
def cli(provider, settlement, state, follow, poll, metrics_address, rpc_attempts, as_json, account, autosign,
        confirmations, from_block):
    """Do the protocol's permissionless upkeep once, or with --follow until stopped.

    Reports every pending result whose proof deadline passed (the node is slashed, the payer refunded), applies
    every slash still pending, and after a minimum-stake change refreshes the activity history of operators it
    changed. SIGTERM stops cleanly after the action in hand (exit 0); Ctrl-C (SIGINT) exits 130.
    """
    operator = start_operator(ROLE, SCHEMA, provider, settlement, state, account, autosign, as_json,
                              metrics_address, rpc_attempts)
    keeper = Keeper(operator, confirmations, from_block)
    operator.runtime.log("start", keeper.describe(), account=str(account.address))
    operator.runtime.run(keeper.step, follow, poll)
