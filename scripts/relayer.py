"""Relay signed receipts into posted batches: judge, de-duplicate, batch, publish the document, post the root.

    ape run relayer --network ethereum:local:foundry --account TEST::8 --spool receipts/ --flush
    ape run relayer --network ethereum:sepolia:node --account relayer --autosign --follow \\
        --listen 127.0.0.1:8650 --publish-url https://batches.example.org --metrics 127.0.0.1:9650

Receipt documents come from ``--spool DIR`` (every ``*.json`` in it; write each under another name and rename
it in, so no half-written file is read) and/or ``POST /receipts`` on ``--listen``. Each is judged exactly as
``BatchSettlement.faultOf`` would judge it, committed to the ``--state`` SQLite file, and moved to
``DIR/accepted/`` or ``DIR/rejected/`` (with a ``.reason`` file). Batches of ``--batch-size`` (a partial one
once its oldest receipt waited ``--max-wait`` seconds, or at the end of a run with ``--flush``) are published
into ``--publish-dir`` as ``0x<root>.json`` before their root is posted; ``dataUri`` is ``--publish-url`` plus
the name. Killed at any moment and restarted with the same ``--state``, it posts every accepted receipt in
exactly one batch.
"""

from dataclasses import replace
from pathlib import Path

import click
from ape import project

from opgkit.batch_document import check_publish_directory
from opgkit.cli import NetworkCommand, UserError, contract_at, exit_codes_help, finite_number
from opgkit.leaf_faults import Contracts, LeafJudge
from opgkit.operators.command import operator_options, start_operator
from opgkit.operators.relayer import (
    SCHEMA, SETTLEMENT_RELAYER_ROLE, Counters, Intake, Relayer, RelayerOptions, second_connection, serve,
)


def _spool_directory(spool: Path | None) -> Path | None:
    if spool is None:
        return None
    if not spool.is_dir():
        raise UserError(f"spool {spool} is not a directory; create it or check the path")
    for name in ("accepted", "rejected"):
        try:
            (spool / name).mkdir(exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create {spool / name}: {error.strerror or error}") from error
    return spool


def _batch_settlement(operator):
    address = operator.runtime.retry(lambda: operator.settlement.batchSettlement())
    if int(address, 16) == 0:
        raise UserError(f"settlement {operator.settlement.address} has no batch settlement connected; nothing to "
                        "relay to")
    batches = operator.runtime.retry(lambda: contract_at(project.BatchSettlement, address, "batchSettlement()"))
    staking = project.NodeStaking.at(operator.runtime.retry(lambda: batches.staking()))
    if not operator.runtime.retry(lambda: staking.isActiveOperator(operator.account.address, SETTLEMENT_RELAYER_ROLE)):
        raise UserError(f"account {operator.account.address} is not an active settlement relayer on {staking.address}; "
                        "register it with the relayer role and enough stake, or give the relayer's --account")
    return batches


@click.command(cls=NetworkCommand, short_help="Batch signed receipts and post their roots",
               epilog=exit_codes_help("done (or stopped by SIGTERM)", "a batch could not be posted (it is retried)"))
@operator_options("relayer", "relayer.db")
@click.option("--spool", type=click.Path(path_type=Path), help="Directory of receipt documents (*.json) to take in.")
@click.option("--listen", metavar="HOST:PORT",
              help="Accept POST /receipts and serve GET /batches/<name> here (port 0: any free port).")
@click.option("--batch-size", type=click.IntRange(min=1, max=1 << 16), default=256, show_default=True,
              help="Receipts per batch.")
@click.option("--max-wait", type=click.FloatRange(min=0, max=86_400), callback=finite_number, default=60.0,
              show_default=True, help="Post a partial batch once its oldest receipt has waited this many seconds.")
@click.option("--flush", is_flag=True, help="Without --follow: post the last partial batch too before exiting.")
@click.option("--publish-dir", type=click.Path(path_type=Path), default=Path("build/operators/batches"),
              show_default=True, help="Where batch documents are written (0x<root>.json).")
@click.option("--publish-url", metavar="BASE",
              help="Public base URL of --publish-dir: dataUri = BASE/0x<root>.json (default: this relayer's "
                   "http://<listen>/batches with --listen, else file://<publish dir>).")
@click.option("--future-tolerance", type=click.IntRange(min=0, max=3_600), default=60, show_default=True,
              help="Refuse receipts more than this many seconds ahead of the chain (nearer ones wait).")
@click.option("--post-margin", type=click.IntRange(min=1, max=86_400), default=120, show_default=True,
              help="Drop receipts that would be too old this many seconds from now, when a batch is cut.")
def cli(provider, settlement, state, follow, poll, metrics_address, rpc_attempts, as_json, account, autosign, spool,
        listen, batch_size, max_wait, flush, publish_dir, publish_url, future_tolerance, post_margin):
    """Relay receipt documents into batches posted on BatchSettlement.

    SIGTERM stops cleanly after the batch in hand (exit 0, or 1 after an alert); Ctrl-C exits 130.
    """
    spool = _spool_directory(spool)
    check_publish_directory(publish_dir)
    operator = start_operator("relayer", SCHEMA, provider, settlement, state, account, autosign, as_json,
                              metrics_address, rpc_attempts)
    batches = _batch_settlement(operator)
    contracts = operator.runtime.retry(lambda: Contracts.of(operator.settlement))
    counters = Counters(operator.runtime.metrics)
    options = RelayerOptions(batch_size, max_wait, future_tolerance, post_margin, publish_dir)  # no URL yet: --listen
    intake = Intake(operator.store, LeafJudge(provider.web3, contracts), operator.runtime, options, counters)
    server = None
    if listen:
        http_intake = Intake(second_connection(operator.store), LeafJudge(provider.web3, contracts), operator.runtime,
                             options, counters)
        server = serve(listen, http_intake, publish_dir)
        operator.runtime.log("listen", f"accepting receipts at {server.base_url()}/receipts, serving batch documents "
                                       f"at {server.base_url()}/batches/")
    base = (publish_url or (f"{server.base_url()}/batches" if server else publish_dir.resolve().as_uri())).rstrip("/")
    relayer = Relayer(operator, batches, intake.judge, intake, replace(options, publish_url=base), spool)
    operator.runtime.log("start", f"relaying to BatchSettlement {batches.address} as {operator.account.address}: "
                                  f"batches of {batch_size}, a partial one after {max_wait:g} s, documents at {base}/",
                         batch_settlement=str(batches.address), relayer=operator.account.address)
    operator.runtime.run(lambda: relayer.step(flush and not follow), follow, poll)
