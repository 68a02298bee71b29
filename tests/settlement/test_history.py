"""The execution history (`opgkit.history`, `ape run history`): a scripted run of the protocol rebuilt exactly from
its events, indexed incrementally and resumably, scored, and printed by the script run as a process.

The scripted run (module fixture `scenario`): `operator` (inference + TEE node, TEE key `tee_key`) settles two
VANILLA receipts and one TEE receipt individually, one TEE receipt asynchronously (proof delivered), answers one
request 30 s after it was opened, has one leaf claimed from a batch that stands and one from a batch that is
challenged (rejected; its relayer `operator2` slashed and jailed), and misses one asynchronous proof, which is
reported (slashed and jailed). Three heartbeats of its TEE are relayed along the way (one before each TEE receipt).
"""

import json
import sqlite3
import subprocess

import pytest
from eth_utils import keccak

from opgkit import PROJECT_ROOT
from opgkit.attestation import sign_heartbeat
from opgkit.cli import ExitCode
from opgkit.history.index import Indexer, Sources, open_database
from opgkit.history.record import model_record, node_record
from opgkit.history.reputation import LATENCY_TARGET_SECONDS, reputation
from opgkit.manifest import OutputManifest
from opgkit.operators.store import Store
from opgkit.receipts import NO_AUTHORIZATION, sign_payment, sign_receipt
from opgkit.testing import advance
from settlement_helpers import PRICE, PROOF_WINDOW, Mode, authorization, post_batch, receipt, signed_batch

LATENCY = 30
BAD_SIGNATURE = b"\x11" * 65


def key_of(signer):
    return signer.key if hasattr(signer, "key") else signer.private_key


@pytest.fixture(scope="module")
def scenario(settlement, batches, staking, tees, requests, feed, open_model, tee_key, operator, operator2, alice, bob,
             reporter, deployer, chain):
    """Run the module docstring's script; returns what the tests compare against (heartbeat times, slashes)."""
    sign = lambda r, signer: sign_receipt(settlement, r, key_of(signer))  # noqa: E731
    beats = []

    def beat():
        timestamp = chain.blocks.head.timestamp + 1
        chain.pending_timestamp = timestamp
        tees.heartbeat(tee_key.address, timestamp, sign_heartbeat(tees, tee_key, timestamp), sender=deployer)
        advance(chain, 1)
        beats.append(timestamp)
        return timestamp

    def tee(label):
        return receipt(label, open_model, tee_key.address, beat(), mode=Mode.TEE, payer=alice.address)

    def post_pending(r):
        advance(chain, 1)
        auth = authorization(r, node=operator.address)
        settlement.postPending(r.as_args(), auth.as_args(), sign_payment(settlement, auth, key_of(alice)),
                               sender=operator)

    start = chain.blocks.head.number
    for label in ("hist-v1", "hist-v2"):
        r = receipt(label, open_model, operator.address, chain.blocks.head.timestamp, payer=alice.address)
        settlement.settle(r.as_args(), sign(r, operator), sender=alice)
    r = tee("hist-tee")
    settlement.settle(r.as_args(), sign(r, tee_key), sender=alice)
    delivered = tee("hist-async")
    post_pending(delivered)
    settlement.deliverProof(delivered.as_args(), sign(delivered, tee_key), sender=bob)

    question = keccak(text="question hist")
    tx = feed.ask(question, 3 * PRICE, 6 * 3_600, sender=alice)
    request_id = tx.events.filter(feed.Asked)[0].requestId
    output = OutputManifest(text="answer hist").canonical_json()
    answer = receipt("hist-request", open_model, operator.address, tx.timestamp, price=PRICE, payer=requests.address,
                     output_hash=keccak(output), input_hash=question).with_changes(requestId=request_id)
    chain.pending_timestamp = tx.timestamp + LATENCY
    requests.fulfill(request_id, answer.as_args(), sign(answer, operator), output, sender=operator)

    def leaf(label):
        return receipt(label, open_model, operator.address, chain.blocks.head.timestamp, payer=alice.address)

    good = signed_batch(sign, [(leaf("hist-batch-ok"), operator)])
    advance(chain, 1)
    good_id = post_batch(batches, good, operator2)
    batches.claimBatchReceipt(good_id, good.leaf(0), NO_AUTHORIZATION, b"", sender=alice)
    bad = signed_batch(sign, [(leaf("hist-batch-claimed"), operator), (leaf("hist-batch-forged"), None,
                                                                        BAD_SIGNATURE)])
    advance(chain, 1)
    bad_id = post_batch(batches, bad, operator2)
    batches.claimBatchReceipt(bad_id, bad.leaf(0), NO_AUTHORIZATION, b"", sender=alice)
    batches.challenge(bad_id, bad.leaf(1), sender=reporter)

    missed = tee("hist-missed")
    post_pending(missed)
    advance(chain, PROOF_WINDOW + 1)
    settlement.reportMissedProof(alice, missed.requestId, sender=reporter)
    slashes = list(staking.Slashed.range(start, chain.blocks.head.number + 1))
    return {"beats": beats, "slashes": {str(log.operator): int(log.fractionBps) for log in slashes}}


