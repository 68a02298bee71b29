"""Contracts, receipts, events and custom errors on the in-process chain, with the API of ape's objects that the
property tests use (``contract.method(*args, sender=...)``, ``tx.events.filter(contract.Event)``,
``contract.Event(...) in tx.events``, ``reverts(contract.Error, field=value)``)."""

from __future__ import annotations

from contextlib import contextmanager

from hexbytes import HexBytes

from opgkit.inprocess.abi import (
    AddressIdentity,
    _address, decode_event, decode_fields, encode_arguments, outputs_decoder, same_value, selector, topic, types_of,
)
from opgkit.inprocess.evm import InProcessChain, Reverted

_VIEW = {"view", "pure"}


class ContractRevert(Exception):
    """A transaction or call reverted with a custom error of the contracts on the chain (or unknown data)."""

    def __init__(self, name: str, fields: dict, data: bytes):
        super().__init__(f"{name}{tuple(fields.values())}" if name else f"reverted with 0x{data.hex()}")
        self.name, self.fields, self.data = name, fields, data


class Registry:
    """Every custom error and event ABI deployed on one chain, so revert data and logs can be decoded."""

    def __init__(self):
        self.errors: dict[bytes, object] = {}
        self.events: dict[bytes, object] = {}

    def add(self, contract_type) -> None:
        for abi in contract_type.errors:
            self.errors.setdefault(selector(abi), abi)
        for abi in contract_type.events:
            self.events.setdefault(topic(abi), abi)

    def revert(self, error: Reverted) -> ContractRevert:
        abi = self.errors.get(error.data[:4])
        if abi is None:
            return ContractRevert("", {}, error.data)
        return ContractRevert(abi.name, decode_fields(abi.inputs, error.data[4:]), error.data)


class ProjectContracts:
    """``project`` for in-process tests: ``project.Name`` is a container that deploys the compiled contract."""

    def __init__(self, chain: InProcessChain, source_project, bytecode_overrides: dict[str, str] | None = None):
        self._chain, self._source = chain, source_project
        self._overrides = bytecode_overrides or {}
        self._containers: dict[str, ContractContainer] = {}

    def __getattr__(self, name: str) -> "ContractContainer":
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._containers:
            contract_type = getattr(self._source, name).contract_type
            if name in self._overrides:  # the same ABI, other code (a mutant's, in mutation testing)
                bytecode = contract_type.deployment_bytecode.model_copy(update={"bytecode": self._overrides[name]})
                contract_type = contract_type.model_copy(update={"deployment_bytecode": bytecode})
            self._containers[name] = ContractContainer(self._chain, contract_type)
        return self._containers[name]


class ContractContainer:
    def __init__(self, chain: InProcessChain, contract_type):
        self.chain, self.contract_type = chain, contract_type
        registry(chain).add(contract_type)

    def deploy(self, *args, sender, value: int = 0) -> "ContractInstance":
        initcode = bytes(self.contract_type.deployment_bytecode.to_bytes())
        constructor = self.contract_type.constructor
        if constructor.inputs or args:
            initcode += encode_arguments(constructor.inputs, args)
        try:
            receipt = self.chain.deploy(_address(sender), initcode, value)
        except Reverted as error:
            raise registry(self.chain).revert(error) from None
        instance = ContractInstance(self.chain, receipt.contract_address, self.contract_type)
        instance.creation_metadata = CreationMetadata(Receipt(self.chain, receipt))
        return instance

    def at(self, address) -> "ContractInstance":
        return ContractInstance(self.chain, _address(address), self.contract_type)

    def __getattr__(self, name: str) -> "ErrorType":
        """``project.Name.SomeError``, as ape gives it (what a failed deployment is expected to revert with)."""
        if not name.startswith("_"):
            for abi in self.contract_type.errors:
                if abi.name == name:
                    return ErrorType(abi)
        raise AttributeError(f"{self.contract_type.name} has no error named {name!r}")


