"""`ape run deploy`, run as a user runs it: its own anvil, its own process, its printed output."""

import json
import re
import subprocess
import time

import pytest

from deploy_helpers import deploy_command, kill_once_recorded
from opgkit import PROJECT_ROOT

LOCAL = ["--network", "ethereum:local:foundry", "--account", "TEST::0"]
ALL = ("OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "ModelRegistry", "AttestorQuorumVerifier", "TEERegistry",
       "InferenceSettlement", "BatchSettlement", "TwinMarket", "InferenceRequests")


def ape_run(*args):
    return subprocess.run(["ape", "run", "deploy", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_deploy__local_chain__prints_every_address_and_stops_anvil():
    result = ape_run(*LOCAL, "--treasury", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert result.returncode == 0, result.stderr
    for name in ALL:
        assert re.search(rf"^{name}\s+0x[0-9a-fA-F]{{40}}\s+new\s+\d+\s+0x[0-9a-f]{{64}}$", result.stdout, re.M), name
    assert re.search(r"^network\s+ethereum:local:foundry \(chain id 31337\)$", result.stdout, re.M)
    assert re.search(r"^treasury\s+0x70997970C51812dc3A010C7d01b50e0d17dc79C8  holds 1,000,000,000 OPG$", result.stdout, re.M)
    assert re.search(r"^wiring\s+verified: the timelock is the only admin; InferenceSettlement records "
                     r"BatchSettlement's batches; both may slash", result.stdout, re.M)
    assert re.search(r"^parameters\s+config/deploy/local.yaml \(a development chain\)$", result.stdout, re.M)
    assert "Stopping 'anvil' process" in result.stderr + result.stdout


@pytest.mark.parametrize(
    "treasury, message",
    [
        ("0x1234", "is not a 20-byte hex address"),
        ("0x0000000000000000000000000000000000000000", "the zero address would burn the whole supply"),
    ],
)
def test_deploy__bad_treasury__exits_2_with_message_and_no_traceback(treasury, message):
    result = ape_run(*LOCAL, "--treasury", treasury)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_deploy__dry_run__prints_the_plan_and_sends_nothing():
    result = ape_run(*LOCAL, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^plan\s+\(nothing is sent\)$", result.stdout, re.M)
    assert re.findall(r"^  deploy\s+(\w+)\s*$", result.stdout, re.M) == list(ALL)
    for line in ("connect BatchSettlement to InferenceSettlement (setBatchSettlement, once ever)",
                 "grant InferenceSettlement SLASHER_ROLE on NodeStaking (missed proofs)",
                 "grant BatchSettlement SLASHER_ROLE on NodeStaking (rejected batches)",
                 "grant OPGTimelock DEFAULT_ADMIN_ROLE on InferenceSettlement; the deployer renounces it"):
        assert f"  wire    {line}" in result.stdout, line
    assert not re.search(r"^record", result.stdout, re.M)


def test_deploy__no_handover__deployer_keeps_admin_roles():
    result = ape_run(*LOCAL, "--no-handover")
    assert result.returncode == 0, result.stderr
    assert "verified: the deployer keeps every admin role (no handover)" in result.stdout


def test_deploy__invalid_parameters__exit_2_listing_every_problem_before_any_transaction(tmp_path):
    config, record = tmp_path / "bad.yaml", tmp_path / "record.json"
    config.write_text("challenge_window: 8d\ntwin_protocol_fee: 12\nquorum: 4\n")
    result = ape_run(*LOCAL, "--config", str(config), "--record", str(record))
    assert result.returncode == 2
    assert "quorum: unknown parameter" in result.stderr
    # proof_window fits 7d on its own, but not with the 1h missed-proof report margin inside unbonding_delay
    config.write_text("challenge_window: 8d\nproof_window: 7d\ntwin_protocol_fee: 12\n")
    result = ape_run(*LOCAL, "--config", str(config), "--record", str(record))
    assert result.returncode == 2
    assert "challenge_window: must be at least 5m and shorter than unbonding_delay" in result.stderr
    assert "proof_window: must be at least 1h (the missed-proof report margin) shorter than unbonding_delay" \
        in result.stderr
    assert "twin_protocol_fee: must not exceed twin_protocol_fee_cap" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not record.exists()  # not one contract deployed
    assert not re.search(r"^contract\s+address", result.stdout, re.M)


def test_deploy__killed_mid_way_then_rerun__resumes_without_duplicates(networks, tmp_path):
    """SIGKILL the deploy once a few contracts are recorded, run it again on the same chain: it finishes,
    reusing exactly what the record holds."""
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the deploy runs as its own process against the test's anvil")
    record = tmp_path / "record.json"
    command = deploy_command(networks.provider.uri, record)
    before = kill_once_recorded(command, record)
    assert 3 <= len(before) < len(ALL), "the deploy was not interrupted part-way"

    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    after = json.loads(record.read_text())["contracts"]
    assert list(after) == list(ALL)
    for name, entry in before.items():
        assert after[name]["address"] == entry["address"], name
        assert re.search(rf"^{name}\s+{entry['address']}\s+reused", result.stdout, re.M), name
    assert len({entry["address"] for entry in after.values()}) == len(ALL)
    assert re.search(r"^wiring\s+verified", result.stdout, re.M)


def _deploy_killed_with_its_first_transaction_in_the_mempool(networks, command) -> tuple[int, str]:
    """Start the deploy with mining paused, SIGKILL it once its first deployment sits in the mempool (sent, not
    yet mined, so not yet recorded); returns the deployer's nonce before it and that transaction's hash."""
    provider = networks.provider
    deployer = provider.web3.eth.accounts[0]
    nonce = provider.web3.eth.get_transaction_count(deployer, "latest")
    provider.make_request("evm_setAutomine", [False])
    try:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline, sent = time.monotonic() + 240, None
        while time.monotonic() < deadline and process.poll() is None and sent is None:
            pending = provider.make_request("txpool_content", []).get("pending", {})
            mine = next((txs for sender, txs in pending.items() if sender.lower() == deployer.lower()), {})
            sent = next(iter(mine.values()), {}).get("hash")
            time.sleep(0.02)
        process.kill()
        process.communicate()
    finally:
        provider.make_request("evm_setAutomine", [True])
    assert sent, "the deploy never sent its first transaction"
    return nonce, sent


@pytest.fixture
def on_anvil(networks, tmp_path):
    """(record, command): a deploy to the test's anvil, as its own process, with a record of its own."""
    if not hasattr(networks.provider, "uri") or networks.provider.name != "foundry":
        pytest.skip("the deploy runs as its own process against the test's anvil")
    record = tmp_path / "record.json"
    return record, deploy_command(networks.provider.uri, record)


def test_deploy__killed_after_sending_before_recording__resume_adopts_the_contract_no_duplicate(networks, accounts,
                                                                                              on_anvil):
    """The first deployment left the process and the process died before it was mined and recorded: the rerun
    must adopt that contract (a duplicate token would hold the supply the record does not name)."""
    record, command = on_anvil
    nonce, sent = _deploy_killed_with_its_first_transaction_in_the_mempool(networks, command)
    networks.provider.make_request("evm_mine", [])
    first_token = accounts[0].get_deployment_address(nonce)
    assert networks.provider.get_code(first_token), "the killed run's transaction was not mined"

    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads(record.read_text())
    assert "pending" not in saved
    assert saved["contracts"]["OPGToken"]["address"] == first_token
    assert saved["contracts"]["OPGToken"]["tx_hash"] == sent
    assert saved["contracts"]["OPGTimelock"]["address"] == accounts[0].get_deployment_address(nonce + 1)


def test_deploy__killed_after_sending_and_the_transaction_dropped__resume_deploys_at_the_same_nonce(
        networks, accounts, on_anvil):
    record, command = on_anvil
    nonce, sent = _deploy_killed_with_its_first_transaction_in_the_mempool(networks, command)
    networks.provider.make_request("anvil_dropTransaction", [sent])
    assert json.loads(record.read_text())["pending"]["tx_hash"] == sent

    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads(record.read_text())
    assert "pending" not in saved
    assert saved["contracts"]["OPGToken"]["address"] == accounts[0].get_deployment_address(nonce)


@pytest.fixture
def base_sepolia_node():
    """An anvil that says it is Base Sepolia (chain id 84532), reached as `base:sepolia:<uri>`."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = subprocess.Popen([str(PROJECT_ROOT / "node_modules" / ".bin" / "anvil"), "--chain-id", "84532", "--port",
                             str(port), "--hardfork", "prague"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    from web3 import HTTPProvider, Web3

    web3 = Web3(HTTPProvider(uri))
    deadline = time.monotonic() + 30
    while not web3.is_connected() and time.monotonic() < deadline:
        time.sleep(0.1)
    yield uri, web3
    node.terminate()
    node.wait(timeout=30)


def test_deploy__dry_run_on_a_node_configured_as_base_sepolia__plans_with_the_l2_parameters(base_sepolia_node,
                                                                                            tmp_path):
    uri, web3 = base_sepolia_node
    shipped = PROJECT_ROOT / "config" / "deploy" / "base-sepolia.yaml"
    refused = ape_run("--network", f"base:sepolia:{uri}", "--account", "TEST::0", "--dry-run", "--record",
                      str(tmp_path / "record.json"))
    assert refused.returncode == 2 and "attestors: a public network needs" in refused.stderr, refused.stderr
    assert "challenge_window" not in refused.stderr  # the shipped windows suit the L2

    config = tmp_path / "base.yaml"
    config.write_text(shipped.read_text().replace(
        "attestors: []", 'attestors: ["0x90F79bf6EB2c4f870365E785982E1f101E93b906"]'))
    planned = ape_run("--network", f"base:sepolia:{uri}", "--account", "TEST::0", "--dry-run", "--config",
                      str(config), "--record", str(tmp_path / "record.json"))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert re.search(r"^network\s+base:sepolia:\S+ \(chain id 84532\)$", planned.stdout, re.M)
    assert re.search(r"^\s+deploy\s+BatchSettlement$", planned.stdout, re.M)
    assert web3.eth.get_transaction_count(web3.eth.accounts[0]) == 0  # nothing sent

    config.write_text(config.read_text().replace("challenge_window: 13h", "challenge_window: 1h"))
    short = ape_run("--network", f"base:sepolia:{uri}", "--account", "TEST::0", "--dry-run", "--config", str(config),
                    "--record", str(tmp_path / "record.json"))
    assert short.returncode == 2 and "challenge_window: must be at least 13h on this L2" in short.stderr


def _killed_and_mined(networks, on_anvil):
    record, command = on_anvil
    nonce, sent = _deploy_killed_with_its_first_transaction_in_the_mempool(networks, command)
    networks.provider.make_request("evm_mine", [])
    return record, command, nonce, sent


def test_deploy__pending_deployment_sent_with_other_parameters__refused_never_left_behind(networks, accounts,
                                                                                          on_anvil):
    """The killed run's token (holding the whole supply) must not vanish because the rerun's treasury differs."""
    record, command, nonce, sent = _killed_and_mined(networks, on_anvil)
    before = record.read_text()
    result = subprocess.run([*command, "--treasury", accounts[1].address], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sent the OPGToken deployment" in result.stderr and "with other parameters" in result.stderr
    assert accounts[0].get_deployment_address(nonce) in result.stderr
    assert record.read_text() == before


def test_deploy__pending_entry_naming_another_transaction__refused(networks, accounts, on_anvil):
    """A record edited to name someone else's OPGToken deployment is not adopted as ours."""
    record, command, _, _ = _killed_and_mined(networks, on_anvil)
    from ape import project

    foreign = project.OPGToken.deploy(accounts[5].address, sender=accounts[5])
    edited = json.loads(record.read_text())
    edited["pending"]["tx_hash"] = str(foreign.creation_metadata.txn_hash)
    record.write_text(json.dumps(edited))
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not the deployment it describes" in result.stderr
    assert json.loads(record.read_text())["contracts"] == {}


@pytest.mark.parametrize("change, message", [
    (lambda record: record | {"chain_id": 1}, "not this chain"),
    (lambda record: record | {"pending": record["pending"] | {"tx_hash": "zz"}}, "pending deployment is damaged"),
])
def test_deploy__pending_entry_of_another_chain_or_damaged__refused(networks, on_anvil, change, message):
    record, command, _, _ = _killed_and_mined(networks, on_anvil)
    record.write_text(json.dumps(change(json.loads(record.read_text()))))
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
