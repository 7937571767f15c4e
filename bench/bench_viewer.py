"""Time to first image and a whole series in the viewer, through the production server.

    .venv/bin/python bench/bench_viewer.py [--referrals 8] [--browser-runs 3]
                                           [--slices 300] [--workers 2] [--no-write]

Starts PostgreSQL and gunicorn as `make serve` does (bench/production.py) and an
Orthanc. Every measured referral gets a study of its own, stored in the Orthanc just
before (copies of the head CT under new UIDs: there is no 300-slice sample), so nothing
is cached on either side when a cold run starts. The stroke specialist and the Pilgrim
referrer sign in over HTTP (password and authenticator code). Measures:
  1. server side, for each of N referrals, the first slice the viewer asks for (middle
     slice, JPEG, brain) through the API, signed in: cold (linked in the bench's own
     app, so the server has not seen it) against Orthanc's DICOMweb /rendered of the
     same slice, interleaved; and after the referrer linked the study on the
     referral's page (the server prefetches; the bench waits until every slice is in
     the server's disk cache);
  2. Chromium (/usr/bin/chromium, 375x812) with the specialist's session cookie: open
     the review page -> first slice on screen (the page's own <img> of it, or the
     canvas, whichever painted first), and -> every slice of a SLICES-slice series
     loaded, cold and warm; then scrolling: an arrow key -> the next slice drawn, over
     half the series. The bench waits for the viewer's own marks (data-* on the
     canvas), never for a fixed time.
Replaces the "## Viewer" section of docs/BENCHMARKS.md with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.bench_overhead import commit  # noqa: E402
from bench.bench_render import write_section  # noqa: E402
from bench.imaging_stack import (  # noqa: E402
    REFERRER,
    SPECIALIST,
    instances,
    link_over_http,
    new_referral,
    start_pacs,
    store_long_series,
)
from bench.production import Production  # noqa: E402
from bench.timing import interleaved  # noqa: E402
from tests.browser.conftest import CHROMIUM, launch_chromium  # noqa: E402
from tests.services import wait_until  # noqa: E402

COMMAND = ".venv/bin/python bench/bench_viewer.py"
# The page is parsed after navigation commits: the canvas may not exist yet, so ask
# for it with ?. (a bare .dataset on null threw "Cannot read properties of null").
SERIES_LOADED = "() => document.getElementById('viewer-canvas')?.dataset.seriesLoadedMs"
# Where the time went, from the browser's own Navigation and Resource Timing (ms since
# navigation started): the page, its stylesheets and script, the first slice, the runs.
STEPS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const all = performance.getEntriesByType('resource');
  const end = (test) => Math.max(...all.filter(e => test(e.name)).map(e => e.responseEnd));
  const first = all.find(e => e.name.includes('/instances/') && e.name.includes('format=jpeg'));
  const runs = all.filter(e => e.name.includes('/series/'));
  return {html: nav.responseEnd, styles: end(n => n.endsWith('.css')),
          script: end(n => n.endsWith('viewer.js')), dcl: nav.domContentLoadedEventStart,
          asked: first.startTime, arrived: first.responseEnd,
          runs: Math.min(...runs.map(e => e.startTime))};
}"""
# Once the series is loaded: an arrow key, then that next slice drawn, one slice a frame
# (ms each step; the viewer draws on a key at once when the slice's image is ready).
SCROLL = """async (steps) => {
  const c = document.getElementById('viewer-canvas');
  const frame = () => new Promise(r => requestAnimationFrame(r));
  const out = [];
  for (let k = 0; k < steps; k++) {
    const want = String(Number(c.dataset.slice) + 1);
    const t = performance.now();
    document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}));
    while (c.dataset.paintedSlice !== want) await frame();
    out.push(performance.now() - t);
    await frame();
  }
  return out;
}"""
STEP_LABELS = {"html": "page in (HTML response end)", "styles": "stylesheets in",
               "script": "viewer.js in", "dcl": "script run (DOMContentLoaded)",
               "asked": "first slice asked for", "arrived": "first slice in",
               "runs": "first series run asked for"}