@pytest.fixture
def sources(settlement, requests):
    return Sources.from_settlement(settlement, requests)


def run_index(path, sources, chain, should_stop=lambda: False, retry=lambda call: call(), **options):
    store = open_database(path, chain.provider, sources)
    try:
        return Indexer(store, sources, chain.provider, retry=retry, **options).run(should_stop)
    finally:
        store.close()


def read(path, function, *args):
    with sqlite3.connect(path) as db:
        return function(db, *args)


def all_rows(path) -> dict:
    """Every event row of a history database, by table."""
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT IN ('meta', 'cursors')")]
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY block, log_index").fetchall() for table in tables}


def uptime_by_hand(beats, max_age, start, end) -> float:
    """Second by second: the share of [start, end) within max_age after a heartbeat."""
    covered = sum(1 for t in range(start, end) if any(b <= t < b + max_age for b in beats))
    return covered / (end - start)


# ---------------------------------------------------------------- the record, rebuilt exactly


def test_history__scripted_run__node_and_model_records_exact(scenario, sources, tees, open_model, operator,
                                                            operator2, tee_key, chain, tmp_path):
    path = tmp_path / "history.sqlite"
    run_index(path, sources, chain)
    record = read(path, node_record, operator.address)

    assert record.tee_keys == [tee_key.address]
    assert record.receipts.individual == {"VANILLA": 3, "TEE": 1}  # two settled, one request answered; one TEE
    assert record.receipts.async_ == {"TEE": 1}
    assert (record.receipts.batched, record.receipts.batched_rejected) == ({"VANILLA": 1}, {"VANILLA": 1})
    assert record.receipts.settled == 6
    assert (record.proofs_requested, record.proofs_delivered, record.proofs_missed) == (2, 1, 1)
    assert (record.batches_posted, record.batches_rejected) == (0, 0)
    assert record.slashes == 1
    assert record.slashed_fraction == pytest.approx(scenario["slashes"][operator.address] / 10_000)
    assert record.jails == 1 and record.jailed_until > chain.blocks.head.timestamp
    assert record.heartbeats == 3
    assert (record.requests_answered, record.median_latency) == (1, LATENCY)
    assert record.through_block == chain.blocks.head.number

    registered = list(tees.TeeRegistered.range(0, chain.blocks.head.number + 1))[0]
    start = chain.blocks[registered.block_number].timestamp
    # registering the key counts as its first heartbeat, as the registry records it
    expected = uptime_by_hand([start, *scenario["beats"]], tees.maxHeartbeatAge(), start,
                              chain.blocks.head.timestamp)
    assert 0 < expected < 1
    assert record.uptime == pytest.approx(expected)

    relayer = read(path, node_record, operator2.address)
    assert (relayer.batches_posted, relayer.batches_rejected, relayer.slashes, relayer.jails) == (2, 1, 1, 1)
    assert relayer.uptime is None and relayer.receipts.settled == 0

    model = read(path, model_record, "0x" + bytes(open_model).hex())
    assert model.receipts.individual == {"VANILLA": 3, "TEE": 1}
    assert model.receipts.async_ == {"TEE": 1}
    assert (model.receipts.batched, model.receipts.batched_rejected) == ({"VANILLA": 1}, {"VANILLA": 1})
    assert (model.requests_opened, model.requests_answered, model.median_latency) == (1, 1, LATENCY)
    assert model.nodes == [operator.address]


