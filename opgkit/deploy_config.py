"""Deployment parameters from a YAML file, checked in full before any transaction.

Keys are the fields of ``ProtocolParameters``; a key left out keeps its default. Units:

- durations: seconds, or a number with ``s``, ``m``, ``h`` or ``d`` (``"7d"``, ``"90m"``);
- OPG amounts (``minimum_stakes``, ``proposal_threshold``): whole OPG, decimals allowed;
- twin market fees and caps: percent (``5`` is 5%, ``2.5`` is 2.5%);
- ``reporter_reward_bps``: basis points; ``quorum_percent``: percent of bonded stake;
- ``attestors``: a list of addresses; empty means the deployer alone (local chains only);
- ``guardian``: the multisig (a Safe) that may cancel queued timelock operations, or null;
  ``guardian_proposes``: true to let it schedule operations as well;
- ``example_vault_model``: the model id the example consumer acts on, or null to skip deploying it.

Every problem is reported at once, each naming its key, so one edit fixes them all.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from opgkit.cli import UserError, read_yaml, shown
from opgkit.deploy import DAY, OPG, PROOF_REPORT_MARGIN, ProtocolParameters

HOUR, MINUTE = 3_600, 60
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": MINUTE, "h": HOUR, "d": DAY}
DURATIONS = {
    "unbonding_delay", "jail_duration", "voting_delay", "voting_period", "timelock_delay", "max_heartbeat_age",
    "twin_fee_increase_delay", "twin_transfer_delay", "challenge_window", "proof_window", "max_receipt_age",
}
PERCENT_FEES = {"twin_protocol_fee_cap", "twin_subject_fee_cap", "twin_protocol_fee", "twin_subject_fee"}
INTEGERS = {"reporter_reward_bps", "quorum_percent", "attestor_threshold", "twin_curve_divisor",
            "twin_min_shares_to_create", "example_vault_max_risk_score"}


SEQUENCING_WINDOWS = {8453: 12 * HOUR, 84532: 12 * HOUR, 10: 12 * HOUR, 11155420: 12 * HOUR}
"""OP Stack chains (Base, Base Sepolia, OP Mainnet, OP Sepolia) by chain id: how long their sequencer may keep
a transaction out before one sent through L1 (OptimismPortal) must be included. A challenge or proof that the
sequencer censors or delays during an outage still lands within this time plus the margin below."""
L2_MARGIN = HOUR


class ConfigError(UserError, ValueError):
    """The parameters file is unusable; the message lists every problem, one per line."""


def _duration(value) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError
    return int(match[1]) * _UNIT[match[2]]


def _decimal(value) -> Decimal:
    if isinstance(value, bool):
        raise ValueError
    try:
        number = Decimal(str(value))
    except InvalidOperation as error:
        raise ValueError from error
    if not number.is_finite() or abs(number) > 10**30:  # no parameter is anywhere near 10^30 units
        raise ValueError
    return number


def _opg(value) -> int:
    amount = _decimal(value) * OPG
    if amount != amount.to_integral_value() or amount < 0:
        raise ValueError
    return int(amount)


def _fee(value) -> int:
    fraction = _decimal(value) * 10**16
    if fraction != fraction.to_integral_value() or fraction < 0:
        raise ValueError
    return int(fraction)


def _integer(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError
    return value


def _convert(key, value, errors):
    try:
        if key in DURATIONS:
            return _duration(value)
        if key in PERCENT_FEES:
            return _fee(value)
        if key in INTEGERS:
            return _integer(value)
        if key == "proposal_threshold":
            return _opg(value)
        if key == "minimum_stakes":
            if not isinstance(value, list) or len(value) != 3:
                raise ValueError
            return tuple(_opg(v) for v in value)
        if key == "example_vault_model":
            if value is None:
                return None
            if not (isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]{64}", value)):
                raise ValueError
            return bytes.fromhex(value[2:])
        if key == "guardian":
            if value is None:
                return None
            if not (isinstance(value, str) and is_address(value)) or int(value, 16) == 0:
                raise ValueError
            return to_checksum_address(value)
        if key == "guardian_proposes":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if key == "attestors":
            if not isinstance(value, list) or not all(isinstance(a, str) and is_address(a) for a in value):
                raise ValueError
            return tuple(to_checksum_address(a) for a in value)
    except ValueError:
        errors.append(f"{key}: {shown(value)} is not {_expected(key)}")
        return None
    raise AssertionError(key)


def _expected(key) -> str:
    if key in DURATIONS:
        return "a duration (seconds, or a number with s, m, h or d)"
    if key in PERCENT_FEES:
        return "a percentage (0 to 100, e.g. 5 or 2.5)"
    if key in INTEGERS:
        return "a whole number"
    if key == "guardian":
        return "a non-zero address (the Safe) or null"
    if key == "guardian_proposes":
        return "true or false"
    if key == "minimum_stakes":
        return "a list of three OPG amounts (inference node, TEE node, relayer)"
    if key == "attestors":
        return "a list of 0x addresses"
    if key == "example_vault_model":
        return "a model id (0x followed by 64 hex digits) or null"
    return "an OPG amount"


def validate(params: ProtocolParameters, local: bool = True, chain_id: int | None = None) -> list[str]:
    """Every rule the contracts enforce at deployment, checked here first; ``local`` for a development chain.
    On an OP Stack L2 (``chain_id`` in SEQUENCING_WINDOWS) the challenge and proof windows must also outlast its
    sequencing window, so a challenger or prover the sequencer ignores can force its transaction through L1."""
    p, problems = params, []

    def need(ok, message):
        if not ok:
            problems.append(message)

    need(all(0 < s <= 10_000_000 * OPG for s in p.minimum_stakes), "minimum_stakes: each must be above 0 and at most 10,000,000 OPG")
    need(DAY <= p.unbonding_delay <= 28 * DAY, "unbonding_delay: must be between 1d and 28d")
    need(0 <= p.reporter_reward_bps <= 5_000, "reporter_reward_bps: must be between 0 and 5000")
    need(0 < p.jail_duration <= 28 * DAY, "jail_duration: must be above 0 and at most 28d")
    need(p.voting_delay > 0 and p.voting_period > 0, "voting_delay, voting_period: must be above 0")
    need(1 <= p.quorum_percent <= 100, "quorum_percent: must be between 1 and 100")
    need(p.timelock_delay > 0, "timelock_delay: must be above 0")
    need(MINUTE <= p.max_heartbeat_age <= DAY, "max_heartbeat_age: must be between 1m and 1d")
    attestors = len(p.attestors) or 1
    need(1 <= p.attestor_threshold <= attestors, f"attestor_threshold: must be between 1 and the {attestors} attestor(s)")
    need(len(set(p.attestors)) == len(p.attestors), "attestors: an address is listed twice")
    need(local or p.attestors, "attestors: a public network needs at least one attestation service (the "
                               "deployer alone would vouch for every TEE)")
    need(p.guardian is not None or not p.guardian_proposes, "guardian_proposes: needs a guardian")
    need(p.twin_curve_divisor > 0 and 10**18 % p.twin_curve_divisor == 0, "twin_curve_divisor: must divide 10^18")
    need(p.twin_min_shares_to_create >= 1, "twin_min_shares_to_create: must be at least 1")
    need(p.twin_protocol_fee_cap + p.twin_subject_fee_cap <= 5 * 10**17, "twin fee caps: must add up to at most 50")
    need(p.twin_protocol_fee <= p.twin_protocol_fee_cap, "twin_protocol_fee: must not exceed twin_protocol_fee_cap")
    need(p.twin_subject_fee <= p.twin_subject_fee_cap, "twin_subject_fee: must not exceed twin_subject_fee_cap")
    for key in ("twin_fee_increase_delay", "twin_transfer_delay"):
        need(HOUR <= getattr(p, key) <= 30 * DAY, f"{key}: must be between 1h and 30d")
    need(5 * MINUTE <= p.challenge_window < p.unbonding_delay,
         "challenge_window: must be at least 5m and shorter than unbonding_delay (or a relayer could withdraw "
         "before a challenge lands)")
    need(MINUTE <= p.proof_window <= 7 * DAY, "proof_window: must be between 1m and 7d")
    need(p.proof_window + PROOF_REPORT_MARGIN <= p.unbonding_delay,
         "proof_window: must be at least 1h (the missed-proof report margin) shorter than unbonding_delay (or a "
         "node could withdraw before its missed proof is reported)")
    need(MINUTE <= p.max_receipt_age <= 30 * DAY, "max_receipt_age: must be between 1m and 30d")
    window = SEQUENCING_WINDOWS.get(chain_id)
    if window is not None:
        least = f"{(window + L2_MARGIN) // HOUR}h"
        for key in ("challenge_window", "proof_window"):
            need(getattr(p, key) >= window + L2_MARGIN,
                 f"{key}: must be at least {least} on this L2 (chain {chain_id}): its sequencer may hold a transaction "
                 f"{window // HOUR}h before one sent through L1 is included, and a censored challenge or proof must "
                 "still land in time")
    return problems


def parameters_from_mapping(data, local: bool = True, chain_id: int | None = None) -> ProtocolParameters:
    """``ProtocolParameters`` from a mapping of YAML values; raises ConfigError listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the parameters file must be a mapping of parameter names to values")
    known = {f.name for f in dataclasses.fields(ProtocolParameters)}
    errors = [f"{key if isinstance(key, str) and len(key) <= 60 else shown(key)}: unknown parameter "
              f"(known: {', '.join(sorted(known))})" for key in data if key not in known]
    values = {key: _convert(key, value, errors) for key, value in data.items() if key in known}
    if errors:
        raise ConfigError("\n".join(errors))
    params = dataclasses.replace(ProtocolParameters(), **values)
    problems = validate(params, local, chain_id)
    if problems:
        raise ConfigError("\n".join(problems))
    return params


def load_parameters(path: Path, local: bool = True, chain_id: int | None = None) -> ProtocolParameters:
    """The parameters file at ``path``, read (size-limited, UTF-8 YAML) and checked in full."""
    if not path.exists():
        raise ConfigError(f"no parameters file at {path}")
    try:
        data = read_yaml(path, "parameters file")
    except UserError as error:
        raise ConfigError(str(error)) from error
    return parameters_from_mapping(data, local, chain_id)


def config_path_for(network: str, root: Path, ecosystem: str = "ethereum") -> Path:
    """The checked-in parameters of ``network``: ``config/deploy/<network>.yaml`` on Ethereum,
    ``config/deploy/<ecosystem>-<network>.yaml`` elsewhere (``base-sepolia.yaml``)."""
    name = network if ecosystem == "ethereum" or network == "local" else f"{ecosystem}-{network}"
    return root / "config" / "deploy" / f"{name}.yaml"