READING = """\
How the viewer fetches a series: the review page holds the slice it opens on (an `<img>`
of the first series' middle slice, `…/instances/<sop>/rendered`), so the browser asks for
it while it parses the page, before any script runs; the viewer's canvas adopts it and
takes its place. Once it has arrived, the rest of the series comes in runs of 64 slices
per request (`…/series/<series>/rendered?first=&count=`), 4 requests at a time, nearest
runs first. A run's slices are held as their JPEG bytes, and only the slices within 12
of the one on screen are made into images, as it moves. "Series loaded" is when every
slice is in the viewer that way (an image, or its bytes held: drawn without the
network); "scroll a slice" is, once loaded, from an arrow key to that next slice drawn
on the canvas, one slice a frame from the middle of the series towards its end (the
images made on the way included). "First slice painted" is the earlier of the
browser's Element Timing of that `<img>` (when it was painted) and the canvas's first
drawing of the slice.
"Warm" is after the referrer linked the study on the referral's page and the server's prefetch
had put every slice in its disk cache; "cold" is a study the server has never seen, each
slice fetched from the PACS by WADO-RS and rendered during the measurement.

What changed the first paint (583 ms cold, 372 ms warm at 850a10a, load 3.1; the table
above after): the first slice's URL is in the page, so it is asked for while the page
is parsed, beside the stylesheets and the script, instead of after the script has run.
What is left is the page itself, the stylesheets and script (each a request to the
server), running the script, and the slice's own request; on this machine each swings
2-3x with the load. Tried and not kept: starting the series runs as soon as the script
runs (before the first slice is in) made the first slice slower, since the runs take
the server's CPU from it. Cold, the first slice takes ~230 ms from asked for to in
(the step table), where the same request alone takes ~25 ms (the server-side table),
~50 ms when warm. Not the Orthanc still busy with the 300 files stored just before each
cold run: waiting 3 s before opening the page changed nothing (a one-off probe, 3 runs
each way, load ~3). Where it goes (a one-off probe on 2026-12-03, gunicorn's access log
with each request's duration, `%(M)s`, beside the browser's Resource Timing; 300-slice
series, 2 workers, load 1.2-6.5, 6 cold opens): the time is spent inside our handling
of that request, 76-309 ms from gunicorn receiving it to the response (170, 281,
309, 278, 76, 231), while the stylesheets and scripts asked for at the same moment
took 0-14 ms each in gunicorn (once 77 ms; logged in 3 of the opens), so it is not
queueing behind them for a thread. No series job, lock or
pool is involved yet (the runs are asked for only after it). The same cold slice asked
for right after the review page with no browser open took 22 ms in gunicorn (one
sample, load ~6.5). What differs is Chromium parsing and laying out the page and
running its script on the same two cores while the request decodes and renders, so
the likeliest cause is CPU, not a wait; not proven. A split of the 76-309 ms by step
(temporary timers in the request, not kept) was taken only at load 7-9 (other copies of
the probe ran by mistake) and spread over every step (the access check, the PACS fetch,
the render, the access-log write), as CPU starvation would; not repeated quiet.

Tried on 2026-12-03 and not kept (bench_viewer as above, 3 browser runs each, one after
another from 14:40 UTC while other browser tests ran on the machine, load 1.3-8.6, so
the ratios are rough): starting the series' one fetch-and-render job as the review page
goes out (after its response, in the background) so that slices are on their way while
the page, script and first slice load: first slice painted cold 1331 ms and 300 slices
cold 3901 ms, against 210 and 2816 ms for the code without it in the run just before;
the same with the render pool's processes at niceness +5 (so that the first slice
rendered in the web worker gets the CPU first): 648 and 4182 ms. A second pair in the
other order (14:48-14:51 UTC), the job first at load 5.1-6.3, then the code without it
at load 6.3-10.0: first slice 744 against 300 ms, 300 slices 2443 against 3781 ms. So
the first slice was slower with the job in both pairs (2.5-6x), while the series was
slower in one pair and faster in the other, each time the run at the lower load doing
better: no gain shown for the series, a loss for the first slice. Both were reverted.
The job takes the cores from the first slice, as the runs did when asked for before
it. Whether it would pay with the browser on another machine (as a phone is in
production) was not measured: this bench runs Chromium on the server's two cores.
Starting the job when the cold first slice is answered instead was not tried: the
runs are asked for 2-100 ms after the first slice arrives (Resource Timing; 2 ms at
the step table's p50), so it could gain no more than that.

Why a cold series takes longer in Chromium than bench_series measures server side: the
runs are asked for only once the first slice is on screen (about the first paint), and
from then the server's one series job (PACS fetch, render on every core) runs while
Chromium shares the same two cores. Until 2026-12-03 evening the viewer also made every
slice of every run into an image as it arrived: a Chromium trace of one warm 300-slice
load (load average ~4; `.venv/bin/python bench/trace_viewer.py` at 040811c, which was
then a one-off probe that polled every frame) had the page's main thread busy
915 ms, ~600 ms of it loading
300 images from their blobs (resource fetches, body loaders, load events), saturated
from the first run's arrival to the end; the last run's bytes were in at 670 ms but
read at 1,097 ms, and the series counted loaded at 1,305 ms. Holding the bytes and
making images only near the slice on screen took that load to 535 ms (one run each,
same load). Other run sizes and counts were not measured: each run waits for its own
slices of the one job, the last run for the last slice, so they should not shorten it.
Decoding with createImageBitmap was not tried: it would hold 300 decoded slices (~1 MB
each) on a phone.

Earlier figures in this section (before issue 18 part A) were measured with the Flask
test client and the werkzeug development server on SQLite, without a real sign-in; they
are not comparable with these, which go through gunicorn on PostgreSQL with the
specialist signed in over HTTP.""".splitlines()


