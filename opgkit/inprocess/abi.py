"""ABI encoding and decoding (faster-eth-abi: eth_abi compiled, a few times faster on this hot path) with ape's
conventions: accounts and contracts stand for their address, structs go
in as tuples or dicts and come out as named tuples, addresses come out checksummed and byte strings as HexBytes."""

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache

from faster_eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes


def canonical(abi_type) -> str:
    return abi_type.canonical_type


def selector(abi) -> bytes:
    return keccak(text=abi.selector)[:4]


def topic(abi) -> bytes:
    return keccak(text=abi.selector)


# ---------------------------------------------------------------------- arguments


def to_abi(abi_type, value):
    """Convert one Python argument to what eth_abi encodes for ``abi_type`` (an ethpm ABIType)."""
    kind = abi_type.type
    if kind.endswith("]"):
        item = _item_type(abi_type)
        return [to_abi(item, element) for element in value]
    if kind == "tuple":
        components = abi_type.components or []
        if isinstance(value, dict):
            value = [value[component.name] for component in components]
        return tuple(to_abi(component, element) for component, element in zip(components, value, strict=True))
    if kind == "address":
        return _address(value)
    if kind.startswith("bytes"):
        if isinstance(value, str):
            return bytes.fromhex(value[2:] if value.startswith("0x") else value)
        return bytes(value)
    if kind.startswith(("uint", "int")):
        return int(value)
    return value


def _address(value) -> str:
    address = getattr(value, "address", value)
    if isinstance(address, bytes):
        address = "0x" + address.hex()
    return checksum(address)


checksum = lru_cache(maxsize=4096)(to_checksum_address)


class _ItemType:
    """The element type of an array type, with the same attributes as an ethpm ABIType."""

    def __init__(self, array_type):
        self.type = array_type.type[: array_type.type.rindex("[")]
        self.components = array_type.components
        self.name = array_type.name
        self.internal_type = None
        self.canonical_type = array_type.canonical_type[: array_type.canonical_type.rindex("[")]


def _item_type(array_type):
    return _ItemType(array_type)


def types_of(abi_types) -> tuple:
    return tuple(canonical(abi_type) for abi_type in abi_types)


def encode_arguments(inputs, args, types: tuple | None = None) -> bytes:
    values = [to_abi(abi_type, arg) for abi_type, arg in zip(inputs, args, strict=True)]
    return encode(types or types_of(inputs), values)


# ---------------------------------------------------------------------- results


@lru_cache(maxsize=None)
def _struct_class(names: tuple) -> type:
    return namedtuple("Struct", names, rename=True)


def _identity(value):
    return value


def converter(abi_type):
    """The function that turns a decoded value of ``abi_type`` into ape's Python type (built once per type)."""
    kind = abi_type.type
    if kind.endswith("]"):
        item = converter(_item_type(abi_type))
        return lambda value: [item(element) for element in value]
    if kind == "tuple":
        components = abi_type.components or []
        struct = _struct_class(tuple(component.name or f"_{index}" for index, component in enumerate(components)))
        parts = [converter(component) for component in components]
        return lambda value: struct(*(part(element) for part, element in zip(parts, value)))
    if kind == "address":
        return checksum
    if kind.startswith("bytes"):
        return HexBytes
    return _identity


def from_abi(abi_type, value):
    """Convert one decoded value back to ape's Python types."""
    return converter(abi_type)(value)


def outputs_decoder(outputs):
    """A function from a call's return data to what ape returns: one value, or a named tuple of several."""
    types = types_of(outputs)
    parts = [converter(abi_type) for abi_type in outputs]
    if not outputs:
        return lambda data: None
    if len(outputs) == 1:
        only = parts[0]
        return lambda data: only(decode(types, data)[0])
    struct = _struct_class(tuple(abi_type.name or f"_{index}" for index, abi_type in enumerate(outputs)))
    return lambda data: struct(*(part(value) for part, value in zip(parts, decode(types, data))))


def decode_fields(inputs, data: bytes) -> dict:
    """A custom error's arguments by name."""
    values = decode([canonical(abi_type) for abi_type in inputs], data)
    return {abi_type.name: from_abi(abi_type, value) for abi_type, value in zip(inputs, values)}


def decode_event(abi, topics: list, data: bytes) -> dict:
    """An event's arguments by name, from its topics (indexed ones) and data (the rest)."""
    plain = [abi_type for abi_type in abi.inputs if not abi_type.indexed]
    values = iter(decode([canonical(abi_type) for abi_type in plain], data))
    indexed = iter(topics[1:])
    arguments = {}
    for abi_type in abi.inputs:
        if abi_type.indexed:
            raw = next(indexed)
            dynamic = abi_type.type in ("string", "bytes") or abi_type.type.endswith("]") or abi_type.type == "tuple"
            value = HexBytes(raw) if dynamic else from_abi(abi_type, decode([canonical(abi_type)], raw)[0])
        else:
            value = from_abi(abi_type, next(values))
        arguments[abi_type.name] = value
    return arguments


def same_value(expected, actual) -> bool:
    """Equality as ape's event comparison sees it: addresses by value whatever their case or object."""
    if hasattr(expected, "address") and not isinstance(expected, (bytes, str)):
        expected = expected.address
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.lower() == actual.lower()
    if isinstance(expected, str) and isinstance(actual, bytes) and expected.startswith("0x"):
        return bytes.fromhex(expected[2:]) == bytes(actual)
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(same_value(e, a) for e, a in zip(expected, actual))
    return expected == actual


class AddressIdentity:
    """An account or contract: equal to its address (whatever its case, or another object with that address),
    printed as it, as ape's objects are."""

    address: str

    def __eq__(self, other) -> bool:
        return same_value(other, self.address)

    def __hash__(self) -> int:
        return hash(self.address.lower())

    def __str__(self) -> str:
        return self.address

    __repr__ = __str__
