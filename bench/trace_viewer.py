"""Where the viewer page's main thread goes while a series loads: a Chromium trace.

    .venv/bin/python bench/trace_viewer.py [--cold] [--slices 300] [--workers 2]
                                          [--keep trace.json]

A probe, not a table for docs/BENCHMARKS.md (`make bench` does not run it): it starts
the production stack as bench_viewer does, opens the review page of one SLICES-slice
study (warm: linked and prefetched first; --cold: never seen by the server), records a
Chromium performance trace until the viewer's "series loaded" mark, and prints the
page's marks, how long its main thread (CrRendererMain) was busy, busy ms per 100 ms
after navigation, and the trace events that took it longest. Event durations nest (a
task contains the calls it made), so the rows overlap: read them as where, not as a sum.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_viewer import SERIES_LOADED, forget, warm_referral  # noqa: E402
from bench.imaging_stack import (  # noqa: E402
    REFERRER,
    SPECIALIST,
    new_referral,
    start_pacs,
    store_long_series,
)
from bench.production import Production  # noqa: E402
from tests.browser.conftest import launch_chromium  # noqa: E402

CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "v8"]
TASKS = ("ThreadControllerImpl::RunTask", "RunTask")  # a main-thread task, outermost


def trace(cold: bool, slices: int, workers: int, path: Path) -> dict:
    """Record the trace into ``path``; returns the viewer's marks (data-* on the canvas)."""
    from playwright.sync_api import sync_playwright

    with Production(workers=workers) as prod:
        orthanc = start_pacs(prod)
        try:
            specialist, referrer = prod.sign_in(SPECIALIST), prod.sign_in(REFERRER)
            study = store_long_series(orthanc, slices, "viewer trace copy")
            referral_id = (new_referral(prod, study) if cold
                           else warm_referral(prod, referrer, study, slices))
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                context = browser.new_context(viewport={"width": 375, "height": 812},
                                              has_touch=True, is_mobile=True)
                context.add_cookies([{"name": "goldenhour_session",
                                      "value": specialist.cookies["goldenhour_session"],
                                      "domain": "127.0.0.1", "path": "/"}])
                page = context.new_page()
                browser.start_tracing(page=page, path=str(path), categories=CATEGORIES)
                page.goto(prod.url(f"/referrals/{referral_id}/review"), wait_until="commit")
                page.wait_for_function(SERIES_LOADED, polling=100, timeout=180_000)
                marks = page.eval_on_selector("#viewer-canvas", "c => ({...c.dataset})")
                browser.stop_tracing()
                browser.close()
            forget(orthanc, study)
        finally:
            orthanc.stop()
    return marks


def main_thread(path: Path) -> list[dict]:
    """The complete ("X") events of the page's main thread, times in µs."""
    loaded = json.loads(path.read_text())
    events = loaded["traceEvents"] if isinstance(loaded, dict) else loaded
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    main = next(k for k, v in names.items() if v == "CrRendererMain")
    return [e for e in events
            if (e["pid"], e["tid"]) == main and e.get("ph") == "X" and e.get("dur")]


def report(events: list[dict], marks: dict) -> list[str]:
    start = min(e["ts"] for e in events)
    tasks = [e for e in events if e["name"] in TASKS]
    per_100ms: collections.Counter = collections.Counter()
    for task in tasks:
        per_100ms[int((task["ts"] - start) / 100_000)] += task["dur"] / 1000
    by_name: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for e in events:
        if e["name"] not in TASKS:
            by_name[e["name"]] += e["dur"]
            count[e["name"]] += 1
    lines = ["marks (ms since navigation): " + ", ".join(
                 f"{k} {marks.get(k)}" for k in ("firstPaintSinceNavigationMs",
                                                 "seriesFetchedMs", "seriesLoadedMs")),
             f"main thread busy: {sum(t['dur'] for t in tasks) / 1000:.0f} ms in "
             f"{len(tasks)} tasks",
             "busy ms per 100 ms from the trace's start: " + " ".join(
                 f"{k * 100}:{v:.0f}" for k, v in sorted(per_100ms.items())),
             "", "| trace event (nested: rows overlap) | ms | n |", "|---|---|---|"]
    lines += [f"| {name} | {us / 1000:.1f} | {count[name]} |"
              for name, us in by_name.most_common(15)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the trace (Chrome's JSON) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "trace.json"
        marks = trace(args.cold, args.slices, args.workers, path)
        print("\n".join(report(main_thread(path), marks)))


if __name__ == "__main__":
    main()
