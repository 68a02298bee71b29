"""The keeper (`ape run keeper`) as a process against the test's anvil: every permissionless upkeep done once.

The keeper signs as `reporter` (TEST::9): the tests send nothing from that account while it runs.
"""

import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from opgkit import PROJECT_ROOT
from opgkit.cli import ExitCode
from opgkit.operators.command import chain_identity
from opgkit.operators.store import Store
from opgkit.receipts import Status
from opgkit.testing import advance
from settlement_helpers import CHALLENGE_WINDOW, PRICE, PROOF_WINDOW, Mode, authorization, receipt

NODE_BOND = 50_000 * 10**18  # as in conftest.py
INFERENCE_NODE = 0


# ---------------------------------------------------------------- running the keeper


def keeper_command(uri, settlement, state, *extra):
    return ["ape", "run", "keeper", "--network", uri, "--account", "TEST::9", "--settlement", str(settlement.address),
            "--state", str(state), "--confirmations", "0", *extra]


def run_keeper(uri, settlement, state, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(keeper_command(uri, settlement, state, *extra), cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def start_keeper(uri, settlement, state, *extra) -> subprocess.Popen:
    return subprocess.Popen(keeper_command(uri, settlement, state, *extra), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})


class Lines:
    """The stdout lines of a running keeper, waited for with a timeout."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.queue = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.queue.put(line)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s; saw {self.seen}")


def succeeded(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def actions(output: str, event: str) -> list[str]:
    return [line for line in output.splitlines() if f" {event}:" in line]


# ---------------------------------------------------------------- the protocol's side



@pytest.fixture
def post_pending(settlement, operator, alice, sign_auth, chain):
    """Post `r` as pending from the TEE operator, under alice's authorization."""

    def post(r):
        if chain.pending_timestamp <= r.timestamp:
            advance(chain, 1)
        auth = authorization(r, node=operator.address)
        return settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)

    return post


def proofs_missed(settlement, start_block, request_id=None) -> list:
    logs = list(settlement.ProofMissed.range(start_block, settlement.chain_manager.blocks.height + 1))
    return [log for log in logs if request_id is None or log.requestId == request_id]


@pytest.fixture
def keeper_db(tmp_path):
    return tmp_path / "keeper.db"


# ---------------------------------------------------------------- missed proofs


def test_keeper__missed_proof__reported_once_and_delivered_never(uri, settlement, staking, tee_receipt, tee_key,
                                                                 post_pending,
                                                                 sign, operator, alice, bob, reporter, chain,
                                                                 keeper_db):
    start = chain.blocks.head.number
    missed, delivered = tee_receipt("keeper-missed"), tee_receipt("keeper-delivered")
    post_pending(missed)
    post_pending(delivered)
    settlement.deliverProof(delivered.as_args(), sign(delivered, tee_key), sender=bob)
    advance(chain, PROOF_WINDOW + 1)
    escrow = settlement.escrowOf(alice)

    first = succeeded(run_keeper(uri, settlement, keeper_db))
    assert len(actions(first, "missed-proof-reported")) == 1
    assert missed.requestId.hex()[-8:] in actions(first, "missed-proof-reported")[0].lower()
    assert [log.requestId for log in proofs_missed(settlement, start)] == [missed.requestId]
    assert delivered.requestId.hex()[-8:] not in first.lower()  # its task ended with the delivery
    assert settlement.recordOf(alice, missed.requestId).status == Status.FAILED
    assert settlement.recordOf(alice, delivered.requestId).status == Status.FINAL
    assert settlement.escrowOf(alice) == escrow + PRICE
    assert staking.pendingSlash(operator).reporter == reporter.address

    # The second run reports nothing again; it applies the slash that the report recorded.
    second = succeeded(run_keeper(uri, settlement, keeper_db))
    assert actions(second, "missed-proof-reported") == []
    assert len(actions(second, "slash-applied")) == 1
    assert len(proofs_missed(settlement, start)) == 1
    assert staking.pendingSlash(operator).fractionBps == 0

    third = succeeded(run_keeper(uri, settlement, keeper_db))
    assert [line for line in third.splitlines() if "(tx " in line] == []
    with sqlite3.connect(keeper_db) as db:  # every block up to the head scanned once, not again
        assert int(db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()[0]) == chain.blocks.head.number


def test_keeper__proof_not_yet_due__not_reported(uri, settlement, tee_receipt, post_pending, alice, chain, keeper_db):
    start = chain.blocks.head.number
    pending = tee_receipt("keeper-not-due")
    post_pending(pending)
    output = succeeded(run_keeper(uri, settlement, keeper_db))
    assert actions(output, "missed-proof-reported") == []
    assert "ERROR" not in output  # not even tried
    assert proofs_missed(settlement, start) == []
    assert settlement.recordOf(alice, pending.requestId).status == Status.PENDING


def test_keeper__killed_at_random_then_restarted__every_missed_proof_reported_exactly_once(
        uri, settlement, tee_receipt, post_pending, chain, tmp_path):
    start = chain.blocks.head.number
    requests_ = [tee_receipt(f"keeper-crash-{i}", price=0) for i in range(6)]
    for r in requests_:
        post_pending(r)
    advance(chain, PROOF_WINDOW + 1)
    state = tmp_path / "crash.db"
    seed = random.randrange(2**32)
    rng = random.Random(seed)

    process = start_keeper(uri, settlement, state)
    lines = Lines(process)
    reported_before_kill = rng.randrange(0, 4)
    if reported_before_kill:
        for _ in range(reported_before_kill):
            lines.wait_for("missed-proof-reported")
    else:
        lines.wait_for(r" start:")
    time.sleep(rng.uniform(0, 0.5))
    process.kill()  # SIGKILL: no clean-up of any kind
    process.wait(timeout=30)

    outputs = [succeeded(run_keeper(uri, settlement, state)) for _ in range(2)]
    for r in requests_:
        assert len(proofs_missed(settlement, start, r.requestId)) == 1, (seed, lines.seen, outputs)
    assert "task-failed" not in "".join(outputs), outputs


