"""Output manifests: one hash over everything an inference returned to the user.

A receipt signs ``outputHash``, the keccak-256 of the manifest's canonical JSON. The manifest lists the
answer's text, every image (media type, byte length and sha256 of its exact bytes), every tool call (name
and arguments) and the token usage, so nothing that reaches the user sits outside the signature: change
one pixel of one image and the hash changes.

Canonical JSON: UTF-8, keys sorted, no insignificant whitespace, lists in the order the answer gave them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils import keccak

from opgkit.cli.files import loads_json

MANIFEST_VERSION = 1
_DATA_URI = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>[A-Za-z0-9+/=\s]*)$")


class ManifestError(ValueError):
    """The response cannot be turned into a manifest; the message says which part and why."""


@dataclass(frozen=True)
class Image:
    media_type: str
    data: bytes

    @classmethod
    def from_data_uri(cls, uri: str) -> "Image":
        match = _DATA_URI.match(uri)
        if match is None:
            raise ManifestError("an image data URI must look like data:<type>/<subtype>;base64,<data>")
        try:
            data = base64.b64decode(match["data"], validate=False)
        except binascii.Error as error:
            raise ManifestError(f"an image data URI holds invalid base64: {error}") from error
        return cls(media_type=match["media"], data=data)

    def entry(self) -> dict:
        return {"mediaType": self.media_type, "size": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping = field(default_factory=dict)

    def entry(self) -> dict:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class OutputManifest:
    text: str
    images: tuple[Image, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "version": MANIFEST_VERSION,
            "text": self.text,
            "images": [image.entry() for image in self.images],
            "toolCalls": [call.entry() for call in self.tool_calls],
            "usage": dict(self.usage),
        }

    def canonical_json(self) -> bytes:
        try:
            return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as error:
            raise ManifestError(f"the response holds a value JSON cannot represent exactly: {error}") from error

    def output_hash(self) -> bytes:
        """The 32-byte hash a receipt's ``outputHash`` carries."""
        return keccak(self.canonical_json())


def _image(item, index: int) -> Image:
    if isinstance(item, Image):
        return item
    if isinstance(item, (bytes, bytearray)):
        return Image(media_type="application/octet-stream", data=bytes(item))
    if isinstance(item, str):
        return Image.from_data_uri(item)
    if isinstance(item, Mapping) and isinstance(item.get("data"), (bytes, bytearray)):
        return Image(media_type=str(item.get("media_type", "application/octet-stream")), data=bytes(item["data"]))
    raise ManifestError(f"image {index} must be bytes, a data URI, or {{'media_type', 'data'}}; got {type(item).__name__}")


def _tool_call(item, index: int) -> ToolCall:
    if isinstance(item, ToolCall):
        return item
    if not isinstance(item, Mapping) or "name" not in item:
        raise ManifestError(f"tool call {index} must be a mapping with a 'name'")
    arguments = item.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = loads_json(arguments)
        except (ValueError, RecursionError) as error:
            raise ManifestError(f"tool call {index} has arguments that are not JSON: {error}") from error
    return ToolCall(name=str(item["name"]), arguments=arguments)


def manifest_from_response(response: Mapping) -> OutputManifest:
    """Build the manifest of a response ``{"text", "images", "tool_calls", "usage"}`` (all but text optional)."""
    if not isinstance(response.get("text"), str):
        raise ManifestError("the response needs its answer as a 'text' string (empty if there is none)")
    images: Sequence = response.get("images") or ()
    calls: Sequence = response.get("tool_calls") or ()
    usage = response.get("usage") or {}
    if not isinstance(usage, Mapping) or not isinstance(images, (list, tuple)) or not isinstance(calls, (list, tuple)):
        raise ManifestError("images and tool_calls must be lists and usage a mapping of counts")
    if not all(isinstance(v, int) and v >= 0 for v in usage.values()):
        raise ManifestError("usage counts must be non-negative integers")
    return OutputManifest(
        text=response["text"],
        images=tuple(_image(item, i) for i, item in enumerate(images)),
        tool_calls=tuple(_tool_call(item, i) for i, item in enumerate(calls)),
        usage=dict(usage),
    )