class CreationMetadata:
    """``contract.creation_metadata.receipt``: the deployment's receipt."""

    def __init__(self, receipt: "Receipt"):
        self.receipt = receipt


def registry(chain: InProcessChain) -> Registry:
    if not hasattr(chain, "abi_registry"):
        chain.abi_registry = Registry()
    return chain.abi_registry


class _Provider:
    def __init__(self, chain):
        self.chain_id = chain.chain_id


class ContractInstance(AddressIdentity):
    """A deployed contract: its functions, events and custom errors by name."""

    def __init__(self, chain: InProcessChain, address: str, contract_type):
        self.chain, self.address, self.contract_type = chain, address, contract_type
        self.provider = _Provider(chain)
        self._members: dict[str, object] = {}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        members = self.__dict__["_members"]
        if name not in members:
            members[name] = self._member(name)
        return members[name]

    def _member(self, name: str):
        functions = [abi for abi in self.contract_type.methods if abi.name == name]
        if functions:
            return Method(self, functions)
        for abi in self.contract_type.events:
            if abi.name == name:
                return EventType(self, abi)
        for abi in self.contract_type.errors:
            if abi.name == name:
                return ErrorType(abi)
        raise AttributeError(f"{self.contract_type.name} has no function, event or error named {name!r}")

    @property
    def balance(self) -> int:
        return self.chain.get_balance(self.address)

    def invoke_transaction(self, name: str, *args, sender, value: int = 0) -> "Receipt":
        return getattr(self, name).transact(*args, sender=sender, value=value)

    def call_view_method(self, name: str, *args, sender=None):
        return getattr(self, name).call(*args, sender=sender)


class Method:
    """One function name (all its overloads): a view is called, anything else is sent as a transaction."""

    def __init__(self, contract: ContractInstance, overloads: list):
        self.contract, self.overloads = contract, overloads
        # Per arity: (abi, selector, input types, return-data decoder).
        self._by_arity = {}
        for abi in overloads:
            self._by_arity.setdefault(len(abi.inputs), (abi, selector(abi), types_of(abi.inputs), outputs_decoder(abi.outputs)))

    def _select(self, args):
        found = self._by_arity.get(len(args))
        if found is None:
            raise TypeError(f"{self.overloads[0].name} takes {sorted(self._by_arity)} arguments, got {len(args)}")
        return found

    def _calldata(self, args) -> bytes:
        abi, function_selector, input_types, _ = self._select(args)
        return function_selector + encode_arguments(abi.inputs, args, input_types)

    def encode_input(self, *args) -> HexBytes:
        return HexBytes(self._calldata(args))

    def __call__(self, *args, sender=None, value: int = 0):
        abi = self._select(args)[0]
        if abi.stateMutability in _VIEW:
            return self.call(*args, sender=sender)
        if sender is None:
            raise TypeError(f"{abi.name} changes state: pass sender=")
        return self.transact(*args, sender=sender, value=value)

    def call(self, *args, sender=None, value: int = 0):
        _, _, _, decode_output = self._select(args)
        chain = self.contract.chain
        try:
            output = chain.call(_address(sender) if sender is not None else None, self.contract.address,
                                self._calldata(args), value)
        except Reverted as error:
            raise registry(chain).revert(error) from None
        return decode_output(output)

    def transact(self, *args, sender, value: int = 0) -> "Receipt":
        chain = self.contract.chain
        data = self._calldata(args)
        try:
            raw = chain.transact(_address(sender), self.contract.address, data, value)
        except Reverted as error:
            raise registry(chain).revert(error) from None
        return Receipt(chain, raw)


class EventType:
    """``contract.Event``: builds an expected event (``contract.Event(a, b) in tx.events``) or filters logs."""

    def __init__(self, contract: ContractInstance, abi):
        self.contract, self.abi, self.topic = contract, abi, topic(abi)

    def __call__(self, *args, **kwargs) -> "ExpectedEvent":
        names = [abi_type.name for abi_type in self.abi.inputs]
        return ExpectedEvent(self.abi.name, self.contract.address, dict(zip(names, args)) | kwargs)


