"""The watchtower as a real process: it follows every batch, checks every leaf as the contract would, challenges
each faulty batch within its window and never an honest one, alerts on withheld or tampered data, and survives
restarts without missing a batch or challenging one twice."""

import os
import random
import signal
import subprocess
import time

import pytest
import requests
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, example as hypothesis_example, given, settings
from hypothesis import strategies as st

from opgkit.batch_document import BatchDocument, document_name
from opgkit.leaf_faults import Contracts, LeafJudge
from opgkit.operators.command import chain_identity
from opgkit.receipts import Fault, ReceiptBatch, SignedReceipt, sign_receipt
from opgkit.testing import LineReader, advance
from operator_helpers import (
    events, json_lines, publish_batch, run_operator, start_operator, state_rows, wait_for,
)
from conftest import private_key
from settlement_helpers import MAX_RECEIPT_AGE, OPG, RELAYER_BIT, Mode, receipt

pytestmark = pytest.mark.anvil_only

NODE_BOND = 50_000 * OPG
BAD_SIGNATURE = b"\x11" * 65
LEAF_KINDS = ("valid", "forged", "inactive", "unknown-model", "deprecated", "zkml", "too-old", "mode-not-accepted",
              "duplicate-within", "duplicate-across")
FAULTS = {"forged": Fault.BAD_SIGNATURE, "inactive": Fault.SIGNER_INACTIVE, "unknown-model": Fault.UNKNOWN_MODEL,
          "deprecated": Fault.MODEL_DEPRECATED, "zkml": Fault.MODE_NOT_BATCHABLE,
          "too-old": Fault.TIMESTAMP_OUT_OF_BOUNDS, "mode-not-accepted": Fault.MODE_NOT_ACCEPTED}
STRANGER = Account.from_key(keccak(text="watchtower test: a key nobody staked"))


@pytest.fixture(scope="module")
def deprecated_model(register_model, models, carol, chain):
    model = register_model("deprecated before signing", [Mode.VANILLA])
    models.deprecate(model, sender=carol)
    advance(chain, 2)
    return model


@pytest.fixture(scope="module")
def fresh_relayer(accounts, token, staking, treasury):
    """A new staked relayer per batch: a relayer whose batch is rejected is slashed and jailed."""

    def make():
        account = accounts.generate_test_account()
        treasury.transfer(account, 10**19)
        token.transfer(account, NODE_BOND, sender=treasury)
        token.approve(staking, NODE_BOND, sender=account)
        staking.registerOperator(RELAYER_BIT, NODE_BOND, 0, sender=account)
        return account

    return make


@pytest.fixture(scope="module")
def leaf_maker(settlement, open_model, tee_model, deprecated_model, operator, alice, chain):
    """Signed leaves of each kind in LEAF_KINDS (duplicates are made by the caller)."""
    counter = iter(range(10**9))

    def make(kind: str) -> SignedReceipt:
        label = f"watchtower {kind} {next(counter)}"
        now = chain.blocks.head.timestamp
        model, mode, timestamp, signer = open_model, Mode.VANILLA, now - 1, operator
        if kind == "unknown-model":
            model = keccak(text=label)
        elif kind == "deprecated":
            model = deprecated_model
        elif kind == "zkml":
            mode = Mode.ZKML
        elif kind == "too-old":
            timestamp = now - MAX_RECEIPT_AGE - 60
        elif kind == "mode-not-accepted":
            model = tee_model  # TEE only: a VANILLA receipt is below its policy
        elif kind == "inactive":
            signer = STRANGER
        r = receipt(label, model, signer.address, timestamp, mode=mode, payer=alice.address)
        return SignedReceipt(r, BAD_SIGNATURE if kind == "forged" else sign_receipt(settlement, r, private_key(signer)))

    return make


@pytest.fixture
def post_published(batches, chain, tmp_path):
    """Publish a batch's document (file://) and post its root; returns (batch id, dataUri)."""

    def post(batch: ReceiptBatch, relayer, uri=None):
        uri = uri or publish_batch(batches, batch, tmp_path / "batches")
        advance(chain, 1)
        tx = batches.postBatch(batch.root, len(batch), uri, sender=relayer)
        return tx.events.filter(batches.BatchPosted)[0].batchId, uri

    return post


def watch(uri, settlement, state, *options):
    return run_operator("watchtower", uri, settlement, state, "--confirmations", "0", "--json", *options)


