"""Time to first image and a whole series in the viewer, against a real Orthanc.

    .venv/bin/python bench/bench_viewer.py [--referrals 15] [--no-write]

Starts its own Orthanc (integrations/orthanc_local.py) with the 28-slice head CT, an
app on a throw-away SQLite database with the demo network, Pilgrim's PACS pointed at
the Orthanc, and measures:
  1. server side: for each of N referrals (caches emptied first) the sweep pages the
     specialist, the prefetch runs, then the first slice the viewer asks for (middle
     slice, JPEG, brain) is requested through the app, signed in; p50. The same
     without prefetch (cold) for comparison;
  2. Chromium (/usr/bin/chromium, 375x812) on a live server: open the review page ->
     first slice painted, and -> all 28 slices of the series loaded, cold and warm.
Appends the figures under "## Viewer" in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extensions import db  # noqa: E402
from integrations.orthanc_local import start_orthanc  # noqa: E402
from tests.browser.conftest import CHROMIUM, LiveServer, launch_chromium  # noqa: E402
from tests.conftest import make_app  # noqa: E402
from tests.images.conftest import PATIENT_ID, SAMPLE_STUDY, point_pilgrim_at  # noqa: E402
from tests.paging.helpers import REFERRER, raise_stroke, run_sweep, stroke_payload, user  # noqa: E402
from tests.services.orthanc import HEAD_CT_DIR  # noqa: E402

COMMAND = ".venv/bin/python bench/bench_viewer.py"
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


def empty_caches(app) -> None:
    app.extensions.pop("goldenhour.image_caches", None)
    shutil.rmtree(Path(app.instance_path) / "image-cache", ignore_errors=True)


def new_referral():
    from workflow import studies

    patient = dict(stroke_payload()["patient"], local_number=PATIENT_ID)
    referral = raise_stroke(patient=patient)
    studies.link(referral.id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    return referral.id


def first_slice_url(referral_id: int) -> str:
    from models import LinkedStudy

    study = db.session.query(LinkedStudy).filter_by(referral_id=referral_id).one()
    instances = study.snapshot["series"][0]["instances"]
    sop = instances[len(instances) // 2]["sop_uid"]
    return (f"/api/v1/referrals/{referral_id}/studies/{SAMPLE_STUDY}/instances/{sop}"
            "/rendered?frame=1&preset=brain&format=jpeg")


def server_side(app, count: int) -> dict[str, list[float]]:
    from workflow import frames

    client = app.test_client()
    client.login(SPECIALIST, "goldenhour-demo")
    out: dict[str, list[float]] = {"after page (prefetched)": [], "cold (no prefetch)": []}
    for n in range(count):
        for label in out:
            empty_caches(app)
            referral_id = new_referral()
            url = first_slice_url(referral_id)
            if label.startswith("after"):
                run_sweep()
                frames.wait_for_prefetch(60)
            db.session.commit()
            started = time.perf_counter()
            answer = client.get(url)
            out[label].append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.get_json()
            if n == 0:
                print(f"  {label}: X-Image-Cache={answer.headers['X-Image-Cache']}")
    return out


def in_chromium(app, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from workflow import frames

    server = LiveServer(app)
    out: dict[str, list[float]] = {"first slice painted (cold)": [],
                                   "first slice painted (after page, prefetched)": [],
                                   "28-slice series loaded (cold)": [],
                                   "28-slice series loaded (warm)": []}
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            for _ in range(runs):
                for warm in (False, True):
                    empty_caches(app)
                    referral_id = new_referral()
                    if warm:
                        run_sweep()
                        frames.wait_for_prefetch(60)
                    db.session.commit()
                    context = browser.new_context(viewport={"width": 375, "height": 812},
                                                  has_touch=True, is_mobile=True)
                    page = context.new_page()
                    page.goto(f"{server.url}/login")
                    page.fill("input[name=email]", SPECIALIST)
                    page.fill("input[name=password]", "goldenhour-demo")
                    page.click("button[type=submit]")
                    page.wait_for_url(lambda url: "/login" not in url)
                    page.goto(f"{server.url}/referrals/{referral_id}/review")
                    page.wait_for_function("() => document.getElementById('viewer-canvas')"
                                           ".dataset.seriesLoadedMs", timeout=30_000)
                    data = page.eval_on_selector("#viewer-canvas", "c => ({...c.dataset})")
                    key = "after page, prefetched" if warm else "cold"
                    out[f"first slice painted ({key})"].append(
                        float(data["firstPaintSinceNavigationMs"]))
                    out[f"28-slice series loaded ({'warm' if warm else 'cold'})"].append(
                        float(data["seriesLoadedMs"]))
                    context.close()
            browser.close()
    finally:
        server.close()
    return out


def table(title: str, results: dict[str, list[float]], target: str) -> list[str]:
    lines = [f"| {title} | p50 ms | min | max | n | target |", "|---|---|---|---|---|---|"]
    for label, samples in results.items():
        lines.append(f"| {label} | {statistics.median(samples):.0f} | {min(samples):.0f} | "
                     f"{max(samples):.0f} | {len(samples)} | {target} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=15)
    parser.add_argument("--browser-runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    workdir = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    orthanc = start_orthanc(workdir / "orthanc", samples=HEAD_CT_DIR)
    try:
        orthanc.load_samples()
        app = make_app(f"sqlite:///{workdir / 'bench.sqlite3'}", workdir)
        with app.app_context():
            db.create_all()
            from workflow.seed import seed_demo

            seed_demo()
            point_pilgrim_at(orthanc.base_url)
            server = server_side(app, args.referrals)
            browser = in_chromium(app, args.browser_runs) if Path(CHROMIUM).exists() else {}
    finally:
        orthanc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    lines = table("server side: first slice request (Flask test client, signed in)", server,
                  "≤ 150")
    if browser:
        lines += [""] + table("Chromium 375×812, from navigation (live server on 127.0.0.1)",
                              browser, "first slice < 1000; series ≤ 1500 for 300")
        for label in ("cold", "warm"):
            ms = statistics.median(browser[f"28-slice series loaded ({label})"])
            lines.append(f"\n28 slices {label}: {ms:.0f} ms → extrapolated linearly to a "
                         f"300-slice series: ~{ms * 300 / 28:.0f} ms (extrapolated, not "
                         "measured)")
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        header = (f"\n## Viewer\n\n{time.strftime('%Y-%m-%d')}, {platform.machine()}, "
                  f"Python {platform.python_version()}, SQLite, Orthanc with DICOMweb on "
                  "127.0.0.1, 2 shared cores.\n\n    " + COMMAND + "\n\n")
        with open(ROOT / "docs" / "BENCHMARKS.md", "a") as out:
            out.write(header + report + "\n")


if __name__ == "__main__":
    main()