class ExpectedEvent:
    """An event a test expects from one contract, with some or all of its arguments."""

    def __init__(self, name: str, address: str, arguments: dict):
        self.event_name, self.contract_address, self.arguments = name, address, arguments

    def __eq__(self, other) -> bool:
        if not isinstance(other, DecodedEvent) or other.event_name != self.event_name:
            return False
        if other.contract_address.lower() != self.contract_address.lower():
            return False
        return all(same_value(value, other.event_arguments.get(name)) for name, value in self.arguments.items())

    def __repr__(self) -> str:
        return f"{self.event_name}({self.arguments})"


class DecodedEvent:
    """One log of a receipt, decoded: arguments as attributes and items."""

    def __init__(self, name: str, address: str, arguments: dict):
        self.event_name, self.contract_address, self.event_arguments = name, address, arguments

    def __getattr__(self, name: str):
        arguments = self.__dict__["event_arguments"]
        if name in arguments:
            return arguments[name]
        raise AttributeError(name)

    def __getitem__(self, name: str):
        return self.event_arguments[name]

    def __eq__(self, other) -> bool:
        if isinstance(other, ExpectedEvent):
            return other == self
        return NotImplemented

    def __repr__(self) -> str:
        return f"{self.event_name}({self.event_arguments})"


class Events(list):
    def filter(self, event_type: EventType) -> list:
        return [event for event, raw_topic, address in zip(self, self._topics, self._addresses)
                if raw_topic == event_type.topic and address.lower() == event_type.contract.address.lower()]


class Receipt:
    """A mined transaction: its decoded events (those whose ABI the chain knows) and gas."""

    def __init__(self, chain: InProcessChain, raw):
        self.raw, self.gas_used, self.block_number = raw, raw.gas_used, raw.block.number
        self.timestamp = raw.block.timestamp
        self.failed = False
        self.total_fees_paid = 0  # in-process transactions pay no gas price (base fee 0)
        self._registry = registry(chain)
        self._events = None

    @property
    def events(self) -> Events:
        if self._events is None:
            events, topics, addresses = Events(), [], []
            for address, log_topics, data in self.raw.logs:
                abi = self._registry.events.get(log_topics[0]) if log_topics else None
                if abi is None:
                    continue
                events.append(DecodedEvent(abi.name, address, decode_event(abi, log_topics, data)))
                topics.append(log_topics[0])
                addresses.append(address)
            events._topics, events._addresses = topics, addresses
            self._events = events
        return self._events


class ErrorType:
    """``contract.SomeError``: what :func:`reverts` expects; ``isinstance(revert, contract.SomeError)`` holds for
    a :class:`ContractRevert` with that error, as it does for ape's error classes."""

    def __init__(self, abi):
        self.abi, self.name = abi, abi.name

    def __instancecheck__(self, instance) -> bool:
        return isinstance(instance, ContractRevert) and instance.name == self.name


class RevertInfo:
    """What ``with reverts(...) as info`` gives: ``info.value`` is the revert, once the block has raised it."""

    value: ContractRevert | None = None


@contextmanager
def reverts(expected: ErrorType | None = None, /, **fields):
    """Expect the block to revert: with the custom error ``expected`` and, if given, these argument values
    (any revert when ``expected`` is None)."""
    # The messages are ape's own, so a failure reads the same on either chain (make audit compares them).
    info = RevertInfo()
    try:
        yield info
    except ContractRevert as revert:
        info.value = revert
        if expected is None:
            return
        if revert.name != expected.name:
            raise AssertionError(f"Expected error '{expected.name}' but was '{revert.name or revert}'") from None
        for name, value in fields.items():
            if not same_value(value, revert.fields.get(name)):
                raise AssertionError(f"Expected input '{name}' to be '{value}' but was '{revert.fields.get(name)}'.") from None
        return
    raise AssertionError("Transaction did not revert.")
