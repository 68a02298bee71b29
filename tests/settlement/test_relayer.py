"""`ape run relayer`, run as a relayer runs it against the test's own anvil: receipts in, batches posted once."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit import PROJECT_ROOT
from opgkit.batch_document import document_name, parse
from opgkit.operators.relayer import throughput
from opgkit.operators.store import Store
from opgkit.receipt_verifier import document_json
from opgkit.testing import LineReader, advance
from settlement_helpers import DAY, Mode, receipt

# The relayer runs as its own process against a node over JSON-RPC.
pytestmark = pytest.mark.anvil_only

FORGED = b"\x11" * 65


@pytest.fixture
def run(uri, settlement, tmp_path):
    """Run the relayer to completion (account TEST::8, the active relayer) with the test's state and directories."""

    def run(*args, timeout=240):
        return subprocess.run(command(uri, settlement, tmp_path, *args), cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=timeout, env=environment())

    return run


@pytest.fixture
def start(uri, settlement, tmp_path):
    """Start the relayer as a background process (JSON lines, unbuffered); returns it and its line reader."""
    started = []

    def start(*args):
        process = subprocess.Popen(command(uri, settlement, tmp_path, "--json", *args), cwd=PROJECT_ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
        started.append(process)
        return process, LineReader(process)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def command(uri, settlement, tmp_path, *args):
    return ["ape", "run", "relayer", "--network", uri, "--account", "TEST::8", "--settlement", str(settlement.address),
            "--state", str(tmp_path / "relayer.db"), "--publish-dir", str(tmp_path / "batches"), *args]


def environment():
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def spool(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory


@pytest.fixture
def honest(open_model, operator, alice, now, sign):
    """A receipt document signed by the active node `operator`, for a request of `alice`."""

    def make(label, timestamp=None, **kwargs):
        r = receipt(label, open_model, operator.address, now() if timestamp is None else timestamp,
                    payer=alice.address, **kwargs)
        return document_json(r, sign(r, operator))

    return make


def write(spool, name, document):
    (spool / f"{name}.json").write_text(json.dumps(document))


def posted_since(batches, block):
    return list(batches.BatchPosted.range(block, batches.chain_manager.blocks.head.number + 1))


def published(tmp_path, chain_id, batches, event):
    """The published document of a posted batch, checked against its chain and contract."""
    return parse((tmp_path / "batches" / document_name(event.root)).read_bytes(), chain_id, batches.address)


def lines_of(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def request_of(document):
    return document["receipt"]["requestId"]


# ---------------------------------------------------------------- batches posted


def test_relayer__valid_receipts__one_batch_posted_after_its_document(run, honest, spool, tmp_path, batches, chain):
    documents = [honest(f"relay {i}") for i in range(5)]
    for i, document in enumerate(documents):
        write(spool, f"r{i}", document)
    advance(chain, 1)  # every receipt strictly older than the posting block
    start_block = chain.blocks.head.number + 1

    result = run("--spool", str(spool), "--flush")

    assert result.returncode == 0, result.stdout + result.stderr
    [event] = posted_since(batches, start_block)
    document = published(tmp_path, chain.chain_id, batches, event)
    assert event.count == 5 and document.batch().root == bytes(event.root)
    assert event.dataUri == (tmp_path / "batches").resolve().as_uri() + "/" + document_name(event.root)
    assert sorted(request_of(document_json(leaf.receipt)) for leaf in document.leaves) == sorted(
        request_of(d) for d in documents)
    batch = document.batch()
    for index in range(len(batch)):
        assert batches.faultOf(event.batchId, batch.leaf(index)) == 0
        assert batches.isIncluded(event.batchId, batch.leaf(index))
    assert sorted(p.name for p in (spool / "accepted").iterdir()) == [f"r{i}.json" for i in range(5)]
    assert "INFO  posted: batch 1 is #" in result.stdout


def test_relayer__faulty_receipts__each_rejected_with_its_reason_none_posted(
        run, honest, spool, tmp_path, batches, chain, open_model, operator, alice, now, sign, settlement):
    stranger = Account.create()
    unknown = receipt("unknown model", keccak(text="no such model"), operator.address, now(), payer=alice.address)
    inactive = receipt("inactive", open_model, stranger.address, now(), payer=alice.address)
    zkml = receipt("zkml", open_model, operator.address, now(), mode=Mode.ZKML, payer=alice.address)
    faulty = {
        "forged": (dict(honest("forged"), signature="0x" + FORGED.hex()), "bad_signature"),
        "inactive": (document_json(inactive, sign(inactive, stranger)), "signer_inactive"),
        "unknown": (document_json(unknown, sign(unknown, operator)), "unknown_model"),
        "zkml": (document_json(zkml, sign(zkml, operator)), "mode_not_batchable"),
        "old": (honest("too old", timestamp=now() - DAY - 100), "too_old"),
        "future": (honest("future", timestamp=now() + 3_600), "future"),
        "unsigned": ({"receipt": honest("unsigned")["receipt"]}, "unsigned"),
    }
    for name, (document, _) in faulty.items():
        write(spool, name, document)
    (spool / "garbage.json").write_text("{not json")
    write(spool, "valid", honest("the valid one"))
    advance(chain, 1)
    start_block = chain.blocks.head.number + 1

    result = run("--spool", str(spool), "--flush")

    assert result.returncode == 0, result.stdout + result.stderr
    for name, (_, reason) in faulty.items():
        assert (spool / "rejected" / f"{name}.json").exists()
        assert (spool / "rejected" / f"{name}.json.reason").read_text().startswith(f"{reason}: "), name
    assert (spool / "rejected" / "garbage.json.reason").read_text().startswith("malformed: ")
    [event] = posted_since(batches, start_block)
    [leaf] = published(tmp_path, chain.chain_id, batches, event).leaves
    assert event.count == 1 and leaf.receipt.requestId == keccak(text="request the valid one")


def test_relayer__duplicates__one_per_request_identical_ones_no_ops(run, honest, spool, tmp_path, batches, chain):
    first = honest("dup")
    write(spool, "a", first)
    write(spool, "b", first)  # identical: a no-op
    write(spool, "c", honest("dup", text="another answer"))  # same request, another receipt: a duplicate
    advance(chain, 1)
    start_block = chain.blocks.head.number + 1

    result = run("--spool", str(spool), "--flush")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (spool / "accepted").iterdir()) == ["a.json", "b.json"]
    assert (spool / "rejected" / "c.json.reason").read_text().startswith("duplicate: ")
    [event] = posted_since(batches, start_block)
    assert event.count == 1

    write(spool, "again", first)  # already batched: a no-op, nothing more posted
    again = run("--spool", str(spool), "--flush")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(posted_since(batches, start_block)) == 1
    assert (spool / "accepted" / "again.json").exists()


def test_relayer__too_old_by_the_time_it_is_mined__expired_warned_not_posted(
        run, honest, spool, tmp_path, batches, chain, now):
    advance(chain, DAY)  # the node was active a day ago
    write(spool, "fresh", honest("fresh"))
    write(spool, "stale", honest("stale", timestamp=now() - DAY + 60))  # accepted now, too old 120 s from now
    advance(chain, 1)
    start_block = chain.blocks.head.number + 1

    result = run("--spool", str(spool), "--flush")

    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not an alert
    assert "WARN  expired: request 0x" + keccak(text="request stale").hex() in result.stdout
    [event] = posted_since(batches, start_block)
    [leaf] = published(tmp_path, chain.chain_id, batches, event).leaves
    assert leaf.receipt.requestId == keccak(text="request fresh")
    with sqlite3.connect(tmp_path / "relayer.db") as db:
        assert db.execute("SELECT state FROM receipts ORDER BY id").fetchall() == [("batched",), ("expired",)]


def test_relayer__receipt_ahead_of_the_chain__waits_then_posted(run, honest, spool, batches, chain, now):
    write(spool, "ahead", honest("ahead", timestamp=now() + 30))  # within --future-tolerance
    start_block = chain.blocks.head.number + 1

    first = run("--spool", str(spool), "--flush")

    assert first.returncode == 0, first.stdout + first.stderr
    assert (spool / "accepted" / "ahead.json").exists() and posted_since(batches, start_block) == []
    advance(chain, 40)
    second = run("--flush")
    assert second.returncode == 0, second.stdout + second.stderr
    [event] = posted_since(batches, start_block)
    assert event.count == 1


# ---------------------------------------------------------------- the HTTP endpoint, JSON lines and metrics


def post_json(url, body: bytes):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_relayer__http_endpoint__status_codes_then_posts_and_serves_the_document(
        start, honest, batches, chain, tmp_path):
    process, reader = start("--follow", "--poll", "0.2", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                            "--max-wait", "0")
    events = {}
    for line in reader.until(lambda line: json.loads(line)["event"] == "start", timeout=120):
        record = json.loads(line)
        events[record["event"]] = record
    base = events["listen"]["message"].split("accepting receipts at ")[1].split("/receipts")[0]
    metrics_url = events["metrics"]["message"].split("at ")[1]
    start_block = chain.blocks.head.number + 1
    document = honest("over http")

    assert post_json(f"{base}/receipts", json.dumps(document).encode())[0] == 202
    assert post_json(f"{base}/receipts", json.dumps(document).encode()) == (
        202, {"status": "known", "request": request_of(document)})
    status, body = post_json(f"{base}/receipts", json.dumps(honest("over http", text="other")).encode())
    assert (status, body["reason"]) == (409, "duplicate")
    status, body = post_json(f"{base}/receipts", json.dumps(dict(honest("forged http"),
                                                                 signature="0x" + FORGED.hex())).encode())
    assert (status, body["reason"]) == (400, "bad_signature")
    assert post_json(f"{base}/receipts", b"[1, 2")[0] == 400

    advance(chain, 1)  # the chain passes the receipt's second: its batch is due at once (--max-wait 0)
    posted = json.loads(reader.until(lambda line: json.loads(line)["event"] == "posted", timeout=60)[-1])
    [event] = posted_since(batches, start_block)
    assert posted["root"] == "0x" + bytes(event.root).hex() and event.count == 1
    assert event.dataUri == f"{base}/batches/{document_name(event.root)}"
    with urllib.request.urlopen(event.dataUri, timeout=30) as response:
        assert parse(response.read(), chain.chain_id, batches.address).batch().root == bytes(event.root)
    with urllib.request.urlopen(metrics_url, timeout=30) as response:
        metrics = response.read().decode()
    for line in ("opg_relayer_receipts_accepted_total 1.0",
                 'opg_relayer_receipts_rejected_total{reason="duplicate"} 1.0',
                 'opg_relayer_receipts_rejected_total{reason="bad_signature"} 1.0',
                 "opg_relayer_receipts_batched_total 1.0", "opg_relayer_batches_posted_total 1.0",
                 "opg_relayer_queue_depth 0.0"):
        assert line in metrics, line

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    for line in reader.drain():
        json.loads(line)  # --json prints JSON lines only


# ---------------------------------------------------------------- crashes


MOMENTS = ["mined", "accepted", "built", "published", "mined", "start", "posted", "mined"]
"""Where each run is killed: some random delay after that log line, or ("mined") as soon as the chain shows a
batch the relayer has not recorded yet (its most dangerous instant: a restart must not post it again)."""


def kill_once_mined(process, batches):
    posted = batches.batchCount()
    deadline = time.monotonic() + 120
    while process.poll() is None and batches.batchCount() == posted:
        assert time.monotonic() < deadline, "the relayer posted nothing in 120 s"


def test_relayer__killed_at_random_moments__every_receipt_in_exactly_one_posted_batch(
        start, run, honest, spool, tmp_path, batches, chain):
    rng = random.Random(20261130)
    expected = set()
    start_block = chain.blocks.head.number + 1
    for cycle in range(len(MOMENTS)):
        for i in range(8):
            document = honest(f"crash {cycle} {i}")
            expected.add(request_of(document))
            write(spool, f"c{cycle}-{i}", document)
        advance(chain, 1)
        process, reader = start("--spool", str(spool), "--batch-size", "3", "--flush")
        moment = MOMENTS[cycle % len(MOMENTS)]
        if moment == "mined":
            kill_once_mined(process, batches)
        else:
            reader.until(lambda line: json.loads(line)["event"] in (moment, "posted"), timeout=120)
            time.sleep(rng.uniform(0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        for event in posted_since(batches, start_block):  # published before posted, whenever it was killed
            assert (tmp_path / "batches" / document_name(event.root)).is_file(), f"{moment}: posted unpublished"

    result = run("--spool", str(spool), "--batch-size", "3", "--flush")

    assert result.returncode == 0, result.stdout + result.stderr
    events = posted_since(batches, start_block)
    roots = [bytes(event.root) for event in events]
    assert len(roots) == len(set(roots)), "a root was posted twice"
    leaves = [request_of(document_json(leaf.receipt))
              for event in events for leaf in published(tmp_path, chain.chain_id, batches, event).leaves]
    assert sum(event.count for event in events) == len(leaves) == len(expected)
    assert set(leaves) == expected
    assert not list(spool.glob("*.json"))
    with sqlite3.connect(tmp_path / "relayer.db") as db:
        states = db.execute("SELECT state, COUNT(*) FROM receipts GROUP BY state").fetchall()
        assert states == [("batched", 8 * len(MOMENTS))]
        assert db.execute("SELECT COUNT(*) FROM batches WHERE state = 'posted'").fetchone()[0] == len(events)


# ---------------------------------------------------------------- errors


def one_error_line(result):
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    return errors[0]


def test_relayer__state_of_another_chain__exit_2_one_error_line(run, tmp_path, settlement):
    Store(tmp_path / "relayer.db", "relayer", "1:0x00", str(settlement.address), "").close()
    result = run()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "on chain 1:0x00, not this relayer" in one_error_line(result)


def test_relayer__dead_node__exit_2_named_no_traceback(settlement, tmp_path):
    result = subprocess.run(command("http://127.0.0.1:9", settlement, tmp_path, "--rpc-attempts", "2"),
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot reach the node" in one_error_line(result)


def test_relayer__not_an_active_relayer__exit_2_before_anything(uri, settlement, tmp_path):
    args = command(uri, settlement, tmp_path)
    args[args.index("TEST::8")] = "TEST::7"  # an inference node, not a relayer
    result = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not an active settlement relayer" in one_error_line(result)


# ---------------------------------------------------------------- throughput (OPG_RELAYER_BENCH=1)


@pytest.mark.skipif(not os.environ.get("OPG_RELAYER_BENCH"), reason="a benchmark: set OPG_RELAYER_BENCH=1")
def test_relayer__throughput__1000_receipts(run, honest, spool, chain):
    for i in range(1_000):
        write(spool, f"b{i:04}", honest(f"bench {i}"))
    advance(chain, 1)
    result = run("--spool", str(spool), "--flush", "--json", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    rates = throughput(lines_of(result))
    print(f"\nrelayer throughput: {rates}")
    assert rates["accepted"] == rates["batched"] == 1_000


# ---------------------------------------------------------------- attacks from the review


def event_of(line):
    """The event of a --json line (every line of --json output must be JSON, reverts included)."""
    try:
        return json.loads(line)["event"]
    except ValueError:
        pytest.fail(f"not a JSON line: {line!r}")


def test_relayer__post_reverted_then_retried_after_the_age_limit__dissolved_not_posted_stale(
        start, honest, spool, tmp_path, batches, chain, staking, gov):
    """A post that reverted (the relayer briefly inactive) used to be re-sent later without being judged again:
    its leaves, too old by then, made the posted batch faulty and the relayer slashable."""
    from opgkit.deploy import OPG

    process, reader = start("--follow", "--poll", "0.2", "--spool", str(spool), "--max-wait", "0")
    reader.until(lambda line: event_of(line) == "start", timeout=120)
    minimum = staking.minimumStake(2)
    staking.setMinimumStake(2, 60_000 * OPG, sender=gov)  # the relayer's 50,000 no longer suffice: posts revert
    try:
        write(spool, "r0", honest("stale after a revert"))
        advance(chain, 1)
        reader.until(lambda line: event_of(line) == "post-failed", timeout=120)
        advance(chain, DAY + 600)  # the receipt is now older than the age limit
        first_block = chain.blocks.head.number + 1
    finally:
        staking.setMinimumStake(2, minimum, sender=gov)
    reader.until(lambda line: event_of(line) == "dissolved", timeout=120)
    reader.until(lambda line: event_of(line) == "expired", timeout=120)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert posted_since(batches, first_block) == []


def test_relayer__unstaked_key_cannot_squat_a_request_with_a_receipt_dated_now(run, honest, spool, open_model, alice,
                                                                              now, sign, chain):
    """A receipt dated at the chain's latest second waits for the chain to pass it; it used to be accepted on its
    signature alone, so any key could take a payer's request and push the honest receipt out as a duplicate."""
    advance(chain, 10)  # the honest receipt below, signed 5 s ago, comes after the node's registration
    stranger = Account.create()
    squat = receipt("victim", open_model, stranger.address, now(), payer=alice.address)
    write(spool, "a-squat", document_json(squat, sign(squat, stranger)))
    write(spool, "b-honest", honest("victim", timestamp=now() - 5))
    result = run("--spool", str(spool))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (spool / "rejected" / "a-squat.json.reason").read_text().startswith("signer_inactive"), result.stdout
    assert (spool / "accepted" / "b-honest.json").exists()


def test_relayer__same_receipt_from_http_and_spool_while_a_batch_is_cut__stays_batched(
        settlement, tmp_path, chain, honest):
    """Two intakes (spool and HTTP) take the same receipt; the slower one finishes judging after the first one's
    receipt was cut into a batch. Its write used to turn the batched receipt back into a queued one (posted twice,
    or a batch that no longer rebuilds)."""
    import threading
    from types import SimpleNamespace

    from opgkit.leaf_faults import Contracts, LeafJudge
    from opgkit.operators.metrics import OperatorMetrics
    from opgkit.operators.relayer import SCHEMA, Counters, Intake, RelayerOptions, second_connection
    from opgkit.operators.sending import SENDS_SCHEMA

    store = Store(tmp_path / "r.db", "relayer", "1:0x00", str(settlement.address), SCHEMA + SENDS_SCHEMA)
    runtime = SimpleNamespace(retry=lambda call: call(), log=lambda *args, **fields: None)
    counters = Counters(OperatorMetrics("relayer_race"))
    judge = LeafJudge(settlement.provider.web3, Contracts.of(settlement))
    entered, gate = threading.Event(), threading.Event()

    class SlowJudge(LeafJudge):
        def fault_of(self, *args, **kwargs):
            entered.set()
            gate.wait(timeout=30)
            return super().fault_of(*args, **kwargs)

    document = honest("raced")
    advance(chain, 1)
    options = RelayerOptions()
    spool_intake = Intake(store, judge, runtime, options, counters)
    http_intake = Intake(second_connection(store), SlowJudge(judge.web3, judge.contracts), runtime, options, counters)
    verdicts = {}
    thread = threading.Thread(target=lambda: verdicts.setdefault("http", http_intake.submit(document, "http")))
    thread.start()
    assert entered.wait(timeout=30)
    assert spool_intake.submit(document, "spool:a.json").status == "accepted"
    with store.transaction() as db:  # what cutting a batch does
        batch = db.execute("INSERT INTO batches (root, count, data_uri, state, built_at) VALUES ('0x00', 1, 'u', "
                           "'built', 0)").lastrowid
        db.execute("UPDATE receipts SET state = 'batched', batch = ? WHERE state = 'queued'", (batch,))
    gate.set()
    thread.join(timeout=60)
    assert verdicts["http"].status == "known"
    assert store.all("SELECT state, batch FROM receipts") == [("batched", batch)]


def test_relayer__hostile_spool_entries__skipped_or_renamed_never_followed(run, honest, spool, tmp_path, chain):
    """Whoever writes the spool must not be able to stop the relayer (a directory named *.json, a name already
    taken in accepted/) nor make it write through a symlink planted where a .reason file goes."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    (spool / "rejected").mkdir()
    (spool / "accepted").mkdir()
    (spool / "rejected" / "bad.json.reason").symlink_to(victim)
    (spool / "not-a-file.json").mkdir()
    write(spool, "bad", {"receipt": "nonsense"})
    write(spool, "good", honest("spool collisions"))
    (spool / "accepted" / "good.json").write_text("an earlier submission under the same name")
    advance(chain, 1)
    result = run("--spool", str(spool))
    assert result.returncode == 0, result.stdout + result.stderr
    assert victim.read_text() == "untouched\n"
    assert (spool / "accepted" / "good.json.1").exists() and (spool / "not-a-file.json").is_dir()
    reason = spool / "rejected" / "bad.json.reason"
    assert (spool / "rejected" / "bad.json").exists() and not reason.is_symlink()
    assert reason.read_text().startswith("malformed")
