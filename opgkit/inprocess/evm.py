"""The in-process chain: revm with a block clock and snapshots that behave like an automining anvil."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from eth_utils import to_checksum_address
from pyrevm import EVM, BlockEnv, CfgEnv, Env

CHAIN_ID = 31337
GENESIS_TIMESTAMP = 1_767_225_600  # 2026-01-01; later blocks follow the clock below
BLOCK_GAS_LIMIT = 30_000_000
_REVERT = re.compile(r"Revert \{ gas_used: (\d+), output: 0x([0-9a-fA-F]*) \}")


class Reverted(Exception):
    """A transaction or call reverted; ``data`` is its revert data (a custom error, or empty)."""

    def __init__(self, data: bytes, gas_used: int = 0):
        super().__init__("0x" + data.hex())
        self.data = data
        self.gas_used = gas_used


class Halted(Exception):
    """The EVM stopped a transaction for a reason other than a revert (out of gas, invalid opcode, ...)."""


@dataclass(frozen=True)
class Block:
    number: int
    timestamp: int


@dataclass
class RawReceipt:
    """What a mined transaction left: its status, gas and logs (address, topics, data)."""

    block: Block
    gas_used: int
    logs: list = field(default_factory=list)
    contract_address: str | None = None


class _Blocks:
    def __init__(self, chain: "InProcessChain"):
        self._chain = chain

    @property
    def head(self) -> Block:
        return self._chain.head

    @property
    def height(self) -> int:
        return self._chain.head.number

    def __getitem__(self, number: int) -> Block:
        if number < 0:
            number += self._chain.head.number + 1
        if not 0 <= number <= self._chain.head.number:
            raise IndexError(f"block {number} is not mined (head is {self._chain.head.number})")
        return self._chain.mined[number]


class InProcessChain:
    """One revm instance that mines a block per transaction, as anvil does in automine mode.

    Views run against the latest block, transactions in the next one (at ``pending_timestamp``, which tests may
    set as they set anvil's next block timestamp). ``snapshot``/``restore`` cover the state and the clock.
    """

    def __init__(self, chain_id: int = CHAIN_ID, timestamp: int = GENESIS_TIMESTAMP):
        self.chain_id = chain_id
        self.evm = EVM(env=Env(cfg=CfgEnv(chain_id=chain_id), block=self._block_env(Block(0, timestamp))),
                       spec_id="PRAGUE", gas_limit=BLOCK_GAS_LIMIT)
        self.head = Block(0, timestamp)
        self.mined = {0: self.head}  # number -> block; a restored snapshot's later blocks are overwritten as mined again
        self._pending_timestamp: int | None = None
        self._env_block = self.head
        self._snapshots: dict[int, tuple] = {}
        self.blocks = _Blocks(self)
        self.transactions = 0

    # ------------------------------------------------------------------ clock

    @staticmethod
    def _block_env(block: Block) -> BlockEnv:
        return BlockEnv(number=block.number, timestamp=block.timestamp, gas_limit=BLOCK_GAS_LIMIT, basefee=0)

    @property
    def pending_timestamp(self) -> int:
        if self._pending_timestamp is not None:
            return self._pending_timestamp
        return self.head.timestamp + 1

    @pending_timestamp.setter
    def pending_timestamp(self, value: int) -> None:
        if int(value) < self.head.timestamp:  # anvil refuses a block older than its parent as well
            raise ValueError(f"timestamp {value} is before the latest block's ({self.head.timestamp})")
        self._pending_timestamp = int(value)

    def mine(self, num_blocks: int = 1, timestamp: int | None = None) -> None:
        """Mine ``num_blocks`` empty blocks; ``timestamp``: the first one's (ape's ``chain.mine`` arguments)."""
        if timestamp is not None:
            self.pending_timestamp = timestamp
        for _ in range(num_blocks):
            self._next_block()

    def _next_block(self) -> Block:
        self.head = self.mined[self.head.number + 1] = Block(self.head.number + 1, self.pending_timestamp)
        self._pending_timestamp = None
        return self.head

    def _use_block(self, block: Block) -> None:
        if self._env_block != block:
            self.evm.set_block_env(self._block_env(block))
            self._env_block = block

    # ------------------------------------------------------------------ state

    def snapshot(self) -> int:
        checkpoint = self.evm.snapshot()
        snapshot_id = len(self._snapshots) + 1
        while snapshot_id in self._snapshots:
            snapshot_id += 1
        self._snapshots[snapshot_id] = (checkpoint, self.head, self._pending_timestamp)
        return snapshot_id

    def restore(self, snapshot_id: int) -> None:
        _, self.head, self._pending_timestamp = self._snapshots[snapshot_id]
        # Like evm_revert: this snapshot and every later one are gone. Each journal checkpoint is reverted,
        # newest first: reverting only the oldest would leave revm's depth counter raised by the others.
        for later in sorted((key for key in self._snapshots if key >= snapshot_id), reverse=True):
            self.evm.revert(self._snapshots.pop(later)[0])

    def get_balance(self, address: str) -> int:
        return self.evm.get_balance(address)

    def set_balance(self, address: str, value: int) -> None:
        self.evm.set_balance(address, value)

    def get_code(self, address: str) -> bytes:
        return bytes(self.evm.get_code(address) or b"")

    # ------------------------------------------------------------------ execution

    def call(self, sender: str | None, to: str, data: bytes, value: int = 0) -> bytes:
        """``eth_call`` on the latest block: nothing it does is kept."""
        self._use_block(self.head)
        checkpoint = self.evm.snapshot()
        try:
            return self._run(lambda: self.evm.message_call(sender or _NOBODY, to, calldata=data, value=value))
        finally:
            self.evm.revert(checkpoint)
            self.evm.reset_transient_storage()

    def transact(self, sender: str, to: str, data: bytes, value: int = 0) -> RawReceipt:
        """Mine one block holding this transaction. If it reverts, the block is mined all the same (as anvil
        mines a reverted transaction that ape sends without estimating) and :class:`Reverted` is raised."""
        block = Block(self.head.number + 1, self.pending_timestamp)
        self._use_block(block)
        try:
            self._run(lambda: self.evm.message_call(sender, to, calldata=data, value=value))
        except (Reverted, Halted):
            self._mined_empty(block)
            raise
        finally:
            self.evm.reset_transient_storage()
        return self._mined(block)

    def deploy(self, sender: str, initcode: bytes, value: int = 0) -> RawReceipt:
        block = Block(self.head.number + 1, self.pending_timestamp)
        self._use_block(block)
        try:
            address = self._run(lambda: self.evm.deploy(sender, initcode, value=value))
        except (Reverted, Halted):
            self._mined_empty(block)
            raise
        finally:
            self.evm.reset_transient_storage()
        receipt = self._mined(block)
        receipt.contract_address = to_checksum_address(address)
        return receipt

    def _run(self, execute):
        try:
            return execute()
        except RuntimeError as error:
            match = _REVERT.search(str(error))
            if match:
                raise Reverted(bytes.fromhex(match.group(2)), int(match.group(1))) from None
            raise Halted(str(error)) from None

    def _mined_empty(self, block: Block) -> None:
        """``block`` is the new head, and the next timestamp is the clock's again."""
        self.head = self.mined[block.number] = block
        self._pending_timestamp = None
        self.transactions += 1

    def _mined(self, block: Block) -> RawReceipt:
        result = self.evm.result
        logs = [(log.address, [bytes(topic) if isinstance(topic, bytes) else bytes.fromhex(topic[2:])
                               for topic in log.topics], bytes(log.data[1])) for log in result.logs]
        self._mined_empty(block)
        return RawReceipt(block=block, gas_used=result.gas_used, logs=logs)


_NOBODY = "0x0000000000000000000000000000000000000000"
