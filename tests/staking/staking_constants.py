"""Parameters the staking tests deploy with: the protocol's defaults (`opgkit.deploy.ProtocolParameters`)."""

from opgkit.deploy import DAY, OPG, ProtocolParameters

_DEFAULTS = ProtocolParameters()

INFERENCE, TEE, RELAYER = 0, 1, 2
ROLE_BITS = {INFERENCE: 1, TEE: 2, RELAYER: 4}
MINIMUM_STAKES = list(_DEFAULTS.minimum_stakes)
UNBONDING_DELAY = _DEFAULTS.unbonding_delay
REPORTER_REWARD_BPS = _DEFAULTS.reporter_reward_bps
JAIL_DURATION = _DEFAULTS.jail_duration
FUNDING = 1_000_000 * OPG

__all__ = [
    "DAY", "FUNDING", "INFERENCE", "JAIL_DURATION", "MINIMUM_STAKES", "OPG", "RELAYER", "REPORTER_REWARD_BPS",
    "ROLE_BITS", "TEE", "UNBONDING_DELAY",
]
