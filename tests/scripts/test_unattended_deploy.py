"""A deploy signed by a real `ape accounts` keystore account, run the way CI and cron run it: no terminal.

With --autosign and the passphrase in ape's own APE_ACCOUNTS_<alias>_PASSPHRASE the whole deploy runs with
zero prompts; every other combination stops before the first transaction with one line saying what to set.
"""

import json
import os
import secrets
import subprocess

import pytest
from ape_accounts import import_account_from_private_key

from opgkit import PROJECT_ROOT
from opgkit.cli import passphrase_variable
from opgkit.deploy import ProtocolParameters, deployment_steps

pytestmark = pytest.mark.anvil_only

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def keystore_account(accounts):
    """A fresh keystore account with ETH for gas, removed from ape's accounts folder afterwards."""
    account = import_account_from_private_key(f"opg-test-{secrets.token_hex(4)}", PASSPHRASE,
                                              "0x" + secrets.token_hex(32))
    try:
        accounts[0].transfer(account.address, 10**20)
        yield account
    finally:
        account.keyfile_path.unlink(missing_ok=True)


def deploy(uri, account, tmp_path, *options, passphrase=None):
    env = {key: value for key, value in os.environ.items() if not key.startswith("APE_ACCOUNTS_")}
    if passphrase is not None:
        env[passphrase_variable(account.alias)] = passphrase
    return subprocess.run(
        ["ape", "run", "deploy", "--network", uri, "--account", account.alias, "--record", str(tmp_path / "r.json"),
         *options],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env,
    )


def assert_stopped_before_sending(result, account, chain, message):
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in result.stderr, output
    assert "Traceback" not in output
    assert chain.provider.get_nonce(account.address) == 0, "a transaction was sent"


def test_autosign__passphrase_from_ape_variable__deploys_with_no_prompt(uri, keystore_account, chain, tmp_path):
    result = deploy(uri, keystore_account, tmp_path, "--autosign", passphrase=PASSPHRASE)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for prompt in ("Sign:", "Enter passphrase", "Leave '"):
        assert prompt not in output
    assert f"account '{keystore_account.alias}' signs unattended for this run (--autosign)" in result.stdout
    record = json.loads((tmp_path / "r.json").read_text())
    every_step = {step.name for step in deployment_steps(keystore_account.address, keystore_account.address,
                                                         ProtocolParameters())}
    assert set(record["contracts"]) == every_step
    assert chain.provider.get_nonce(keystore_account.address) > 10


def test_autosign__wrong_passphrase__exit_2_before_any_transaction(uri, keystore_account, chain, tmp_path):
    result = deploy(uri, keystore_account, tmp_path, "--autosign", passphrase="not the passphrase")
    assert_stopped_before_sending(result, keystore_account, chain,
                                  f"wrong passphrase for account '{keystore_account.alias}'")
    assert not (tmp_path / "r.json").exists()


def test_keystore_without_autosign__no_terminal__exit_2_naming_what_to_set(uri, keystore_account, chain, tmp_path):
    without_option = deploy(uri, keystore_account, tmp_path, passphrase=PASSPHRASE)
    assert_stopped_before_sending(without_option, keystore_account, chain, "add --autosign")
    without_passphrase = deploy(uri, keystore_account, tmp_path, "--autosign")
    assert_stopped_before_sending(without_passphrase, keystore_account, chain,
                                  f"set {passphrase_variable(keystore_account.alias)}")