# ---------------------------------------------------------------- held batch payments


def test_keeper__batch_payment_held__released_once_batch_final(uri, settlement, batches, make_batch, post, open_model,
                                                              operator, alice, sign_auth, now, chain, keeper_db):
    paid = receipt("keeper-held", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    batch = make_batch([(paid, operator), (receipt("keeper-free", open_model, operator.address, now()), operator)])
    batch_id = post(batch)
    auth = authorization(paid)
    batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice), sender=operator)
    assert settlement.custodyOf(alice, paid.requestId).held == PRICE

    early = succeeded(run_keeper(uri, settlement, keeper_db))  # the batch can still be challenged: wait
    assert actions(early, "batch-payment-released") == [] and "ERROR" not in early
    assert settlement.custodyOf(alice, paid.requestId).held == PRICE

    advance(chain, CHALLENGE_WINDOW + 1)
    output = succeeded(run_keeper(uri, settlement, keeper_db))
    assert len(actions(output, "batch-payment-released")) == 1
    assert settlement.custodyOf(alice, paid.requestId).held == 0
    assert settlement.proceedsOf(operator) > 0
    assert settlement.recordOf(alice, paid.requestId).status == Status.FINAL


# ---------------------------------------------------------------- slashes and activity


def test_keeper__pending_slash__applied_and_json_lines(uri, settlement, staking, operator, jail, keeper_db):
    jail(operator)
    assert staking.pendingSlash(operator).fractionBps != 0
    output = succeeded(run_keeper(uri, settlement, keeper_db, "--json"))
    records = [json.loads(line) for line in output.splitlines()]
    applied = [record for record in records if record["event"] == "slash-applied"]
    assert len(applied) == 1
    assert applied[0]["role"] == "keeper" and applied[0]["outcome"] == "sent" and applied[0]["tx"]
    assert staking.pendingSlash(operator).fractionBps == 0


def test_keeper__slash_applied_by_the_pool_itself__not_sent(uri, settlement, staking, operator, jail, keeper_db):
    jail(operator)
    staking.applySlash(operator, sender=operator)
    output = succeeded(run_keeper(uri, settlement, keeper_db))
    assert actions(output, "slash-applied") == []
    assert len(actions(output, "slash-already-applied")) == 1


def test_keeper__minimum_stake_raised__activity_history_follows(uri, settlement, staking, operator, operator2, gov,
                                                                 chain, keeper_db):
    staking.setMinimumStake(INFERENCE_NODE, NODE_BOND + 1, sender=gov)
    assert not staking.isActiveOperator(operator, INFERENCE_NODE)
    assert staking.wasActiveOperator(operator, INFERENCE_NODE, chain.blocks.head.timestamp)

    output = succeeded(run_keeper(uri, settlement, keeper_db))
    refreshed = actions(output, "activity-refreshed")
    assert len(refreshed) == 1 and operator.address in refreshed[0]
    assert operator2.address in "".join(actions(output, "activity-current"))
    advance(chain, 10)
    assert not staking.wasActiveOperator(operator, INFERENCE_NODE, chain.blocks.head.timestamp)
    assert staking.wasActiveOperator(operator, 1, chain.blocks.head.timestamp)  # its TEE role is unchanged


# ---------------------------------------------------------------- the operator surface


def test_keeper__metrics_served_while_following(uri, settlement, staking, operator, jail, keeper_db):
    jail(operator)
    process = start_keeper(uri, settlement, keeper_db, "--follow", "--poll", "0.2", "--metrics", "127.0.0.1:0")
    try:
        lines = Lines(process)
        address = re.search(r"http://(\S+)/metrics", lines.wait_for("serving Prometheus metrics")).group(1)
        lines.wait_for("slash-applied")
        metrics = requests.get(f"http://{address}/metrics", timeout=10).text
        assert 'opg_keeper_tasks_done_total{kind="apply-slash",outcome="sent"} 1.0' in metrics
        assert 'opg_keeper_transactions_sent_total{kind="apply-slash"} 1.0' in metrics
        assert "opg_keeper_tasks_pending 0.0" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == ExitCode.OK
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_keeper__state_of_another_contract__refused(uri, settlement, chain, keeper_db):
    Store(keeper_db, "keeper", chain_identity(chain.provider), "0x" + "11" * 20, "").close()
    result = run_keeper(uri, settlement, keeper_db)
    assert result.returncode == ExitCode.ERROR, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "belongs to keeper of contract 0x1111" in errors[0]
    assert "Traceback" not in result.stderr


def test_keeper__state_of_another_chain__refused(uri, settlement, keeper_db):
    Store(keeper_db, "keeper", "1:0x00", str(settlement.address), "").close()
    result = run_keeper(uri, settlement, keeper_db)
    assert result.returncode == ExitCode.ERROR, result.stdout + result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")][0].count("on chain 1:0x00,") == 1
    assert "Traceback" not in result.stderr


def test_keeper__dead_node__named_error(settlement, keeper_db):
    result = subprocess.run(keeper_command("http://127.0.0.1:9", settlement, keeper_db, "--rpc-attempts", "2"),
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == ExitCode.ERROR, result.stdout + result.stderr
    assert "error: cannot reach the node" in result.stderr
    assert "Traceback" not in result.stderr
