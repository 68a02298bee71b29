"""A second JSON-RPC client: the scripts deploy, resume, settle, monitor and operate on a Hardhat node (EDR).

The node is npm `hardhat` (pinned in package.json) with config/hardhat/hardhat.config.js: the anvil's chain id,
hardfork and test mnemonic. Scripts reach it as users do, through the custom network of ape-config.yaml
(`--network ethereum:hardhat:<uri>`); the test itself talks to it with web3.py, never through ape's provider.
"""

import json
import os
import re
import socket
import subprocess
import time

import pytest
from eth_utils import keccak
from web3 import HTTPProvider, Web3

from deploy_helpers import deploy_command, kill_once_recorded
from opgkit import PROJECT_ROOT
from opgkit.deploy import ProtocolParameters
from opgkit.receipts import Mode, Receipt, Status, sign_receipt
from opgkit.operators.launch import json_lines, run_operator

pytestmark = pytest.mark.anvil_only

ALL = ("OPGToken", "OPGTimelock", "NodeStaking", "OPGGovernor", "ModelRegistry", "AttestorQuorumVerifier", "TEERegistry",
       "InferenceSettlement", "BatchSettlement", "TwinMarket", "InferenceRequests")
OPG = 10**18
INFERENCE_ROLE = 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def hardhat():
    """A Hardhat node on a free port for this module; its URI."""
    port = _free_port()
    node = subprocess.Popen(
        [str(PROJECT_ROOT / "node_modules" / ".bin" / "hardhat"), "node", "--config",
         str(PROJECT_ROOT / "config" / "hardhat" / "hardhat.config.js"), "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=os.environ | {"HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"},
    )
    uri = f"http://127.0.0.1:{port}"
    web3 = Web3(HTTPProvider(uri))
    deadline = time.monotonic() + 60
    while not web3.is_connected():
        if node.poll() is not None or time.monotonic() > deadline:
            node.kill()
            pytest.fail(f"the Hardhat node did not start: {node.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    assert web3.client_version.startswith("HardhatNetwork/2.29.1")
    yield uri
    node.terminate()
    node.wait(timeout=30)


def ape_run(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(["ape", "run", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def on(uri: str) -> list[str]:
    return ["--network", f"ethereum:hardhat:{uri}"]


@pytest.fixture(scope="module")
def deployed(hardhat, tmp_path_factory):
    """The protocol deployed on Hardhat, killed part-way once and resumed; the record's contracts."""
    record = tmp_path_factory.mktemp("hardhat") / "record.json"
    command = deploy_command(f"ethereum:hardhat:{hardhat}", record)
    before = kill_once_recorded(command, record)
    assert 3 <= len(before) < len(ALL), "the deploy was not interrupted part-way"
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^wiring\s+verified", result.stdout, re.M)
    after = json.loads(record.read_text())["contracts"]
    assert list(after) == list(ALL)
    for name, entry in before.items():
        assert after[name]["address"] == entry["address"], name
    return {"record": record, "contracts": after}


def contract(web3, project, name: str, address: str):
    abi = [item.model_dump(by_alias=True, mode="json") for item in getattr(project, name).contract_type.abi]
    return web3.eth.contract(address=address, abi=abi)


class _Domain:
    """What opgkit's signing helpers ask a contract for (ERC-5267), answered over web3."""

    def __init__(self, web3_contract):
        self._contract = web3_contract

    def eip712Domain(self):  # noqa: N802 - the contract's own name
        return self._contract.functions.eip712Domain().call()


def test_deploy__resumed_after_a_kill_on_hardhat__every_contract_once_and_wired(deployed):
    assert len({entry["address"] for entry in deployed["contracts"].values()}) == len(ALL)


def test_settle_monitor_and_operators__on_hardhat(hardhat, deployed, project, accounts, tmp_path):
    web3 = Web3(HTTPProvider(hardhat))
    addresses = {name: entry["address"] for name, entry in deployed["contracts"].items()}
    token, staking, models, settlement = (contract(web3, project, name, addresses[name]) for name in
                                          ("OPGToken", "NodeStaking", "ModelRegistry", "InferenceSettlement"))
    treasury, node, payer = (accounts[i] for i in (0, 2, 3))  # the deploy's treasury defaults to its sender

    def send(call, sender):
        receipt = web3.eth.wait_for_transaction_receipt(call.transact({"from": sender.address}))
        assert receipt.status == 1
        return receipt

    bond = ProtocolParameters().minimum_stakes[0]  # the inference role's, config/deploy/local.yaml's default
    send(token.functions.transfer(node.address, bond), treasury)
    send(token.functions.approve(staking.address, bond), node)
    send(staking.functions.registerOperator(INFERENCE_ROLE, bond, 0), node)
    spec = (keccak(text="hardhat model"), "ipfs://hardhat-model", 0, 1, 0, bytes(32), False, 0,
            "0x" + "00" * 20, bytes(32))
    registered = send(models.functions.register(spec), node)
    model_id = models.events.ModelRegistered().process_receipt(registered)[0]["args"]["modelId"]

    timestamp = web3.eth.get_block("latest")["timestamp"]
    receipt = Receipt(requestId=keccak(text="hardhat request"), modelId=model_id, inputHash=keccak(text="in"),
                      outputHash=keccak(text="out"), mode=Mode.VANILLA, signer=node.address, timestamp=timestamp,
                      payer=payer.address, price=0)
    signature = sign_receipt(_Domain(settlement), receipt, node.private_key)
    send(settlement.functions.settle(receipt.as_args(), signature), payer)
    assert settlement.functions.recordOf(payer.address, receipt.requestId).call()[0] == Status.FINAL

    monitor = ape_run("monitor_fees", *on(hardhat), "--market", addresses["TwinMarket"], "--json")
    assert monitor.returncode == 0, monitor.stdout + monitor.stderr
    assert json_lines(monitor.stdout)

    network = f"ethereum:hardhat:{hardhat}"
    for name in ("watchtower", "keeper"):
        result = run_operator(name, network, addresses["InferenceSettlement"], tmp_path / f"{name}.db", "TEST::9",
                              "--json", "--confirmations", "0")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_local_network_node_provider_on_hardhat__refused_before_anything_is_sent(hardhat):
    web3 = Web3(HTTPProvider(hardhat))
    sender = web3.eth.accounts[5]
    nonce = web3.eth.get_transaction_count(sender)
    result = ape_run("deploy", "--network", f"ethereum:local:{hardhat}", "--account", "TEST::5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "reaches a Hardhat node" in result.stderr and "ethereum:hardhat:" in result.stderr
    assert web3.eth.get_transaction_count(sender) == nonce
