"""Test accounts on the in-process chain: the same mnemonic, keys and addresses as ape's test accounts."""

from __future__ import annotations

from ape.utils import DEFAULT_TEST_ACCOUNT_BALANCE, generate_dev_accounts

from opgkit.inprocess.abi import AddressIdentity, _address
from opgkit.inprocess.contracts import ContractContainer, ContractInstance, Receipt
from opgkit.inprocess.evm import InProcessChain

DEFAULT_HD_PATH = "m/44'/60'/0'/0"


class TestAccount(AddressIdentity):
    """An account whose key the tests hold: it sends transactions, deploys and transfers ether."""

    __test__ = False  # not a pytest test class

    def __init__(self, chain: InProcessChain, index: int, address: str, private_key: str):
        self.chain, self.index, self.address, self.private_key = chain, index, address, private_key

    @property
    def balance(self) -> int:
        return self.chain.get_balance(self.address)

    def deploy(self, container: ContractContainer, *args, value: int = 0) -> ContractInstance:
        return container.deploy(*args, sender=self, value=value)

    def transfer(self, to, value: int) -> Receipt:
        return Receipt(self.chain, self.chain.transact(self.address, _address(to), b"", int(value)))


class TestAccounts:
    """``accounts`` for in-process tests: indexable like ape's test accounts, each funded like anvil's. Accounts
    generated during a test are numbered from the same index in every test (the plugin resets the count), so a
    counterexample replayed alone on anvil meets the same addresses."""

    __test__ = False

    def __init__(self, chain: InProcessChain, mnemonic: str, count: int, hd_path: str = DEFAULT_HD_PATH,
                 balance: int = DEFAULT_TEST_ACCOUNT_BALANCE):
        self.chain, self.mnemonic, self.hd_path, self.balance = chain, mnemonic, hd_path, balance
        self._accounts = [self._make(index, balance) for index in range(count)]
        self._generated = 0

    def _make(self, index: int, balance: int = 0) -> TestAccount:
        generated = generate_dev_accounts(self.mnemonic, 1, hd_path=self.hd_path, start_index=index)[0]
        account = TestAccount(self.chain, index, generated.address, generated.private_key)
        if balance:
            self.chain.set_balance(account.address, balance)
        return account

    def __getitem__(self, index: int) -> TestAccount:
        return self._accounts[index]

    def __len__(self) -> int:
        return len(self._accounts)

    def __iter__(self):
        return iter(self._accounts)

    def generate_test_account(self) -> TestAccount:
        """The next account of the mnemonic, unfunded (as ape generates one on anvil)."""
        self._generated += 1
        return self._make(len(self._accounts) + self._generated - 1)