def test_history__reputation__equals_the_formula_by_hand(scenario, sources, operator, operator2, chain, tmp_path):
    path = tmp_path / "history.sqlite"
    run_index(path, sources, chain)
    record = read(path, node_record, operator.address)
    score = reputation(record)
    success = 6 / (6 + 1 + 0 + 1)  # settled / (settled + missed proofs + rejected batches + slashes)
    latency = 1 - LATENCY / LATENCY_TARGET_SECONDS
    assert (score.success, score.uptime, score.latency) == (success, record.uptime, pytest.approx(latency))
    assert score.score == pytest.approx(100 * (0.5 * success + 0.3 * record.uptime + 0.2 * latency))

    relayer = reputation(read(path, node_record, operator2.address))  # no receipts, no TEE, no answers
    assert (relayer.success, relayer.uptime, relayer.latency) == (0.0, 1.0, 1.0)
    assert relayer.score == pytest.approx(50.0)


# ---------------------------------------------------------------- incremental and resumable


def test_history__indexed_again__only_new_rows(scenario, sources, feed, staking, gov, operator, alice, chain,
                                                tmp_path):
    path = tmp_path / "history.sqlite"
    first = run_index(path, sources, chain)
    assert first.added["receipt_settled"] == 5 and first.added["heartbeat"] == 3
    before = all_rows(path)
    assert run_index(path, sources, chain).total == 0  # nothing new: nothing added

    feed.ask(keccak(text="question later"), 3 * PRICE, 3_600, sender=alice)
    staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
    staking.slash(operator, 100, keccak(text="later offence"), gov, sender=gov)
    second = run_index(path, sources, chain)
    assert second.added == {"request_opened": 1, "slashed": 1, "jailed": 1}
    after = all_rows(path)
    assert {table: rows[:len(before[table])] for table, rows in after.items()} == before
    assert read(path, node_record, operator.address).slashes == 2

    with sqlite3.connect(path) as db:  # forget every cursor: reading it all again changes nothing
        db.execute("DELETE FROM cursors")
    assert run_index(path, sources, chain).total == 0
    assert all_rows(path) == after


def test_history__chain_reorganised_under_the_cursor__replaced_events_forgotten(scenario, sources, feed, alice,
                                                                               chain, tmp_path):
    """Events of blocks a reorganisation replaced are forgotten and the new blocks read; nothing else moves."""
    path = tmp_path / "history.sqlite"
    run_index(path, sources, chain)
    before = all_rows(path)
    fork = chain.snapshot()
    feed.ask(keccak(text="asked on the branch that will be dropped"), 3 * PRICE, 3_600, sender=alice)
    chain.mine(3)
    assert run_index(path, sources, chain).added == {"request_opened": 1}
    dropped = all_rows(path)["request_opened"][-1]

    chain.restore(fork)  # the other branch: another question, and more blocks than the dropped one had
    feed.ask(keccak(text="asked on the branch that stays"), 3 * PRICE, 3_600, sender=alice)
    chain.mine(5)
    report = run_index(path, sources, chain)
    assert report.removed["request_opened"] >= 1  # noticed: the recent blocks are forgotten and read again
    after = all_rows(path)
    assert dropped not in after["request_opened"]
    assert len(after["request_opened"]) == len(before["request_opened"]) + 1
    assert {table: rows for table, rows in after.items() if table != "request_opened"} == \
        {table: rows for table, rows in before.items() if table != "request_opened"}