def test_judge_agrees_with_fault_of_for_every_kind(settlement, batches, leaf_maker, fresh_relayer, post_published,
                                                   chain):
    """The Python judge the relayer and watchtower share gives the contract's answer for every kind of leaf."""
    leaves = [leaf_maker(kind) for kind in LEAF_KINDS if not kind.startswith("duplicate")]
    batch = ReceiptBatch(leaves)
    batch_id, _ = post_published(batch, fresh_relayer())
    judge = LeafJudge(settlement.provider.web3, Contracts.of(settlement))
    posted_at = batches.batch(batch_id).postedAt
    for index, signed in enumerate(leaves):
        assert judge.receipt_digest(signed.receipt) == bytes(settlement.receiptDigest(signed.receipt.as_args()))
        assert judge.fault_of(signed.receipt, signed.signature, posted_at) == Fault(batches.faultOf(batch_id,
                                                                                                   batch.leaf(index)))


def test_honest_batch__verified_not_challenged(uri, settlement, batches, leaf_maker, fresh_relayer, post_published,
                                               chain, tmp_path):
    start = chain.blocks.head.number + 1
    batch_id, _ = post_published(ReceiptBatch([leaf_maker("valid") for _ in range(3)]), fresh_relayer())
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start))
    assert result.returncode == 0, result.stdout + result.stderr
    (valid,) = events(result.stdout, "batch-valid")
    assert valid["batch"] == batch_id and valid["leaves"] == 3
    assert not batches.batch(batch_id).rejected


def test_forged_leaf__challenged_once_across_restarts(uri, settlement, batches, staking, leaf_maker, fresh_relayer,
                                                      post_published, chain, tmp_path, reporter):
    start = chain.blocks.head.number + 1
    relayer = fresh_relayer()
    leaves = [leaf_maker("valid"), leaf_maker("forged"), leaf_maker("valid")]
    batch_id, _ = post_published(ReceiptBatch(leaves), relayer)
    state = tmp_path / "w.db"
    result = watch(uri, settlement, state, "--from-block", str(start))
    assert result.returncode == 0, result.stdout + result.stderr
    (challenged,) = events(result.stdout, "batch-challenged")
    assert challenged["batch"] == batch_id and challenged["fault"] == "BAD_SIGNATURE"
    assert batches.batch(batch_id).rejected
    assert staking.pool(relayer).jailed
    logs = list(batches.BatchChallenged.range(start, chain.blocks.head.number + 1))
    assert [(log.batchId, log.challenger) for log in logs] == [(batch_id, reporter.address)]

    again = watch(uri, settlement, state)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not events(again.stdout, "batch-challenged") and not events(again.stdout, "batch-seen")
    assert len(list(batches.BatchChallenged.range(start, chain.blocks.head.number + 1))) == 1


def test_withheld_data__alert_exit_1(uri, settlement, batches, leaf_maker, fresh_relayer, post_published, chain,
                                     tmp_path):
    start = chain.blocks.head.number + 1
    batch = ReceiptBatch([leaf_maker("forged")])
    batch_id, _ = post_published(batch, fresh_relayer(), uri=(tmp_path / "nowhere.json").as_uri())
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start), "--fetch-attempts", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    (alert,) = events(result.stdout, "data-unavailable")
    assert alert["level"] == "alert" and alert["batch"] == batch_id
    assert "Traceback" not in result.stderr
    assert not batches.batch(batch_id).rejected  # nothing to prove a fault with


def test_tampered_data__alert_exit_1(uri, settlement, batches, leaf_maker, fresh_relayer, post_published, chain,
                                     tmp_path):
    """The document behind dataUri is not the batch posted (a leaf swapped): the root does not rebuild."""
    start = chain.blocks.head.number + 1
    posted = ReceiptBatch([leaf_maker("valid"), leaf_maker("forged")])
    shown = ReceiptBatch([posted.signed[0], leaf_maker("valid")])
    uri_of_other = publish_batch(batches, shown, tmp_path / "batches")
    batch_id, _ = post_published(posted, fresh_relayer(), uri=uri_of_other)
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start))
    assert result.returncode == 1, result.stdout + result.stderr
    (alert,) = events(result.stdout, "data-mismatch")
    assert alert["batch"] == batch_id and "rebuilds root" in alert["message"]


