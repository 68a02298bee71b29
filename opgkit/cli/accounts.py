"""The signing account of a script: chosen by --account, and able to sign unattended with --autosign."""

from __future__ import annotations

import os
import sys

import click
from ape.cli.choices import AccountAliasPromptChoice
from ape_accounts import KeyfileAccount
from ape_accounts.accounts import InvalidPasswordError

from opgkit.cli.errors import UserError


def passphrase_variable(alias: str) -> str:
    """ape's own environment variable for a keystore account's passphrase."""
    return f"APE_ACCOUNTS_{alias}_PASSPHRASE"


def _choose_account(ctx: click.Context, param: click.Parameter, value):
    if value:
        return value
    if not sys.stdin.isatty():
        raise click.UsageError("give --account: a keystore alias (see `ape accounts list`), or TEST::0 on a local "
                               "chain", ctx)
    return param.type.select_account()


def signing_options(command):
    """``--account`` and ``--autosign`` for a command that sends transactions."""
    command = click.option(
        "--autosign", is_flag=True,
        help="Sign every transaction of this run without asking (keystore accounts): the passphrase comes from "
             "APE_ACCOUNTS_<alias>_PASSPHRASE, else one prompt. For CI and cron; never a raw private key.",
    )(command)
    return click.option(
        "--account", type=AccountAliasPromptChoice(), callback=_choose_account,
        help="Who signs: an `ape accounts` keystore alias, or TEST::<n> (the local test accounts). Asks if omitted.",
    )(command)


def prepare_signer(account, autosign: bool) -> str | None:
    """Make ``account`` able to sign this run's transactions before any is sent; returns a line to print, if any.

    A keystore account asks before every signature: without --autosign that needs a terminal, so a run with
    no terminal stops here rather than after its first transaction. A wrong passphrase stops here too.
    """
    if not isinstance(account, KeyfileAccount):
        return None
    variable = passphrase_variable(account.alias)
    if not autosign:
        if not sys.stdin.isatty():
            raise UserError(f"account '{account.alias}' asks before every signature and there is no terminal to "
                            f"answer: add --autosign and set {variable}")
        return None
    passphrase = os.environ.get(variable)
    if passphrase == "":
        raise UserError(f"{variable} is set but empty; set it to the passphrase of '{account.alias}' (a name with "
                        f"a dash needs `env '{variable}=…' ape run …`)")
    if passphrase is None:
        if not sys.stdin.isatty():
            raise UserError(f"--autosign needs the passphrase of '{account.alias}' and there is no terminal to ask: "
                            f"set {variable}" + ("" if variable.isidentifier() else f" (with `env '{variable}=…'`: "
                                                 "a shell cannot export a name with a dash)"))
        passphrase = click.prompt(f"Passphrase of '{account.alias}'", hide_input=True)
    try:
        account.set_autosign(True, passphrase=passphrase)
    except InvalidPasswordError as error:
        source = variable if variable in os.environ else "the prompt"
        raise UserError(f"wrong passphrase for account '{account.alias}' (from {source}); nothing was sent") from error
    return f"account '{account.alias}' signs unattended for this run (--autosign)"
