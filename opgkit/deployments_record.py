"""The deployments record: which contract was deployed where, per network, written atomically after each step.

Shape: ``{"chain_id": int, "contracts": {name: {"address": "0x…", "tx_hash": …, "block": int,
"constructor_args": [...], "code_hash": "0x…", "identity"?: str}}, "pending"?: {"name": …, "sender": "0x…", "tx_hash": "0x…",
"nonce": int, "address": "0x…", "constructor_args": [...], "identity"?: str}}``. ``pending`` is the deployment
transaction signed and about to be sent, written before it leaves: a run killed between sending it and
recording its contract finds it there and adopts the contract instead of deploying a duplicate. Scripts read
contract addresses from the record when the user gives none; the deploy resumes from it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from eth_utils import is_address

from opgkit.cli import UserError, read_json, write_atomically

RECORD_FIELDS = ("address", "tx_hash", "block", "constructor_args", "code_hash")
PENDING_FIELDS = ("name", "sender", "tx_hash", "nonce", "address", "constructor_args")


class RecordError(UserError):
    """The deployments record does not say what was asked, or is not a record; the message says what to do."""


def record_path_for(ecosystem: str, network: str, root: Path) -> Path:
    """Where the deployments record of ``ecosystem:network`` lives."""
    return root / "deployments" / f"{ecosystem}-{network}.json"


def load_record(path: Path) -> dict:
    """The record at ``path``, its shape checked; an empty record if there is no file yet."""
    if not path.exists():
        return {"chain_id": None, "contracts": {}}
    data = read_json(path, "deployments record")
    contracts = data.get("contracts") if isinstance(data, dict) else None
    if not isinstance(contracts, dict) or not isinstance(data.get("chain_id"), int):
        raise RecordError(f"{path} is not a deployments record (no chain_id and contracts); give another --record "
                          "or move it away to deploy afresh")
    for name, entry in contracts.items():
        if not _entry_ok(entry):
            raise RecordError(f"{path}: the entry of {name!r} is damaged (needs {', '.join(RECORD_FIELDS)}); restore "
                              "the file or move it away to deploy afresh")
    if "pending" in data and not _pending_ok(data["pending"]):
        raise RecordError(f"{path}: its pending deployment is damaged (needs {', '.join(PENDING_FIELDS)}); restore the "
                          "file, or check the sender's last transaction by hand and remove the entry")
    return data


def _pending_ok(pending) -> bool:
    return (isinstance(pending, dict) and all(field in pending for field in PENDING_FIELDS)
            and isinstance(pending["name"], str) and isinstance(pending["tx_hash"], str)
            and re.fullmatch(r"0x[0-9a-fA-F]{64}", pending["tx_hash"]) is not None
            and isinstance(pending["sender"], str) and is_address(pending["sender"])
            and isinstance(pending["nonce"], int) and not isinstance(pending["nonce"], bool)
            and isinstance(pending["address"], str) and is_address(pending["address"])
            and isinstance(pending["constructor_args"], list))


def _entry_ok(entry) -> bool:
    return (isinstance(entry, dict) and all(field in entry for field in RECORD_FIELDS)
            and isinstance(entry["address"], str) and is_address(entry["address"])
            and isinstance(entry["tx_hash"], str) and isinstance(entry["code_hash"], str)
            and isinstance(entry["block"], int) and not isinstance(entry["block"], bool)
            and isinstance(entry["constructor_args"], list))


def save_record(path: Path, chain_id: int, contracts: dict, pending: dict | None = None) -> None:
    """Replace the record atomically: a kill leaves the previous record or this one."""
    record = {"chain_id": chain_id, "contracts": contracts} | ({"pending": pending} if pending else {})
    write_atomically(path, json.dumps(record, indent=2) + "\n")


def recorded_address(record_path: Path, name: str) -> str:
    """The address ``name`` was deployed at according to the deployments record."""
    if not record_path.exists():
        raise RecordError(f"no deployments record at {record_path}; deploy first or give the address")
    contracts = load_record(record_path)["contracts"]
    if name not in contracts:
        raise RecordError(f"{record_path} records no {name}; deploy it or give the address")
    return contracts[name]["address"]