def test_data_over_http__served_document_verified(uri, settlement, batches, leaf_maker, fresh_relayer,
                                                  post_published, chain, tmp_path):
    """dataUri over HTTP, as a relayer serves it."""
    import http.server
    import threading
    from functools import partial

    directory = tmp_path / "served"
    batch = ReceiptBatch([leaf_maker("valid"), leaf_maker("zkml")])
    publish_batch(batches, batch, directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler,
                                                                       directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        start = chain.blocks.head.number + 1
        data_uri = f"http://127.0.0.1:{server.server_address[1]}/{document_name(batch.root)}"
        assert requests.get(data_uri, timeout=5).ok
        batch_id, _ = post_published(batch, fresh_relayer(), uri=data_uri)
        result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start))
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout + result.stderr
    (challenged,) = events(result.stdout, "batch-challenged")
    assert challenged["batch"] == batch_id and challenged["fault"] == "MODE_NOT_BATCHABLE"


def test_node_down__retries_then_exit_2(settlement, tmp_path):
    result = run_operator("watchtower", "http://127.0.0.1:9", settlement, tmp_path / "w.db", "--rpc-attempts", "2",
                          timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in result.stdout + result.stderr


def test_state_of_another_contract__refused(uri, settlement, batches, tmp_path):
    from opgkit.operators.store import Store

    Store(tmp_path / "w.db", "watchtower", chain_identity(settlement.provider), "0x" + "ab" * 20, "")
    result = watch(uri, settlement, tmp_path / "w.db")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "belongs to watchtower of contract 0xabab" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_state_of_a_reset_chain__refused(uri, settlement, tmp_path):
    """A reset local chain has the same chain id and, redeployed, the same addresses: its genesis tells it apart."""
    from opgkit.operators.store import Store

    Store(tmp_path / "w.db", "watchtower", f"{settlement.provider.chain_id}:0x{'00' * 32}", str(settlement.address), "")
    result = watch(uri, settlement, tmp_path / "w.db")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "a reset local chain is another chain" in result.stderr


def test_adversarial_relayers__every_faulty_batch_challenged_never_an_honest_one(
        uri, settlement, batches, leaf_maker, fresh_relayer, post_published, chain, tmp_path_factory):
    """A running watchtower (--follow) against relayers posting random mixes of valid and faulty leaves:
    every batch with a fault is challenged within its window, every batch without one is left alone (duplicates
    within and across batches are not faults). Its metrics endpoint counts what it did."""
    state = tmp_path_factory.mktemp("watchtower") / "w.db"
    directory = tmp_path_factory.mktemp("batches")
    start = chain.blocks.head.number + 1
    process = start_operator("watchtower", uri, settlement, state, "--confirmations", "0", "--from-block", str(start),
                             "--follow", "--poll", "0.2", "--json", "--metrics", "127.0.0.1:0")
    lines = LineReader(process)
    metrics_url = None
    earlier: list[SignedReceipt] = []
    expected = {}
    try:
        metrics_line = json_lines(lines.until(lambda line: '"metrics"' in line)[-1])[0]
        metrics_url = metrics_line["message"].split("at ", 1)[1]

        @settings(max_examples=int(os.environ.get("OPG_WATCHTOWER_EXAMPLES", "6")), deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(kinds=st.lists(st.sampled_from(LEAF_KINDS), min_size=1, max_size=6))
        @hypothesis_example(kinds=["valid", "duplicate-within", "duplicate-across"])
        @hypothesis_example(kinds=["duplicate-across", "valid"])
        def example(kinds):
            leaves = []
            for kind in kinds:
                if kind == "duplicate-within" and leaves:
                    leaves.append(leaves[0])
                elif kind == "duplicate-across" and earlier:
                    leaves.append(earlier[-1])
                elif not kind.startswith("duplicate"):
                    leaves.append(leaf_maker(kind))
            if not leaves:
                return
            honest = all(kind not in FAULTS for kind in kinds)
            batch = ReceiptBatch(leaves)
            uri_ = publish_batch(batches, batch, directory)
            advance(chain, 1)
            tx = batches.postBatch(batch.root, len(batch), uri_, sender=fresh_relayer())
            batch_id = tx.events.filter(batches.BatchPosted)[0].batchId
            expected[batch_id] = "honest" if honest else "challenged"
            state_of = lambda: state_rows(state, "SELECT state FROM batches WHERE batch_id = ?", batch_id)  # noqa: E731
            (row,) = wait_for(lambda: (rows := state_of()) and rows[0][0] not in ("new",) and rows, process=process)
            assert row[0] == expected[batch_id], (kinds, row)
            assert bool(batches.batch(batch_id).rejected) == (not honest)
            # Within the window: the challenge landed before the deadline.
            assert chain.blocks.head.timestamp <= batches.batch(batch_id).challengeDeadline
            earlier.extend(leaf for leaf, kind in zip(leaves, kinds) if kind == "valid")

        for kind in FAULTS:  # every fault at least once, hidden among valid leaves
            example = hypothesis_example(kinds=["valid", kind, "valid"])(example)
        example()
        scraped = requests.get(metrics_url, timeout=10).text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, process.stderr.read()
    challenged = sum(1 for outcome in expected.values() if outcome == "challenged")
    assert f"opg_watchtower_batches_seen_total {float(len(expected))}" in scraped
    assert f"opg_watchtower_batches_challenged_total {float(challenged)}" in scraped
    assert f"opg_watchtower_batches_verified_total {float(len(expected) - challenged)}" in scraped
    assert "opg_watchtower_leaves_checked_total" in scraped and "opg_watchtower_head_lag_blocks" in scraped


def test_kill_9_at_random_points__no_batch_missed_none_challenged_twice(uri, settlement, batches, leaf_maker,
                                                                       fresh_relayer, chain, tmp_path):
    """Batches keep coming while the watchtower is killed (SIGKILL: no cleanup) at random moments and restarted;
    a last run catches up. Every faulty batch is challenged exactly once, by it; no honest batch is touched."""
    seed = int(os.environ.get("OPG_KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    state, directory = tmp_path / "w.db", tmp_path / "batches"
    start = chain.blocks.head.number + 1
    faulty = {}
    for _ in range(4):
        for kind in ("valid", rng.choice(sorted(FAULTS))):
            batch = ReceiptBatch([leaf_maker("valid"), leaf_maker(kind)])
            data_uri = publish_batch(batches, batch, directory)
            advance(chain, 1)
            tx = batches.postBatch(batch.root, len(batch), data_uri, sender=fresh_relayer())
            faulty[tx.events.filter(batches.BatchPosted)[0].batchId] = kind != "valid"
        process = start_operator("watchtower", uri, settlement, state, "--confirmations", "0", "--from-block",
                                 str(start), "--follow", "--poll", "0.1", "--json")
        time.sleep(rng.uniform(1.0, 8.0))
        process.kill()
        process.wait(timeout=30)
    result = run_operator("watchtower", uri, settlement, state, "--confirmations", "0", "--json")
    assert result.returncode == 0, f"seed {seed}: " + result.stdout + result.stderr
    challenges = [log.batchId for log in batches.BatchChallenged.range(start, chain.blocks.head.number + 1)]
    assert sorted(challenges) == sorted(batch_id for batch_id, bad in faulty.items() if bad), f"seed {seed}"
    rows = dict(state_rows(state, "SELECT batch_id, state FROM batches"))
    assert rows == {batch_id: "challenged" if bad else "honest" for batch_id, bad in faulty.items()}, f"seed {seed}"


def test_challenge_mined_before_a_crash__recorded_as_its_own_not_sent_again(uri, settlement, batches, leaf_maker,
                                                                            fresh_relayer, post_published, chain,
                                                                            tmp_path, reporter):
    """The watchtower's account challenged (the process died before writing it down): the restart finds its own
    challenge on chain, records it, and sends nothing."""
    start = chain.blocks.head.number + 1
    batch = ReceiptBatch([leaf_maker("valid"), leaf_maker("inactive")])
    batch_id, _ = post_published(batch, fresh_relayer())
    batches.challenge(batch_id, batch.leaf(1), sender=reporter)
    nonce = reporter.nonce
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start))
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = events(result.stdout, "batch-challenged")
    assert "before it restarted" in line["message"] and line["fault"] == "SIGNER_INACTIVE"
    assert reporter.nonce == nonce
    assert state_rows(tmp_path / "w.db", "SELECT state FROM batches WHERE batch_id = ?", batch_id) == [("challenged",)]


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def malleable(signature: bytes) -> bytes:
    """The same signature with s mirrored into the upper half of the curve order: ecrecover still recovers the
    signer, OpenZeppelin's ECDSA refuses it."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def test_malleable_signature__auditor_relayer_and_watchtower_refuse_it_as_the_contract_does(
        settlement, batches, tees, staking, models, leaf_maker, fresh_relayer, post_published):
    """`receipts verify` used to call a high-s signature valid (eth-account recovers it) while every contract
    refuses it: an auditor was told a leaf was signed that the chain treats as forged."""
    from opgkit.receipt_verifier import ReceiptDocument, verify_document

    valid = leaf_maker("valid")
    flipped = SignedReceipt(valid.receipt, malleable(valid.signature))
    batch = ReceiptBatch([flipped])
    batch_id, _ = post_published(batch, fresh_relayer())
    assert Fault(batches.faultOf(batch_id, batch.leaf(0))) == Fault.BAD_SIGNATURE
    judge = LeafJudge(settlement.provider.web3, Contracts.of(settlement))
    assert judge.fault_of(flipped.receipt, flipped.signature, batches.batch(batch_id).postedAt) == Fault.BAD_SIGNATURE
    report = verify_document(settlement, tees, staking, models, ReceiptDocument(flipped.receipt, flipped.signature))
    (signature_check,) = [check for check in report.checks if check.name == "signature"]
    assert signature_check.ok is False, signature_check.detail


def test_hostile_data_uris__refused_or_bounded(tmp_path):
    """A relayer chooses the dataUri: a device or FIFO must not hang the watchtower, files need consent, and a
    server trickling bytes is cut off by the total time limit."""
    import http.server
    import threading
    import time as clock

    from opgkit.batch_document import BatchDataError, fetch

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for uri in ("file:///dev/zero", fifo.as_uri(), tmp_path.as_uri()):
        with pytest.raises(BatchDataError, match="not a regular file"):
            fetch(uri, allow_files=True)
    with pytest.raises(BatchDataError, match="development chain or with --allow-file-uris"):
        fetch((tmp_path / "x.json").as_uri())
    with pytest.raises(BatchDataError, match="not an http"):
        fetch("gopher://relayer.example/batch")
    with pytest.raises(BatchDataError, match="not a URL"):
        fetch("http://[")  # urlparse raises ValueError: it used to end the watchtower (exit 3) on every run

    class Compressed(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Encoding", "deflate")
            self.end_headers()
            self.wfile.write(b"\x00\x00\x00\xff\xff" * 10)

        def log_message(self, *args):
            pass

    compressed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Compressed)
    threading.Thread(target=compressed.serve_forever, daemon=True).start()
    try:
        with pytest.raises(BatchDataError, match="deflate-encoded"):
            fetch(f"http://127.0.0.1:{compressed.server_address[1]}/", timeout=2)
    finally:
        compressed.shutdown()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b" ")
                self.wfile.flush()
                clock.sleep(0.1)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = clock.monotonic()
        with pytest.raises(BatchDataError, match="took more than 1 s"):
            fetch(f"http://127.0.0.1:{server.server_address[1]}/", timeout=1)
        assert clock.monotonic() - started < 5
    finally:
        server.shutdown()



def test_undecodable_data_uri__alert_and_later_batches_still_challenged(uri, settlement, batches, leaf_maker,
                                                                        fresh_relayer, post_published, chain,
                                                                        tmp_path):
    """A dataUri that is not UTF-8, posted as raw calldata (Solidity accepts any bytes in a string), used to make
    ape's event decoding raise on every run: one such batch blinded the watchtower for good."""
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    start = chain.blocks.head.number + 1
    relayer = fresh_relayer()
    calldata = function_signature_to_4byte_selector("postBatch(bytes32,uint32,string)") + encode(
        ["bytes32", "uint32", "bytes"], [b"\x01" * 32, 1, b"\xff\xfe not utf-8"])
    relayer.transfer(batches.address, 0, data=calldata)
    faulty_id, _ = post_published(ReceiptBatch([leaf_maker("valid"), leaf_maker("forged")]), fresh_relayer())
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start), "--fetch-attempts", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert [line["batch"] for line in events(result.stdout, "data-unavailable")] == [faulty_id - 1]
    (challenged,) = events(result.stdout, "batch-challenged")
    assert challenged["batch"] == faulty_id and batches.batch(faulty_id).rejected


def test_count_announced_wrong__still_challenged(uri, settlement, batches, leaf_maker, fresh_relayer, chain, tmp_path):
    """The contract never checks the announced count against the tree: a relayer lying about it used to make the
    watchtower call the data mismatched and challenge nothing."""
    start = chain.blocks.head.number + 1
    batch = ReceiptBatch([leaf_maker("valid"), leaf_maker("forged")])
    data_uri = publish_batch(batches, batch, tmp_path / "batches")
    advance(chain, 1)
    tx = batches.postBatch(batch.root, 3, data_uri, sender=fresh_relayer())
    batch_id = tx.events.filter(batches.BatchPosted)[0].batchId
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start))
    assert result.returncode == 1, result.stdout + result.stderr  # the wrong count is an alert
    assert events(result.stdout, "count-mismatch")
    assert events(result.stdout, "batch-challenged")[0]["batch"] == batch_id
    assert batches.batch(batch_id).rejected


