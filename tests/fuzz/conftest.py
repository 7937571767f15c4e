"""How long the fuzz tests run: a few fixed examples in `make test`, a time budget in
`make fuzz`.

- Default (`make test`, and with CI=true derandomized by the suite's "ci" profile):
  each fuzz test runs `FUZZ_EXAMPLES` examples per property (the default below), once.
- `FUZZ_EXAMPLES=n`: n examples per property instead.
- `FUZZ_SECONDS=s` (`make fuzz`): a wall-clock budget of s seconds shared equally by
  the fuzz tests collected. Hypothesis has no wall-clock limit of its own, so each test
  runs rounds of `FUZZ_EXAMPLES` fresh random examples (never derandomized; hypothesis's
  example database replays a failure found first next time) until its share has
  passed; a round in progress is finished, so a test may overrun by one round.

Every test reports what it ran (rounds, examples, outcomes, the costliest input); the
summary is printed at the end of the session.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 25
_RUNS = pytest.StashKey[list]()
_COLLECTED = pytest.StashKey[int]()


def _env_number(name: str, parse: Callable[[str], float]) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    value = parse(text)
    if value <= 0:
        raise pytest.UsageError(f"{name} must be a positive number (got {text!r})")
    return value


@dataclass
class FuzzRun:
    """What one fuzz test ran: examples, rounds, outcome counts and the costliest input."""

    test: str
    examples_per_round: int
    seconds_budget: float | None
    rounds: int = 0
    examples: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    max_cpu_seconds: float = 0.0
    max_megabytes: float = 0.0

    def count(self, *outcomes: str) -> None:
        """One example ran, with these outcomes (a zip has one per member)."""
        self.examples += 1
        self.outcomes.update(outcomes)

    def cost(self, cpu_seconds: float, megabytes: float) -> None:
        self.max_cpu_seconds = max(self.max_cpu_seconds, cpu_seconds)
        self.max_megabytes = max(self.max_megabytes, megabytes)

    def run(self, check: Callable[[], None], part: float = 1.0, examples: float = 1.0) -> None:
        """Run the hypothesis test ``check`` (decorated with @given, not @settings):
        once, or in rounds until ``part`` of this test's share of FUZZ_SECONDS has
        passed (a test fuzzing several properties gives each its part), with
        ``examples`` times FUZZ_EXAMPLES examples a round (for costlier examples)."""
        budgeted = self.seconds_budget is not None
        options = {"max_examples": max(int(self.examples_per_round * examples), 1),
                   "deadline": None,
                   "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
        if budgeted:
            options["derandomize"] = False  # each round explores new examples
        check = settings(**options)(check)
        started = time.monotonic()
        spent = self.seconds
        while True:
            check()
            self.rounds += 1
            self.seconds = spent + time.monotonic() - started
            if not budgeted or self.seconds - spent >= self.seconds_budget * part:
                return

    def summary(self) -> str:
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items()))
        cost = (f"; costliest input {self.max_cpu_seconds:.2f} s CPU, "
                f"{self.max_megabytes:.1f} MB" if self.max_cpu_seconds else "")
        return (f"{self.test}: {self.examples} examples in {self.rounds} round(s), "
                f"{self.seconds:.1f} s; {outcomes}{cost}")


def pytest_collection_modifyitems(config, items):
    config.stash[_COLLECTED] = sum(1 for item in items
                                   if "fuzz_run" in getattr(item, "fixturenames", ()))


@pytest.fixture
def fuzz_run(request) -> FuzzRun:
    """This test's FuzzRun, sized by FUZZ_EXAMPLES and FUZZ_SECONDS (see the docstring)."""
    examples = int(_env_number("FUZZ_EXAMPLES", int) or DEFAULT_EXAMPLES)
    total = _env_number("FUZZ_SECONDS", float)
    share = total / max(request.config.stash.get(_COLLECTED, 1), 1) if total else None
    run = FuzzRun(request.node.nodeid, examples, share)
    yield run
    request.config.stash.setdefault(_RUNS, []).append(run)


def pytest_terminal_summary(terminalreporter, config):
    runs = config.stash.get(_RUNS, [])
    if runs:
        terminalreporter.section("fuzzing")
        for run in runs:
            terminalreporter.write_line(run.summary())
