"""The one command-line layer of every `ape run` script: validated inputs, named errors, documented exit codes.

A script declares its command with ``NetworkCommand`` (or ``ScriptCommand`` when it needs no chain) and the
epilog from ``exit_codes_help``; anything that goes wrong ends as one ``error:`` line and an ``ExitCode``.
"""

from opgkit.cli.accounts import passphrase_variable, prepare_signer, signing_options
from opgkit.cli.command import NetworkCommand, ScriptCommand, fail, run_guarded
from opgkit.cli.contracts import contract_at
from opgkit.cli.errors import UserError, explain, is_unreachable
from opgkit.cli.exits import GROUP_EXIT_CODES, ExitCode, exit_codes_help
from opgkit.cli.files import (
    DOCUMENT_LIMIT, ensure_writable, loads_json, read_json, read_text, read_yaml, require_object, shown, write_atomically,
)
from opgkit.cli.params import DEVELOPMENT_CHAIN_IDS, finite_number, is_development_chain, nonzero_address
from opgkit.cli.retry import with_backoff

__all__ = [
    "DEVELOPMENT_CHAIN_IDS", "DOCUMENT_LIMIT", "GROUP_EXIT_CODES", "ExitCode", "NetworkCommand", "ScriptCommand", "UserError", "contract_at",
    "ensure_writable", "exit_codes_help", "explain", "fail", "finite_number", "is_development_chain", "is_unreachable", "loads_json",
    "nonzero_address", "passphrase_variable", "prepare_signer", "read_json", "read_text", "read_yaml",
    "require_object", "run_guarded", "shown", "signing_options", "with_backoff", "write_atomically",
]
