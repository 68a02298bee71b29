"""The scripts' inputs, fuzzed the way users and cron jobs get them wrong, through the real scripts as processes.

Whatever a file argument holds (random bytes, JSON or YAML of the wrong shape, nothing, 50 MB), whatever path
an output gets (a directory, a path under a file), whatever address or network is given: the script prints
one `error:` line, exits with 2 (the documented "error" code, never 1 = "a check failed"), prints no
traceback, and sends no transaction.
"""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from opgkit import PROJECT_ROOT
from opgkit.cli import ExitCode, UserError
from opgkit.deploy import ProtocolParameters, deploy_all
from opgkit.deploy_config import load_parameters
from opgkit.deployments_record import load_record
from opgkit.testing import LineReader

pytestmark = pytest.mark.anvil_only

# Each example is a whole `ape run` process (~3 s), so CI tries the named cases below plus a few generated ones;
# OPG_CLI_FUZZ_EXAMPLES=N tries N generated inputs per argument instead.
FUZZ = settings(max_examples=int(os.environ.get("OPG_CLI_FUZZ_EXAMPLES", "2")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# What a file argument may hold: random bytes, or JSON of some shape (YAML reads JSON too).
file_contents = st.one_of(st.binary(max_size=512), json_values.map(lambda value: json.dumps(value).encode()))

CHECKPOINT_CASES = [b"\x8f\xff\x00garbage", b"[1, 2, 3]", b'{"market": 1}', b"", b"\xff" * 64]


def ape_run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ape", "run", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=None if env is None else os.environ | env)


def assert_named_error(result: subprocess.CompletedProcess, code: ExitCode = ExitCode.ERROR) -> str:
    """The run failed the documented way; returns its error line."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    lines = re.findall(r"^(?:error|Error): .+$", result.stderr, re.M)
    assert lines, output
    return lines[-1]


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def huge_file(tmp_path: Path) -> Path:
    """50 MB (sparse: instant to make)."""
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    return path


def unwritable_path(tmp_path: Path, name: str) -> Path:
    """A path no one can create, even a superuser: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return blocker / name


@pytest.fixture(scope="module")
def suite(deployer, tmp_path_factory):
    return deploy_all(deployer, deployer.address, ProtocolParameters(), handover=False)


@pytest.fixture
def nothing_sent(chain, deployer):
    """Fails the test if the chain gained a block or the deployer a nonce while it ran."""
    before = (chain.blocks.head.number, deployer.nonce)
    yield
    assert (chain.blocks.head.number, deployer.nonce) == before, "a transaction was sent"


# ------------------------------------------------------------------------------------------------ monitor_fees


@FUZZ
@given(content=file_contents)
@example(content=CHECKPOINT_CASES[0])
@example(content=CHECKPOINT_CASES[1])
@example(content=CHECKPOINT_CASES[2])
@example(content=CHECKPOINT_CASES[3])
def test_monitor__any_checkpoint_content__named_error_exit_2(uri, suite, tmp_path_factory, content):
    market = suite["TwinMarket"].address
    path = write(tmp_path_factory.mktemp("checkpoint"), "state.json", content)
    result = ape_run("monitor_fees", "--network", uri, "--market", market, "--state", str(path))
    assert "checkpoint" in assert_named_error(result)


@pytest.mark.parametrize("last_block", [None, "12", -5, 1.5, True])
def test_monitor__checkpoint_of_this_market_with_bad_position__named_error(uri, suite, chain, tmp_path, last_block):
    market = suite["TwinMarket"].address
    fields = {"market": market, "chain_id": chain.chain_id, "last_log_index": -1}
    if last_block is not None:
        fields["last_block"] = last_block
    path = write(tmp_path, "state.json", json.dumps(fields).encode())
    result = ape_run("monitor_fees", "--network", uri, "--market", market, "--state", str(path))
    assert "valid last_block" in assert_named_error(result)


@pytest.mark.parametrize("where", ["directory", "under a file", "huge"])
def test_monitor__checkpoint_path_unusable__named_error_before_any_event(uri, suite, tmp_path, where):
    path = {"directory": tmp_path, "under a file": unwritable_path(tmp_path, "state.json"),
            "huge": huge_file(tmp_path)}[where]
    result = ape_run("monitor_fees", "--network", uri, "--market", suite["TwinMarket"].address, "--state", str(path))
    assert_named_error(result)
    assert "fees" not in result.stdout, "nothing is reported before the checkpoint is known to be writable"


@FUZZ
@given(market=st.text(max_size=50))
@example(market="0x70997970C51812dc3A010C7d01b50e0d17dc79C8")  # an account
@example(market="token")  # replaced by another contract's address below
def test_monitor__wrong_market__named_error(uri, suite, market):
    if market == "token":
        market = suite["OPGToken"].address
    assume(market.lower() != suite["TwinMarket"].address.lower() and not market.startswith("-"))
    result = ape_run("monitor_fees", "--network", uri, "--market", market)
    line = assert_named_error(result)
    if market == suite["OPGToken"].address:
        assert "is some other contract, not TwinMarket" in line


@pytest.mark.parametrize("network", ["ethereum:nowhere", "nonsense", "http://127.0.0.1:9", "ethereum:sepolia:node",
                                     "ethereum:devchain:http://127.0.0.1:99999"])
def test_monitor__wrong_or_unreachable_network__named_error(suite, network):
    result = ape_run("monitor_fees", "--network", network, "--market", suite["TwinMarket"].address)
    assert_named_error(result)


# ------------------------------------------------------------------------------------------------ deploy


def _config_rejected(path: Path) -> bool:
    try:
        load_parameters(path, local=True)
    except UserError:
        return True
    return False


def _record_rejected(path: Path) -> bool:
    try:
        load_record(path)
    except UserError:
        return True
    return False


@FUZZ
@given(content=file_contents)
@example(content=b"\x00\x9f\x92 random")
@example(content=b"- 1\n- 2\n")
@example(content=b"unbonding_delay: [1, 2]\nminimum_stakes: inf\n")
@example(content=b"twin_protocol_fee: .inf\nproposal_threshold: 1e999999\n")
def test_deploy__any_config_content__named_error_and_nothing_sent(uri, tmp_path_factory, nothing_sent, content):
    path = write(tmp_path_factory.mktemp("config"), "params.yaml", content)
    assume(_config_rejected(path))
    record = tmp_path_factory.mktemp("record") / "record.json"
    result = ape_run("deploy", "--network", uri, "--account", "TEST::0", "--config", str(path), "--record", str(record))
    assert_named_error(result)
    assert not record.exists()


@FUZZ
@given(content=file_contents)
@example(content=b"\xde\xad\xbe\xef" * 10)
@example(content=b'{"chain_id": 31337, "contracts": {"OPGToken": 1}}')
@example(content=b'{"chain_id": 31337, "contracts": []}')
def test_deploy__any_record_content__named_error_and_nothing_sent(uri, tmp_path_factory, nothing_sent, content):
    record = write(tmp_path_factory.mktemp("record"), "record.json", content)
    assume(_record_rejected(record))
    result = ape_run("deploy", "--network", uri, "--account", "TEST::0", "--record", str(record))
    assert "record" in assert_named_error(result)
    assert record.read_bytes() == content


@pytest.mark.parametrize("where", ["directory", "under a file", "config huge", "config directory", "config missing"])
def test_deploy__unusable_paths__named_error_and_nothing_sent(uri, tmp_path, nothing_sent, where):
    record, config = tmp_path / "record.json", None
    if where == "directory":
        record = tmp_path
    elif where == "under a file":
        record = unwritable_path(tmp_path, "record.json")
    elif where == "config huge":
        config = huge_file(tmp_path)
    elif where == "config directory":
        config = tmp_path
    else:
        config = tmp_path / "missing.yaml"
    args = ["--record", str(record)] + (["--config", str(config)] if config else [])
    result = ape_run("deploy", "--network", uri, "--account", "TEST::0", *args)
    assert_named_error(result)


@pytest.mark.parametrize("args", [
    ["--account", "TEST::0", "--treasury", "0x1234"],
    ["--account", "TEST::0", "--treasury", "0x" + "0" * 40],
    ["--account", "nobody-has-this-alias"],
    [],  # no --account, and no terminal to choose one on
])
def test_deploy__bad_options__named_error_and_nothing_sent(uri, nothing_sent, args):
    result = ape_run("deploy", "--network", uri, *args)
    assert_named_error(result)


# ------------------------------------------------------------------------------------------------ receipts verify


@FUZZ
@given(content=file_contents)
@example(content=b'{"receipt": {}, "batch": [1]}')
@example(content=json.dumps({"receipt": {"requestId": "0x" + "11" * 32, "modelId": "0x" + "22" * 32,
                                         "inputHash": "0x" + "33" * 32, "outputHash": "0x" + "44" * 32,
                                         "mode": "TEE", "signer": "0x" + "55" * 20, "timestamp": 1},
                             "batch": [1], "response": "text"}).encode())
@example(content=json.dumps({"receipt": {"requestId": "0x" + "11" * 32, "modelId": "0x" + "22" * 32,
                                         "inputHash": "0x" + "33" * 32, "outputHash": "0x" + "44" * 32,
                                         "mode": 1e400, "signer": "0x" + "55" * 20, "timestamp": -1}}).encode())
def test_receipts__any_document_content__named_error_exit_2(uri, suite, tmp_path_factory, content):
    path = write(tmp_path_factory.mktemp("receipt"), "receipt.json", content)
    result = ape_run("receipts", "verify", str(path), "--network", uri, "--settlement",
                     suite["InferenceSettlement"].address)
    assert_named_error(result)


GOOD_DOCUMENT = {"receipt": {"requestId": "0x" + "11" * 32, "modelId": "0x" + "22" * 32, "inputHash": "0x" + "33" * 32,
                             "outputHash": "0x" + "44" * 32, "mode": "VANILLA", "signer": "0x" + "55" * 20,
                             "timestamp": 1, "payer": "0x" + "66" * 20}}


@FUZZ
@given(content=file_contents)
@example(content=b"\x00\x01\x02 not a proof")
@example(content=b'{"batchId": -1, "proof": "0x12"}')
@example(content=b'{"batchId": 1, "proof": 7}')
def test_receipts__any_proof_content__named_error_exit_2(uri, suite, tmp_path_factory, content):
    directory = tmp_path_factory.mktemp("proof")
    document = write(directory, "receipt.json", json.dumps(GOOD_DOCUMENT).encode())
    proof = write(directory, "proof.json", content)
    assume(not _batch_proof_parses(content))
    result = ape_run("receipts", "verify", str(document), "--proof", str(proof), "--network", uri, "--settlement",
                     suite["InferenceSettlement"].address)
    assert_named_error(result)


def _batch_proof_parses(content: bytes) -> bool:
    from opgkit.receipt_verifier import parse_document
    try:
        parse_document(GOOD_DOCUMENT | {"batch": json.loads(content)})
    except (UserError, ValueError, RecursionError):
        return False
    return True


@pytest.mark.parametrize("where", ["directory", "huge", "missing"])
def test_receipts__unusable_document_path__named_error(uri, suite, tmp_path, where):
    path = {"directory": tmp_path, "huge": huge_file(tmp_path), "missing": tmp_path / "nothing.json"}[where]
    result = ape_run("receipts", "verify", str(path), "--network", uri, "--settlement",
                     suite["InferenceSettlement"].address)
    assert_named_error(result)


@pytest.mark.parametrize("settlement", ["account", "market"])
def test_receipts__settlement_address_of_something_else__named_error(uri, suite, settlement):
    address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" if settlement == "account" else suite["TwinMarket"].address
    result = ape_run("receipts", "verify", "0x" + "ab" * 32, "--payer", "0x" + "11" * 20, "--network", uri,
                     "--settlement", address)
    line = assert_named_error(result)
    assert ("no contract code" if settlement == "account" else "some other contract, not InferenceSettlement") in line


# ------------------------------------------------------------------------------------------------ found in review


def test_deploy__value_too_large_for_its_abi_type__refused_before_any_transaction(uri, tmp_path, nothing_sent):
    """voting_period passes the parameter rules but not OPGGovernor's uint32: it used to fail after three
    contracts were deployed."""
    config = write(tmp_path, "params.yaml", b"voting_period: 5000000000\n")
    result = ape_run("deploy", "--network", uri, "--account", "TEST::0", "--config", str(config),
                     "--record", str(tmp_path / "r.json"))
    assert "OPGGovernor cannot take these parameters" in assert_named_error(result)


def test_deploy__vault_model_not_in_a_new_registry__refused_before_any_transaction(uri, tmp_path, nothing_sent):
    config = write(tmp_path, "params.yaml", f'example_vault_model: "0x{"ab" * 32}"\n'.encode())
    result = ape_run("deploy", "--network", uri, "--account", "TEST::0", "--config", str(config),
                     "--record", str(tmp_path / "r.json"))
    assert "is not registered" in assert_named_error(result)


def test_deploy__record_of_another_chain__kept_and_refused(uri, suite, tmp_path, nothing_sent):
    record = {"chain_id": 11155111, "contracts": {"OPGToken": {
        "address": suite["OPGToken"].address, "tx_hash": "0x" + "00" * 32, "block": 1, "constructor_args": [],
        "code_hash": "0x" + "00" * 32}}}
    path = write(tmp_path, "sepolia.json", json.dumps(record).encode())
    result = ape_run("deploy", "--network", uri, "--account", "TEST::0", "--record", str(path))
    assert "records a deployment on chain 11155111" in assert_named_error(result)
    assert json.loads(path.read_text()) == record


def test_monitor__checkpoint_ahead_of_the_chain__named_error(uri, suite, chain, tmp_path):
    market = suite["TwinMarket"].address
    state = write(tmp_path, "state.json", json.dumps({"market": market, "chain_id": chain.chain_id,
                                                      "last_block": 10**9, "last_log_index": 2**63}).encode())
    result = ape_run("monitor_fees", "--network", uri, "--market", market, "--state", str(state))
    assert "the chain was reset" in assert_named_error(result)


def test_monitor__non_finite_poll__usage_error(uri, suite):
    result = ape_run("monitor_fees", "--network", uri, "--market", suite["TwinMarket"].address, "--follow",
                     "--poll", "nan")
    assert "not a finite number" in assert_named_error(result)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.OK)])
def test_monitor_follow__ctrl_c_is_interrupted_sigterm_a_clean_stop(uri, suite, signum, code):
    process = subprocess.Popen(["ape", "run", "monitor_fees", "--network", uri, "--market", suite["TwinMarket"].address,
                                "--follow", "--poll", "30", "--json"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        lines = LineReader(process)
        assert json.loads(lines.next())["type"] == "snapshot", "--json prints JSON lines only"
        process.send_signal(signum)
        assert process.wait(timeout=20) == code  # not after the 30 s poll: a stop cuts the wait short
    finally:
        process.kill()
