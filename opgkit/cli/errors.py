"""Known failures, each turned into one `error:` line that says what went wrong and how to fix it."""

from __future__ import annotations

import errno
import os

import click
import requests
from ape.exceptions import (
    AccountsError, ApeException, ContractLogicError, ContractNotFoundError, NetworkError, OutOfGasError,
    ProviderError, SignatureError, TransactionError, VirtualMachineError,
)


class UserError(Exception):
    """A failure the user can fix; the message names it and says how. Exits with ExitCode.ERROR."""


def _os_message(error: OSError) -> str:
    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot access{where}: {reason}; choose a path you may write to, or fix its permissions"
    if error.errno == errno.ENOSPC:
        return f"cannot write{where}: the disk is full; free space and run again"
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"no such file or directory{where}; check the path"
    if error.errno == errno.EISDIR:
        return f"{where.strip()} is a directory; give a file"
    return f"cannot use{where}: {reason}"


def _connection_message(error: Exception) -> str:
    return (f"cannot reach the node ({first_line(error)}); start it (for the local chain: make chain) or check the "
            "--network choice and its URI")


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_unreachable(error: BaseException) -> bool:
    """The node did not answer (down, restarting, wrong URI): worth retrying, never the user's input."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, BrokenPipeError):  # our own output closed (`| head`), not the node
            return False
        if isinstance(cause, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        if any(marker in str(cause) for marker in _UNREACHABLE_MARKERS):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


# What ape and web3 say when nothing answers at the node's URI.
_UNREACHABLE_MARKERS = ("No node found", "node found on", "Missing latest block", "Connection refused", "Max retries exceeded",
                        "Not connected", "not connected to a provider")


def explain(error: BaseException) -> str | None:
    """One line for a failure this toolkit knows how to explain, or None for an unexpected one (a bug)."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, click.Abort):
        return ("a prompt needed an answer and none came (no terminal, or it was cancelled); for unattended runs "
                "use --autosign with APE_ACCOUNTS_<alias>_PASSPHRASE set")
    if is_unreachable(error):
        return _connection_message(error)
    if isinstance(error, ContractNotFoundError):
        address = str(error).split("'")[1] if "'" in str(error) else "that address"
        return (f"no contract at {address} on this chain; a local chain started by a script forgets everything when "
                "the script ends: keep one with `make chain`, or check the address and --network")
    if isinstance(error, SignatureError):
        return ("the transaction was not signed (declined, or no terminal to ask); nothing after it was sent. "
                "For unattended runs use --autosign with APE_ACCOUNTS_<alias>_PASSPHRASE set")
    if isinstance(error, AccountsError):
        message = first_line(error)
        if "password" in message.lower() or "unlock" in message.lower():
            return f"{message.rstrip('.')}: wrong passphrase for the account; check it (or APE_ACCOUNTS_<alias>_PASSPHRASE)"
        return f"account problem: {message}"
    if isinstance(error, OutOfGasError):
        return f"a transaction ran out of gas: {first_line(error)}"
    if isinstance(error, ContractLogicError):
        return f"a transaction or call reverted: {first_line(error)}"
    if isinstance(error, (TransactionError, VirtualMachineError)):
        message = first_line(error)
        if "insufficient funds" in message.lower():
            return f"the sending account cannot pay for gas ({message}); fund it and run again"
        return f"a transaction failed: {message}"
    if isinstance(error, (ProviderError, NetworkError)):
        return f"node or network problem: {first_line(error)}"
    if isinstance(error, OSError):
        return _os_message(error)
    if isinstance(error, ApeException):
        return first_line(error)
    return None


def debugging() -> bool:
    """OPG_DEBUG=1 prints tracebacks too (for bug reports)."""
    return os.environ.get("OPG_DEBUG", "") not in ("", "0")
