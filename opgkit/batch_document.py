"""The batch document a relayer publishes where a batch's ``dataUri`` points, and how watchers fetch it.

    {
      "format": "opg-batch/1",
      "chainId": 31337,
      "batchSettlement": "0x…",
      "root": "0x…",                       (the Merkle root posted on chain)
      "count": 2,                          (the leaf count posted on chain)
      "leaves": [{"receipt": {…}, "signature": "0x…"}, …]   (receipt documents, in the relayer's order)
    }

The leaves rebuild the OpenZeppelin StandardMerkleTree whose root was posted (``opgkit.receipts.ReceiptBatch``),
so anyone holding the document can produce each leaf's proof. A document is named by its root
(``0x<root>.json``): content-addressed, so publishing the same batch twice writes the same file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import urllib3
from eth_utils import is_address, is_hex, keccak, to_checksum_address

from opgkit.cli import UserError, loads_json, write_atomically
from opgkit.receipt_verifier import ReceiptDocumentError, document_json, parse_document
from opgkit.receipts import ReceiptBatch, SignedReceipt

FORMAT = "opg-batch/1"
BATCH_POSTED_TOPIC = keccak(text="BatchPosted(uint256,address,bytes32,uint32,string)")
"""topic0 of ``IBatchSettlement.BatchPosted``: relayers and watchers read the event raw (its dataUri may be any bytes)."""
DOCUMENT_LIMIT = 64 << 20
"""Largest batch document a watcher downloads (64 MiB: about 90,000 leaves)."""


class BatchDataError(Exception):
    """The batch data cannot be had or does not match what was posted; the message says which."""


@dataclass(frozen=True)
class BatchDocument:
    chain_id: int
    batch_settlement: str
    leaves: tuple[SignedReceipt, ...]

    def batch(self) -> ReceiptBatch:
        return ReceiptBatch(list(self.leaves))

    def to_json(self, batch: ReceiptBatch | None = None) -> dict:
        batch = batch or self.batch()
        return {
            "format": FORMAT, "chainId": self.chain_id, "batchSettlement": self.batch_settlement,
            "root": "0x" + batch.root.hex(), "count": len(batch),
            "leaves": [document_json(item.receipt, item.signature) for item in self.leaves],
        }


def document_name(root: bytes) -> str:
    return f"0x{root.hex()}.json"


def publish(directory: Path, document: BatchDocument) -> tuple[Path, bytes]:
    """Write ``document`` into ``directory`` under its root's name (atomically: a reader never sees half of it)."""
    batch = document.batch()
    path = directory / document_name(batch.root)
    write_atomically(path, json.dumps(document.to_json(batch), separators=(",", ":")))
    return path, batch.root


def parse(raw: bytes, chain_id: int, batch_settlement: str) -> BatchDocument:
    """A batch document from its bytes, checked against the chain and contract it must belong to."""
    try:
        data = loads_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BatchDataError(f"the batch data is not a JSON document ({str(error)[:120]})") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("leaves"), list):
        raise BatchDataError(f'the batch data is not an "{FORMAT}" document with a "leaves" list')
    if data.get("chainId") != chain_id or not is_address(data.get("batchSettlement") or "") or (
            to_checksum_address(data["batchSettlement"]) != to_checksum_address(batch_settlement)):
        raise BatchDataError(f"the batch data names chain {data.get('chainId')} and contract "
                             f"{data.get('batchSettlement')}, not this batch settlement")
    leaves = []
    for index, leaf in enumerate(data["leaves"]):
        if not isinstance(leaf, dict):
            raise BatchDataError(f"leaf {index} is not an object")
        try:
            receipt = parse_document({"receipt": leaf.get("receipt")}).receipt
        except ReceiptDocumentError as error:
            raise BatchDataError(f"leaf {index}: {error}") from error
        leaves.append(SignedReceipt(receipt, _signature(leaf.get("signature"), index)))
    if not leaves:
        raise BatchDataError("the batch data has no leaves")
    return BatchDocument(chain_id, to_checksum_address(batch_settlement), tuple(leaves))


def _signature(value, index: int) -> bytes:
    """A leaf's signature as committed: any bytes (a wrong length is the contract's BadSignature, provable by a
    challenge, so it must not make the document unreadable)."""
    if not isinstance(value, str) or not value.startswith("0x") or not is_hex(value) or len(value) % 2:
        raise BatchDataError(f"leaf {index}: signature must be 0x-prefixed hex bytes")
    return bytes.fromhex(value[2:])


def fetch(uri: str, timeout: float = 10.0, limit: int = DOCUMENT_LIMIT, allow_files: bool = False) -> bytes:
    """The bytes behind a ``dataUri``: ``http(s)://`` (at most ``limit`` bytes within ``timeout`` seconds in all,
    so a server trickling bytes cannot hold a watcher past other batches' deadlines) or, with ``allow_files``
    (a publisher and watcher sharing a disk, as on a local chain), a ``file://`` regular file."""
    try:
        parsed = urlparse(uri)
    except ValueError as error:  # e.g. "http://[": a relayer chose it
        raise BatchDataError(f"the dataUri {uri[:200]!r} is not a URL ({error})") from error
    if parsed.scheme in ("http", "https"):
        return _download(uri, timeout, limit)
    if parsed.scheme == "file":
        if not allow_files:
            raise BatchDataError(f"the dataUri {uri[:200]!r} is a local file: a relayer could name any file on this "
                                 "machine, so file:// is read only on a development chain or with --allow-file-uris")
        return _read_file(uri, Path(unquote(parsed.path)), limit)
    raise BatchDataError(f"the dataUri {uri[:200]!r} is not an http(s):// or file:// address this watcher can fetch")


def _download(uri: str, timeout: float, limit: int) -> bytes:
    deadline = time.monotonic() + timeout
    session = requests.Session()
    session.trust_env = False  # no proxies or ~/.netrc credentials for addresses a relayer chose
    session.max_redirects = 3
    try:
        # Uncompressed only: a decoder can sit on a stream of empty blocks without returning, out of the deadline's
        # reach (and a small compressed body can expand far past the size limit).
        with session.get(uri, timeout=timeout, stream=True, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                raise BatchDataError(f"{uri} answered HTTP {response.status_code}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise BatchDataError(f"{uri} sent a {encoding[:40]}-encoded body; batch documents are served plain")
            body = bytearray()
            while chunk := response.raw.read1(1 << 16, decode_content=False):  # whatever arrived, never waits for more
                body += chunk
                if len(body) > limit:
                    raise BatchDataError(f"{uri} is larger than {limit:,} bytes")
                if time.monotonic() > deadline:
                    raise BatchDataError(f"{uri} took more than {timeout:g} s to send")
            return bytes(body)
    except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError, OSError) as error:
        raise BatchDataError(f"{uri} cannot be fetched: {type(error).__name__}") from error


def _read_file(uri: str, path: Path, limit: int) -> bytes:
    try:
        if not path.is_file():
            raise BatchDataError(f"{uri} is not a regular file")
        with path.open("rb") as file:
            data = file.read(limit + 1)  # never more: the file may grow while it is read
    except OSError as error:
        raise BatchDataError(f"{uri} cannot be read: {error.strerror or error}") from error
    if len(data) > limit:
        raise BatchDataError(f"{uri} is larger than {limit:,} bytes")
    return data


def check_publish_directory(directory: Path) -> None:
    """Create the publish directory if needed and make sure documents can be written there."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"publish directory {directory} is a file; give a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write batch documents into {directory}: {error.strerror or error}") from error
