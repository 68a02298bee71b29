"""Watch every batch posted to BatchSettlement and challenge the first faulty leaf before its window closes.

    ape run watchtower --network ethereum:devchain --account TEST::9 --follow
    ape run watchtower --network ethereum:sepolia:node --account watcher --autosign --follow \\
        --confirmations 3 --metrics 127.0.0.1:9102 --json

State (the SQLite file given by --state) keeps the last block read and every batch's outcome, so a restarted
watchtower misses no batch and never challenges one twice.
"""

import click

from opgkit.cli import NetworkCommand, exit_codes_help, is_development_chain
from opgkit.operators.command import operator_options, start_operator
from opgkit.operators.watchtower import SCHEMA, Settings, Watchtower


@click.command(cls=NetworkCommand, short_help="Check every batch and challenge faults",
               epilog=exit_codes_help("every batch checked held", "an alert: data withheld or not matching its root, "
                                      "a window closed unchecked, or a fault that could not be challenged"))
@operator_options("watchtower", "watchtower.db")
@click.option("--confirmations", type=click.IntRange(min=0, max=1000), default=2, show_default=True,
              help="Blocks a BatchPosted must be buried under before it is read (reorg safety).")
@click.option("--from-block", type=click.IntRange(min=0),
              help="First block to read batches from, for a new state file (default: the chain's first block).")
@click.option("--fetch-timeout", type=click.FloatRange(min=0.1, max=600), default=10.0, show_default=True,
              help="Seconds a batch document may take to download, in all.")
@click.option("--fetch-attempts", type=click.IntRange(min=1, max=1000), default=3, show_default=True,
              help="Fetches of a batch's data per pass before it is an alert (it is retried until its window closes).")
@click.option("--allow-file-uris", is_flag=True,
              help="Read file:// dataUris on a public chain too (a shared disk); always allowed on a development chain.")
def cli(provider, account, autosign, settlement, state, follow, poll, metrics_address, rpc_attempts, as_json,
        confirmations, from_block, fetch_timeout, fetch_attempts, allow_file_uris):
    """Follow BatchPosted, fetch each batch's data from its dataUri, verify every leaf as the contract would,
    and challenge the first fault with --account. Without --follow: check everything up to the chain's head,
    then exit. SIGTERM stops at the next safe point (exit 0, or 1 after an alert); Ctrl-C exits 130.
    """
    operator = start_operator("watchtower", SCHEMA, provider, settlement, state, account, autosign, as_json,
                              metrics_address, rpc_attempts)
    allow_files = allow_file_uris or is_development_chain(provider)
    watchtower = Watchtower(operator, Settings(confirmations, from_block, fetch_timeout, fetch_attempts, follow,
                                               allow_files))
    operator.runtime.log("start", f"watching batches of {watchtower.batches.address} as {account.address}, "
                         f"{confirmations} confirmation(s), state {state}")
    operator.runtime.run(watchtower.step, follow, poll)