def disk_cached(prod: Production) -> int:
    """Frames in the server's disk cache (shared by its workers)."""
    return sum(1 for p in (prod.workdir / "instance" / "image-cache").glob("*/*")
               if not p.name.startswith(".part-"))


def warm_referral(prod: Production, referrer: requests.Session, study: str, slices: int) -> int:
    """A referral whose study the referrer linked through the API; returns once the
    server's prefetch has every slice on disk (RuntimeError after 5 minutes)."""
    before = disk_cached(prod)
    referral_id = new_referral(prod, None)
    link_over_http(prod, referrer, referral_id, study)
    wait_until(lambda: disk_cached(prod) >= before + slices, 300, "the server's prefetch")
    return referral_id


def first_slice(referral_id: int, study: str, slices: list[dict]) -> tuple[str, dict]:
    middle = slices[len(slices) // 2]
    return (f"/api/v1/referrals/{referral_id}/studies/{study}/instances/{middle['sop_uid']}"
            "/rendered?frame=1&preset=brain&format=jpeg"), middle


def server_side(prod, orthanc, specialist, referrer, count: int) -> dict[str, list[float]]:
    pacs = requests.Session()
    pacs.auth = orthanc.auth
    cold_cases = []
    for _ in range(count + 1):  # one warm-up
        study = store_long_series(orthanc, 28, "viewer bench copy")
        referral_id = new_referral(prod, study)
        cold_cases.append((study, *first_slice(referral_id, study,
                                               instances(prod, referral_id, study))))

    def ours(run):
        study, path, _middle = cold_cases[run + 1]
        answer = specialist.get(prod.url(path), timeout=60)
        answer.raise_for_status()
        assert answer.headers["X-Image-Cache"] == "miss", answer.headers["X-Image-Cache"]

    def theirs(run):
        study, _path, middle = cold_cases[run + 1]
        pacs.get(f"{orthanc.rest_url}/dicom-web/studies/{study}/series/{middle['series_uid']}"
                 f"/instances/{middle['sop_uid']}/rendered?window=40,80,linear",
                 headers={"Accept": "image/jpeg"}, timeout=60).raise_for_status()

    out = interleaved({"first slice, cold (never seen by the server)": ours,
                       "Orthanc DICOMweb /rendered, same slice": theirs}, count)
    warm = []
    for _ in range(count):
        study = store_long_series(orthanc, 28, "viewer bench copy")
        referral_id = warm_referral(prod, referrer, study, 28)
        path, _middle = first_slice(referral_id, study, instances(prod, referral_id, study))
        started = time.perf_counter()
        answer = specialist.get(prod.url(path), timeout=60)
        warm.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    out["first slice, after the link (prefetched)"] = warm
    return out


def in_chromium(prod, orthanc, specialist, referrer, runs: int, slices: int):
    from playwright.sync_api import sync_playwright

    cookie = {"name": "goldenhour_session", "value": specialist.cookies["goldenhour_session"],
              "domain": "127.0.0.1", "path": "/"}
    out: dict[str, list[float]] = {"first slice painted (cold)": [],
                                   "first slice painted (warm)": [],
                                   f"{slices}-slice series loaded (cold)": [],
                                   f"{slices}-slice series loaded (warm)": [],
                                   f"{slices}-slice series bytes in (cold)": [],
                                   f"{slices}-slice series bytes in (warm)": [],
                                   "scroll a slice, key to drawn (cold)": [],
                                   "scroll a slice, key to drawn (warm)": []}
    steps: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for _ in range(runs):
                for key in ("cold", "warm"):
                    study = store_long_series(orthanc, slices, "viewer bench copy")
                    referral_id = (new_referral(prod, study) if key == "cold"
                                   else warm_referral(prod, referrer, study, slices))
                    context = browser.new_context(viewport={"width": 375, "height": 812},
                                                  has_touch=True, is_mobile=True)
                    context.add_cookies([cookie])
                    page = context.new_page()
                    page.goto(prod.url(f"/referrals/{referral_id}/review"),
                              wait_until="commit")
                    # Polled every 100 ms, not every frame (Playwright's default): the
                    # marks carry their own times, and a poll per frame took ~170 ms of
                    # the page's main thread in a cold load (a Chromium trace).
                    page.wait_for_function(SERIES_LOADED, polling=100, timeout=180_000)
                    data = page.eval_on_selector("#viewer-canvas", "c => ({...c.dataset})")
                    for step, ms in page.evaluate(STEPS).items():
                        steps.setdefault(f"{STEP_LABELS[step]} ({key})", []).append(ms)
                    out[f"first slice painted ({key})"].append(first_on_screen(data))
                    out[f"{slices}-slice series loaded ({key})"].append(
                        float(data["seriesLoadedMs"]))
                    out[f"{slices}-slice series bytes in ({key})"].append(
                        float(data.get("seriesFetchedMs") or "nan"))
                    out[f"scroll a slice, key to drawn ({key})"] += page.evaluate(
                        SCROLL, slices // 2 - 1)
                    context.close()
                    forget(orthanc, study)
        finally:
            browser.close()
    return out, steps


def first_on_screen(marks: dict) -> float:
    """ms from navigation until the first slice was on screen: the page's own <img> of
    it as the browser's Element Timing saw it painted, or the canvas's first drawing,
    whichever came first (the canvas takes the img's place when it draws)."""
    times = [float(marks[k]) for k in ("firstSliceShownMs", "firstPaintSinceNavigationMs")
             if marks.get(k)]
    return min(times)


def forget(orthanc, study_uid: str) -> None:
    """Delete a measured study from the Orthanc, so that the disk stays small."""
    found = requests.post(f"{orthanc.rest_url}/tools/lookup", data=study_uid, auth=orthanc.auth,
                          timeout=30).json()
    for hit in found:
        requests.delete(f"{orthanc.rest_url}/studies/{hit['ID']}", auth=orthanc.auth,
                        timeout=60).raise_for_status()


def table(title: str, results: dict[str, list[float]], target: str) -> list[str]:
    extra, rule = (" target |", "---|") if target else ("", "")
    lines = [f"| {title} | p50 ms | min | max | n |{extra}", f"|---|---|---|---|---|{rule}"]
    for label, samples in results.items():
        lines.append(f"| {label} | {statistics.median(samples):.0f} | {min(samples):.0f} | "
                     f"{max(samples):.0f} | {len(samples)} |" + (f" {target} |" if target else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=8)
    parser.add_argument("--browser-runs", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with Production(workers=args.workers) as prod:
        orthanc = start_pacs(prod)
        try:
            specialist, referrer = prod.sign_in(SPECIALIST), prod.sign_in(REFERRER)
            server = server_side(prod, orthanc, specialist, referrer, args.referrals)
            browser, steps = (in_chromium(prod, orthanc, specialist, referrer,
                                          args.browser_runs, args.slices)
                              if os.access(CHROMIUM, os.X_OK) else ({}, {}))
        finally:
            orthanc.stop()
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M')} UTC at commit {commit()}, "
             f"{platform.machine()}, Python {platform.python_version()}, 2 cores shared with "
             f"other work (load average {os.getloadavg()[0]:.1f} at the end). gunicorn as "
             f"`make serve` starts it ({args.workers} workers), PostgreSQL, Orthanc with "
             "DICOMweb, all on 127.0.0.1; signed in over HTTP.", "",
             f"    {COMMAND} --referrals {args.referrals} --browser-runs "
             f"{args.browser_runs} --slices {args.slices} --workers {args.workers}", ""]
    lines += table("server side: the viewer's first slice over HTTP, signed in", server,
                   "≤ 150; cold no slower than Orthanc")
    if browser:
        lines += [""] + table("Chromium 375×812, from navigation (gunicorn on 127.0.0.1)",
                              browser, f"first slice < 300; {args.slices}-slice cold < 2000")
        for label in ("cold", "warm"):
            ms = statistics.median(browser[f"{args.slices}-slice series loaded ({label})"])
            lines.append(f"\n{args.slices} slices {label}, measured: {ms:.0f} ms against "
                         f"< 2000 ms ({'met' if ms < 2000 else 'missed'}).")
        first = statistics.median(browser["first slice painted (cold)"])
        lines.append(f"\nFirst slice painted cold: {first:.0f} ms against < 300 ms "
                     f"({'met' if first < 300 else 'missed'}).")
        lines += ["", "Where the time went (the browser's Navigation and Resource Timing, ms "
                  "since navigation started):", ""]
        lines += table("Chromium, step by step", dict(sorted(
            steps.items(), key=lambda kv: ("(warm)" in kv[0], statistics.median(kv[1])))),
            "")
    print("\n".join(lines))
    if not args.no_write:
        write_section(["## Viewer", "", *lines, "", *READING, ""], title="Viewer")
        print("written to docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