def test_history__stopped_and_crashed_midway__resumes_with_the_same_rows(scenario, sources, chain, tmp_path):
    whole = tmp_path / "whole.sqlite"
    run_index(whole, sources, chain)
    path = tmp_path / "resumed.sqlite"

    chunks = iter(range(8))  # eight chunks of 7 blocks: the settlement read, the other contracts not (yet)
    run_index(path, sources, chain, should_stop=lambda: next(chunks, None) is None, chunk_blocks=7)
    partial = sum(map(len, all_rows(path).values()))
    assert 0 < partial < sum(map(len, all_rows(whole).values()))

    calls = []

    def crash_on_fifth(call):  # the node "fails" mid-run: the chunk in hand is never committed
        calls.append(call)
        if len(calls) == 5:
            raise ConnectionError("killed")
        return call()

    with pytest.raises(ConnectionError):
        run_index(path, sources, chain, retry=crash_on_fifth, chunk_blocks=7)
    run_index(path, sources, chain, chunk_blocks=7)
    assert all_rows(path) == all_rows(whole)


# ---------------------------------------------------------------- the script as a process


def history_command(uri, settlement, requests, db, *extra):
    return ["ape", "run", "history", "--network", uri, "--settlement", str(settlement.address), "--requests",
            str(requests.address), "--db", str(db), *extra]


def run_history(*command) -> subprocess.CompletedProcess:
    return subprocess.run(history_command(*command), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_history_script__table_then_json(uri, scenario, settlement, requests, open_model, operator, tmp_path):
    db = tmp_path / "history.sqlite"
    model = "0x" + bytes(open_model).hex()
    table = run_history(uri, settlement, requests, db, "--node", operator.address, "--model", model)
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert any(line.split() == ["receipts", "individual", "VANILLA", "3,", "TEE", "1"] for line in lines), lines
    assert any(line.split() == ["proofs", "missed", "1"] for line in lines), lines
    assert any(line.split()[:1] == ["score"] for line in lines), lines
    assert f"model {model}" in table.stdout

    result = run_history(uri, settlement, requests, db, "--node", operator.address, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads(result.stdout)
    assert output["added"] == {}  # the first run indexed everything
    node = output["node"]
    assert node["receipts"] == {"individual": {"VANILLA": 3, "TEE": 1}, "async": {"TEE": 1},
                                "batched": {"VANILLA": 1}, "batched_rejected": {"VANILLA": 1}, "settled": 6}
    assert (node["proofs_missed"], node["slashes"], node["heartbeats"], node["median_latency"]) == (1, 1, 3, LATENCY)
    assert node["reputation"]["success"] == 0.75


def test_history_script__database_of_another_chain__exit_2_one_line(uri, settlement, requests, sources, tmp_path):
    db = tmp_path / "history.sqlite"
    Store(db, "history", "1:0x00", sources.identity(), "").close()
    result = run_history(uri, settlement, requests, db)
    assert result.returncode == ExitCode.ERROR, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "holds the history of" in errors[0] and "on chain 1:0x00," in errors[0]
    assert "Traceback" not in result.stderr


def test_attack_self_dealing__receipts_a_node_pays_for_itself__counted_apart(sources, staking, settlement, token,
                                                                           treasury, open_model, carol, chain,
                                                                           tmp_path):
    """Free receipts a node settles as its own payer would dilute its faults: they are counted apart."""
    token.transfer(carol, 60_000 * 10**18, sender=treasury)
    token.approve(staking, 2**256 - 1, sender=carol)
    staking.registerOperator(1, 50_000 * 10**18, 0, sender=carol)  # an inference node
    advance(chain, 1)
    for label in ("self 1", "self 2", "self 3"):
        r = receipt(label, open_model, carol.address, chain.blocks.head.timestamp, payer=carol.address)
        settlement.settle(r.as_args(), sign_receipt(settlement, r, key_of(carol)), sender=carol)
    path = tmp_path / "history.sqlite"
    run_index(path, sources, chain)
    record = read(path, node_record, carol.address)
    assert record.self_paid == 3
    assert record.receipts.settled == 0
    assert reputation(record).success == 1.0  # no work for anyone else, no fault
