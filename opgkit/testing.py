"""Test infrastructure shared by every contract's tests: Hypothesis profiles, per-example isolation, and the
chain the property tests run on.

Ape isolates chain state per pytest *test*, not per Hypothesis *example*. Property tests wrap each example
in :func:`isolated_example`; stateful machines subclass :class:`ChainStateMachine`, which snapshots the chain
when a run starts and restores it when the run ends, and counts the steps it takes.

The chain is ape's (anvil, through ape) unless the in-process plugin (:mod:`opgkit.inprocess.plugin`) installed
its own with :func:`use_chain`; :func:`reverts` and :func:`json_rpc` work with either.
"""

from __future__ import annotations

import os
import queue
import threading
from contextlib import contextmanager

import ape
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine

PROFILE_ENV = "OPG_HYPOTHESIS_PROFILE"
"""Environment variable that selects the Hypothesis profile: ``ci`` (default) or ``audit``."""
EXAMPLES_ENV = "OPG_HYPOTHESIS_EXAMPLES"
"""Optional: how many examples each property test runs, overriding the profile's number (a campaign's length)."""
STEPS_ENV = "OPG_HYPOTHESIS_STEPS"
"""Optional: the most steps a stateful example takes, overriding the profile's number."""

AUDIT_MULTIPLIER = 25

_CHAIN_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
_BASE = dict(deadline=None, suppress_health_check=_CHAIN_HEALTH, print_blob=True)
PROFILES = {
    "ci": settings(max_examples=20, stateful_step_count=12, **_BASE),
    # Hypothesis loads its own "ci" profile (derandomized, no example database) wherever CI is set; a campaign
    # must stay random (each shard exploring other examples) and keep its counterexamples, so it starts from the
    # default profile instead.
    "audit": settings(parent=settings.get_profile("default"), max_examples=20 * AUDIT_MULTIPLIER,
                      stateful_step_count=12 * AUDIT_MULTIPLIER, **_BASE),
}


def load_hypothesis_profile() -> str:
    """Register every profile and load the one named by ``$OPG_HYPOTHESIS_PROFILE``."""
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)
    name = os.environ.get(PROFILE_ENV, "ci")
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; choose one of {', '.join(PROFILES)}")
    overrides = {}
    for variable, setting in ((EXAMPLES_ENV, "max_examples"), (STEPS_ENV, "stateful_step_count")):
        value = os.environ.get(variable)
        if value is not None:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{variable}={value!r} is not a positive whole number")
            overrides[setting] = int(value)
    if overrides:
        label = "-".join([name, *(f"{key}={value}" for key, value in overrides.items())])
        settings.register_profile(label, settings(PROFILES[name], **overrides))
        name = label
    settings.load_profile(name)
    return name


_chain = None
steps_taken = 0
"""State-machine steps run in this process (both chains count; ``make audit`` reports steps per second)."""


def use_chain(chain) -> None:
    """Make ``chain`` the one property tests isolate their examples on (``None``: ape's)."""
    global _chain
    _chain = chain


def active_chain():
    return _chain if _chain is not None else ape.chain


def reverts(expected=None, /, **fields):
    """``ape.reverts`` for ape's contracts; the in-process equivalent for in-process ones. Without ``expected``,
    any revert will do (on the chain the tests run on)."""
    from opgkit.inprocess.contracts import ErrorType, reverts as inprocess_reverts

    if isinstance(expected, ErrorType) or (expected is None and _chain is not None):
        return inprocess_reverts(expected, **fields)
    return ape.reverts(expected, **fields)


def advance(chain, seconds: int) -> None:
    """Mine a block ``seconds`` after the next pending timestamp (time travel in tests)."""
    chain.pending_timestamp = chain.pending_timestamp + seconds
    chain.mine()


@contextmanager
def isolated_example():
    """Run one Hypothesis example against a chain snapshot that is restored afterwards. An exception raised by
    the example (a failed assertion included) propagates: ape's ``chain.isolate()`` is not used because it
    swallows every exception raised inside it, which would make each example pass whatever it asserts."""
    chain = active_chain()
    snapshot = chain.snapshot()
    pending = chain.pending_timestamp
    try:
        yield
    finally:
        chain.restore(snapshot)
        chain.pending_timestamp = pending


class ReadSchedule:
    """Which keys of a growing set an invariant reads this step: every key new since the last step, all of them
    every ``full_every`` steps, and a rotating window of ``window`` older ones in between.

    Reading every key every step makes a step's cost grow with the run (and a campaign's total with its square);
    this keeps each step's reads bounded while every key is read again within ``full_every`` steps, and on the
    example's last step (``due`` is called once per check of the invariants). An example Hypothesis
    ends early is read in full only up to its last tenth step."""

    def __init__(self, window: int = 8, full_every: int = 10, last_step: int | None = None):
        self.window, self.full_every = window, full_every
        # The example's last step reads everything too, so a change in its final steps is not missed.
        self.last_step = settings.default.stateful_step_count if last_step is None else last_step
        self.seen: set = set()
        self.steps = 0

    def due(self, keys) -> list:
        self.steps += 1
        fresh = [key for key in keys if key not in self.seen]
        older = sorted(self.seen)
        self.seen.update(fresh)
        if self.steps % self.full_every == 0 or self.steps >= self.last_step or len(older) <= self.window:
            return fresh + older
        start = (self.steps * self.window) % len(older)
        return fresh + (older + older)[start:start + self.window]


class ChainStateMachine(RuleBasedStateMachine):
    """Base for stateful tests: every run starts from the same chain state and leaves none behind.

    Subclasses set up their model in ``__init__`` after calling ``super().__init__()``, and
    call ``super().teardown()`` if they override ``teardown``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._snapshot = active_chain().snapshot()
        self._started = False

    def check_invariants(self, settings, output, runtimes) -> None:
        global steps_taken
        if self._started:  # the first check runs before any step
            steps_taken += 1
        self._started = True
        super().check_invariants(settings, output, runtimes)

    def teardown(self) -> None:
        active_chain().restore(self._snapshot)


class LineReader:
    """A process's stdout lines, read on a thread. (select() on the pipe misses lines that an earlier
    readline() already pulled into Python's buffer, and then waits for output that already came.)"""

    def __init__(self, process):
        self.process, self.lines, self.history = process, queue.Queue(), []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for line in self.process.stdout:
            self.lines.put(line)

    def next(self, timeout=60) -> str:
        """The next line, or a test failure (never a hang) if none comes in ``timeout`` seconds."""
        try:
            line = self.lines.get(timeout=timeout)
            self.history.append(line)
            return line
        except queue.Empty:
            self.process.kill()
            pytest.fail(f"the process printed nothing for {timeout} s; stderr: {self.process.stderr.read()[-2000:]}")

    def drain(self) -> list[str]:
        """Every line the process printed, once it has exited."""
        self.pump.join(timeout=30)
        while not self.lines.empty():
            self.history.append(self.lines.get())
        return self.history

    def until(self, predicate, timeout=60) -> list[str]:
        """Lines up to and including the first one ``predicate`` accepts."""
        seen = []
        while not seen or not predicate(seen[-1]):
            seen.append(self.next(timeout))
        return seen
