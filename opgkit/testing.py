"""Test infrastructure shared by every contract's tests: Hypothesis profiles and per-example isolation.

Ape isolates chain state per pytest *test*, not per Hypothesis *example*. Property tests wrap each example
in :func:`isolated_example`; stateful machines subclass :class:`ChainStateMachine`, which snapshots the chain
when a run starts and restores it when the run ends.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from ape import chain
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine

PROFILE_ENV = "OPG_HYPOTHESIS_PROFILE"
"""Environment variable that selects the Hypothesis profile: ``ci`` (default) or ``audit``."""

AUDIT_MULTIPLIER = 25

_CHAIN_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
_BASE = dict(deadline=None, suppress_health_check=_CHAIN_HEALTH, print_blob=True)
PROFILES = {
    "ci": settings(max_examples=20, stateful_step_count=12, **_BASE),
    "audit": settings(max_examples=20 * AUDIT_MULTIPLIER, stateful_step_count=12 * AUDIT_MULTIPLIER, **_BASE),
}


def load_hypothesis_profile() -> str:
    """Register every profile and load the one named by ``$OPG_HYPOTHESIS_PROFILE``."""
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)
    name = os.environ.get(PROFILE_ENV, "ci")
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; choose one of {', '.join(PROFILES)}")
    settings.load_profile(name)
    return name


def advance(chain, seconds: int) -> None:
    """Mine a block ``seconds`` after the next pending timestamp (time travel in tests)."""
    chain.pending_timestamp = chain.pending_timestamp + seconds
    chain.mine()


@contextmanager
def isolated_example():
    """Run one Hypothesis example against a chain snapshot that is restored afterwards. An exception raised by
    the example (a failed assertion included) propagates: ape's ``chain.isolate()`` is not used because it
    swallows every exception raised inside it, which would make each example pass whatever it asserts."""
    snapshot = chain.snapshot()
    pending = chain.pending_timestamp
    try:
        yield
    finally:
        chain.restore(snapshot)
        chain.pending_timestamp = pending


class ChainStateMachine(RuleBasedStateMachine):
    """Base for stateful tests: every run starts from the same chain state and leaves none behind.

    Subclasses set up their model in ``__init__`` after calling ``super().__init__()``, and
    call ``super().teardown()`` if they override ``teardown``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._snapshot = chain.snapshot()

    def teardown(self) -> None:
        chain.restore(self._snapshot)
