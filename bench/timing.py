"""Timing for the side-by-side benches: each run times every contender once, in an order
that changes from run to run (ABAB..., then BABA...), so that a busy moment on the
shared machine lands on both sides instead of on one side's block of runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(contenders: dict[str, Callable[[int], object]], runs: int, *,
                warm_up: int = 1) -> dict[str, list[float]]:
    """Milliseconds of each contender over ``runs`` runs. Each run calls every
    contender once with the run number (warm-up runs are numbered from -warm_up and not
    counted); odd runs go through the contenders in reverse order."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(-warm_up, runs):
        for name in names if run % 2 == 0 else reversed(names):
            started = time.perf_counter()
            contenders[name](run)
            elapsed = (time.perf_counter() - started) * 1000
            if run >= 0:
                samples[name].append(elapsed)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]


def rows(samples: dict[str, list[float]], digits: int = 2) -> list[str]:
    """Markdown rows: | what | median ms | p90 ms | runs |"""
    return [f"| {label} | {p50(s):.{digits}f} | {p90(s):.{digits}f} | {len(s)} |"
            for label, s in samples.items()]


HEADER = ["| what | median ms | p90 ms | runs |", "|---|---|---|---|"]