@pytest.mark.parametrize("signature", [b"", b"\x22" * 64, b"\x33" * 66], ids=["empty", "64 bytes", "66 bytes"])
def test_signature_of_wrong_length__challenged_as_bad_signature(uri, settlement, batches, leaf_maker, fresh_relayer,
                                                                post_published, chain, tmp_path, signature):
    """The contract judges a signature of any length other than 65 bytes a BadSignature; the document parser used
    to refuse such a leaf, so the whole batch went unchecked."""
    start = chain.blocks.head.number + 1
    valid = leaf_maker("valid")
    odd = leaf_maker("valid")
    batch = ReceiptBatch([valid, SignedReceipt(odd.receipt, signature)])
    batch_id, _ = post_published(batch, fresh_relayer())
    result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start))
    assert result.returncode == 0, result.stdout + result.stderr
    (challenged,) = events(result.stdout, "batch-challenged")
    assert challenged["batch"] == batch_id and challenged["fault"] == "BAD_SIGNATURE"


def test_black_holed_data_uris__cost_one_timeout_not_one_per_batch(uri, settlement, batches, leaf_maker,
                                                                   fresh_relayer, post_published, chain, tmp_path):
    """Batches whose dataUri accepts connections and never answers, posted ahead of a faulty one: fetches run in
    parallel with a total time limit, so the faulty batch is still challenged in the same pass."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # accepts, never reads nor answers
    try:
        start = chain.blocks.head.number + 1
        for n in range(6):
            black_hole = f"http://127.0.0.1:{listener.getsockname()[1]}/batch-{n}.json"
            post_published(ReceiptBatch([leaf_maker("valid")]), fresh_relayer(), uri=black_hole)
        faulty_id, _ = post_published(ReceiptBatch([leaf_maker("zkml")]), fresh_relayer())
        began = time.monotonic()
        result = watch(uri, settlement, tmp_path / "w.db", "--from-block", str(start), "--fetch-timeout", "3",
                       "--fetch-attempts", "1")
        elapsed = time.monotonic() - began
    finally:
        listener.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(events(result.stdout, "data-unavailable")) == 6
    assert events(result.stdout, "batch-challenged")[0]["batch"] == faulty_id
    assert elapsed < 6 * 3, f"{elapsed:.1f} s: the fetches ran one after another"


@pytest.mark.parametrize("first_kind", ["valid", "forged"], ids=["judged honest", "challenged"])
def test_reorg_deeper_than_confirmations__new_batch_under_an_old_id_is_checked(uri, settlement, batches, leaf_maker,
                                                                               fresh_relayer, post_published, chain,
                                                                               tmp_path, first_kind):
    """The watchtower judged batch k (honest, or faulty and challenged); the chain then reorganised — its challenge
    gone with it — and batch k is now another, faulty batch. It notices, reads the blocks again and challenges the
    new batch k (its record of the old challenge must not pass for one of the new batch)."""
    start = chain.blocks.head.number + 1
    relayer, forger = fresh_relayer(), fresh_relayer()
    state = tmp_path / "w.db"
    snapshot = chain.snapshot()
    honest_id, _ = post_published(ReceiptBatch([leaf_maker(first_kind)]), relayer)
    first = watch(uri, settlement, state, "--from-block", str(start))
    seen = "batch-valid" if first_kind == "valid" else "batch-challenged"
    assert events(first.stdout, seen)[0]["batch"] == honest_id, first.stdout + first.stderr
    chain.restore(snapshot)  # the reorg: the first batch (and any challenge of it) never happened
    faulty_id, _ = post_published(ReceiptBatch([leaf_maker("valid"), leaf_maker("forged")]), forger)
    assert faulty_id == honest_id
    second = watch(uri, settlement, state)
    assert second.returncode == 1, second.stdout + second.stderr  # the reorg is an alert
    assert events(second.stdout, "reorg")
    (challenged,) = events(second.stdout, "batch-challenged")
    assert challenged["batch"] == faulty_id and batches.batch(faulty_id).rejected


def test_sender__own_transaction_still_in_the_mempool_after_a_crash__waited_for_not_raced(chain, token, reporter,
                                                                                        tmp_path):
    """The operator reserved a nonce, sent, and died before the receipt; on restart its transaction is still
    pending. The sender waits for it to be mined and sees the action done, instead of sending a copy (which
    the node would refuse as already known, or which would replace it)."""
    import threading

    from opgkit.operators.sending import SENDS_SCHEMA, Sender, Sent
    from opgkit.operators.store import Store

    store = Store(tmp_path / "s.db", "test", chain_identity(chain.provider), str(token.address), SENDS_SCHEMA)
    sender = Sender(store, reporter, chain.provider)
    spender, amount = "0x" + "12" * 20, 1_234
    nonce = chain.provider.get_nonce(reporter.address)
    with store.transaction() as db:
        db.execute("INSERT INTO sends VALUES ('approve', ?, ?, 'pending', NULL)", (nonce, chain.blocks.head.number))
    web3 = chain.provider.web3
    data = token.approve.encode_input(spender, amount)
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        web3.eth.send_transaction({"from": reporter.address, "to": str(token.address), "data": data,
                                   "nonce": nonce, "gas": 100_000})
        threading.Timer(2.0, lambda: chain.provider.make_request("evm_mine", [])).start()
        sent = []
        outcome, _ = sender.send_once("approve", lambda n: sent.append(n),
                                      lambda from_block: token.allowance(reporter, spender) == amount,
                                      wait_seconds=30)
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    assert outcome == Sent.ALREADY_DONE and sent == []
    assert token.allowance(reporter, spender) == amount


def test_keystore_account__signs_unattended_with_autosign__refused_without(uri, settlement, batches, leaf_maker,
                                                                           fresh_relayer, post_published, chain,
                                                                           accounts, tmp_path):
    """Operators sign with an `ape accounts` keystore account, never a raw key: with --autosign and ape's own
    passphrase variable the challenge is signed with no prompt; without --autosign and no terminal the run stops
    before anything is sent."""
    import secrets

    from ape_accounts import import_account_from_private_key

    from opgkit.cli import passphrase_variable
    from opgkit.operators import launch

    passphrase = "watchtower keystore test"
    account = import_account_from_private_key(f"opg-watcher-{secrets.token_hex(4)}", passphrase,
                                              "0x" + secrets.token_hex(32))
    try:
        accounts[0].transfer(account.address, 10**20)
        start = chain.blocks.head.number + 1
        batch_id, _ = post_published(ReceiptBatch([leaf_maker("valid"), leaf_maker("forged")]), fresh_relayer())
        options = ("--confirmations", "0", "--from-block", str(start), "--json")
        environment = {key: value for key, value in os.environ.items() if not key.startswith("APE_ACCOUNTS_")}
        refused = subprocess.run(launch.operator_command("watchtower", uri, str(settlement.address),
                                                         tmp_path / "w.db", account.alias, *options),
                                 cwd=launch.PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                                 stdin=subprocess.DEVNULL, env=environment)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "add --autosign" in refused.stderr and chain.provider.get_nonce(account.address) == 0
        signed = subprocess.run(launch.operator_command("watchtower", uri, str(settlement.address),
                                                        tmp_path / "w.db", account.alias, "--autosign", *options),
                                cwd=launch.PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                                stdin=subprocess.DEVNULL,
                                env=environment | {passphrase_variable(account.alias): passphrase})
        assert signed.returncode == 0, signed.stdout + signed.stderr
        (challenged,) = events(signed.stdout, "batch-challenged")
        assert challenged["batch"] == batch_id
        logs = list(batches.BatchChallenged.range(start, chain.blocks.head.number + 1))
        assert [log.challenger for log in logs] == [account.address]
    finally:
        account.keyfile_path.unlink(missing_ok=True)
