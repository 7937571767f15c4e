"""What a request that does no work costs, through the production server, beside Orthanc.

    .venv/bin/python bench/bench_overhead.py [--runs 300] [--workers 2]

Starts PostgreSQL and gunicorn as `make serve` does (bench/production.py), an Orthanc
with the head CT, signs the stroke specialist in over HTTP (password and authenticator
code), links a referral to the study, renders one slice once, then times, interleaved
run by run:
  - /health, anonymous and signed in (the signed-in request loads the session and user);
  - one cached slice (JPEG, brain) through /api/v1/.../rendered, signed in: the access
    checks, the cache lookup and the access log's once-a-minute row;
  - Orthanc's /system (its cheapest answer) and Orthanc's DICOMweb /rendered of the
    same slice;
  - one PostgreSQL round trip (SELECT 1), what each query of a request costs at least;
each over one kept-alive connection (requests.Session) and over a new connection per
request. Also the same signed-in /health in-process (the Flask test client), for what
HTTP and gunicorn add. Then the warm figure the viewer actually gets: a run of
RUN_SLICES cached slices in one request (`.../series/<uid>/rendered?first=&count=`, as
static/js/viewer.js asks) on a RUN_SLICES-slice copy of the head CT, per slice, against
Orthanc's `/rendered` of one slice of the same copy (a different one each run),
interleaved. Prints the tables as the "overhead" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from bench.imaging_stack import (  # noqa: E402
    SAMPLE_STUDY,
    SPECIALIST,
    instances,
    new_referral,
    start_pacs,
    store_long_series,
)
from bench.production import Production  # noqa: E402
from bench.sections import section  # noqa: E402
from bench.timing import HEADER, interleaved, p50, rows  # noqa: E402

COMMAND = ".venv/bin/python bench/bench_overhead.py"
RUN_SLICES = 64  # frames.MAX_BATCH: the longest run the viewer asks for at once


def _fresh(session: requests.Session) -> requests.Session:
    """A new connection per request, with the same cookies."""
    fresh = requests.Session()
    fresh.cookies.update(session.cookies)
    fresh.headers["Connection"] = "close"
    return fresh


def measure(runs: int, workers: int) -> tuple[list[str], dict]:
    with Production(workers=workers) as prod:
        orthanc = start_pacs(prod)
        try:
            referral_id = new_referral(prod)
            middle = instances(prod, referral_id)[14]
            slice_path = (f"/api/v1/referrals/{referral_id}/studies/{SAMPLE_STUDY}/instances/"
                          f"{middle['sop_uid']}/rendered?frame=1&preset=brain&format=jpeg")
            theirs_path = (f"/dicom-web/studies/{SAMPLE_STUDY}/series/{middle['series_uid']}/"
                           f"instances/{middle['sop_uid']}/rendered?window=40,80,linear")
            specialist = prod.sign_in(SPECIALIST)
            first = specialist.get(prod.url(slice_path), timeout=60)
            first.raise_for_status()
            anonymous = requests.Session()
            pacs = requests.Session()
            pacs.auth = orthanc.auth
            caches: dict[str, int] = {}

            def ours_slice(session):
                def get(_run):
                    answer = session.get(prod.url(slice_path), timeout=30)
                    answer.raise_for_status()
                    caches[answer.headers["X-Image-Cache"]] = caches.get(
                        answer.headers["X-Image-Cache"], 0) + 1
                return get

            def get(session, url, **kw):
                return lambda _run: session.get(url, timeout=30, **kw).raise_for_status()

            orthanc_root = orthanc.base_url.removesuffix("/dicom-web")
            database = psycopg.connect(prod.dsn, autocommit=True)
            contenders = {
                "PostgreSQL: one round trip (SELECT 1)":
                    lambda _run: database.execute("SELECT 1").fetchone(),
                "ours: /health, anonymous": get(anonymous, prod.url("/health")),
                "ours: /health, signed in": get(specialist, prod.url("/health")),
                "Orthanc: /system": get(pacs, f"{orthanc.rest_url}/system"),
                "ours: one cached slice, JPEG, signed in": ours_slice(specialist),
                "Orthanc: DICOMweb /rendered, same slice (JPEG)":
                    get(pacs, orthanc_root + theirs_path, headers={"Accept": "image/jpeg"}),
            }
            kept = interleaved(contenders, runs)
            close_anon, close_specialist = _fresh(anonymous), _fresh(specialist)
            close_pacs = _fresh(pacs)
            close_pacs.auth = orthanc.auth
            fresh = interleaved({
                "ours: /health, anonymous": get(close_anon, prod.url("/health")),
                "ours: /health, signed in": get(close_specialist, prod.url("/health")),
                "Orthanc: /system": get(close_pacs, f"{orthanc.rest_url}/system"),
                "ours: one cached slice, JPEG, signed in": ours_slice(close_specialist),
            }, max(50, runs // 3))
            inside, trips = in_process(prod, specialist, slice_path, runs)
            database.close()
            run = warm_run(prod, orthanc, specialist, pacs, max(50, runs // 3))
        finally:
            orthanc.stop()
    return report(runs, workers, kept, fresh, inside, caches, trips, run), {
        "kept": kept, "fresh": fresh, "inside": inside, "round_trips": trips, "run": run}


def warm_run(prod: Production, orthanc, specialist: requests.Session, pacs: requests.Session,
             runs: int) -> dict[str, list[float]]:
    """Milliseconds per slice: a run of RUN_SLICES cached slices in one request (the
    request's time over RUN_SLICES), against Orthanc rendering one slice of the same
    series, a different slice each run. Raises when a timed run was not all cached."""
    study = store_long_series(orthanc, RUN_SLICES, "overhead bench run")
    referral_id = new_referral(prod, study)
    slices = instances(prod, referral_id, study)
    series_uid = slices[0]["series_uid"]
    run_url = prod.url(f"/api/v1/referrals/{referral_id}/studies/{study}/series/{series_uid}"
                       f"/rendered?first=1&count={RUN_SLICES}&preset=brain&format=jpeg")
    cold = specialist.get(run_url, timeout=120)  # fetched from the PACS and rendered
    cold.raise_for_status()
    orthanc_root = orthanc.base_url.removesuffix("/dicom-web")

    def ours(_run):
        answer = specialist.get(run_url, timeout=30)
        answer.raise_for_status()
        if answer.headers["X-Image-Cache-Misses"] != "0" or \
                len(answer.headers["X-Frame-Sizes"].split(",")) != RUN_SLICES:
            raise RuntimeError(f"the run of {RUN_SLICES} slices was not all cached: "
                               f"{answer.headers['X-Image-Cache-Misses']} missed")

    def theirs(run):
        one = slices[run % RUN_SLICES]
        pacs.get(f"{orthanc_root}/dicom-web/studies/{study}/series/{series_uid}/instances/"
                 f"{one['sop_uid']}/rendered?window=40,80,linear",
                 headers={"Accept": "image/jpeg"}, timeout=30).raise_for_status()

    per_request = interleaved({"ours": ours, "theirs": theirs}, runs)
    return {f"ours: a run of {RUN_SLICES} cached slices in one request, per slice (JPEG, "
            "signed in)": [ms / RUN_SLICES for ms in per_request["ours"]],
            "Orthanc: DICOMweb /rendered, one slice of the same series (JPEG)":
                per_request["theirs"],
            f"ours: the whole run of {RUN_SLICES} slices, per request": per_request["ours"]}


def in_process(prod: Production, specialist: requests.Session, slice_path: str, runs: int):
    """The same signed-in requests through the Flask test client (no HTTP, no gunicorn),
    each in its own app context as a real request has, on the same PostgreSQL."""
    with prod.app_context() as app:
        pass
    client = app.test_client()
    client.set_cookie("goldenhour_session", specialist.cookies["goldenhour_session"],
                      domain="127.0.0.1")

    def get(path):
        def call(_run):
            answer = client.get(path, base_url=prod.base)
            assert answer.status_code == 200, answer.status_code
        return call

    samples = interleaved({"in-process: /health, signed in": get("/health"),
                           "in-process: one slice, signed in": get(slice_path)}, runs)
    return samples, {"/health, signed in": round_trips(app, lambda: get("/health")(0)),
                     "one cached slice, signed in": round_trips(app, lambda: get(slice_path)(0))}


def round_trips(app, request) -> int:
    """The database round trips of one request: its statements, BEGIN, COMMIT or
    ROLLBACK, and the pool's pre-ping of the connection it checks out."""
    from sqlalchemy import event

    from extensions import db

    with app.app_context():
        engine = db.engine
    count = [0]

    def one(*_args, **_kw):
        count[0] += 1

    hooks = [(engine, "before_cursor_execute"), (engine, "begin"), (engine, "commit"),
             (engine, "rollback")]
    if engine.pool._pre_ping:
        hooks.append((engine.pool, "checkout"))
    for target, name in hooks:
        event.listen(target, name, one)
    try:
        request()
    finally:
        for target, name in hooks:
            event.remove(target, name, one)
    return count[0]


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True)
    # The benches rewrite docs/BENCHMARKS.md themselves: only code makes a tree dirty.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            ".", ":!docs/BENCHMARKS.md"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" with uncommitted changes" if dirty else "")


def report(runs, workers, kept, fresh, inside, caches, trips, run) -> list[str]:
    health = p50(kept["ours: /health, signed in"])
    frame = p50(kept["ours: one cached slice, JPEG, signed in"])
    ours_run, theirs_run = (p50(samples) for samples in list(run.values())[:2])
    theirs = p50(kept["Orthanc: DICOMweb /rendered, same slice (JPEG)"])
    return [
        "### Per-request overhead: a request that does no work",
        "",
        f"Reproduce: `{COMMAND} --runs {runs} --workers {workers}` (about a minute). "
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} UTC at commit {commit()}, "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}. "
        f"gunicorn as `make serve` starts it ({workers} gthread workers, 16 threads), "
        "PostgreSQL, Orthanc, all on 127.0.0.1; the specialist signed in over HTTP with a "
        "password and an authenticator code. Each run times every row once, the order "
        "reversed every other run.",
        "",
        "One kept-alive connection per client (requests.Session):",
        "",
        *HEADER, *rows(kept),
        "",
        "A new TCP connection per request:",
        "",
        *HEADER, *rows(fresh),
        "",
        "In-process (Flask test client, same database, no HTTP):",
        "",
        *HEADER, *rows(inside),
        "",
        "Database round trips per request (counted in-process, after the first request of "
        "the minute, which also writes the access log): "
        + "; ".join(f"{what} {n}" for what, n in trips.items()) + ".",
        "",
        f"Slices answered from: {', '.join(f'{k} {v}' for k, v in sorted(caches.items()))}. "
        f"Target < 3 ms median over HTTP: /health signed in {health:.2f} ms "
        f"({'met' if health < 3 else 'missed'}), cached slice {frame:.2f} ms "
        f"({'met' if frame < 3 else 'missed'}).",
        "",
        f"The warm figure the viewer gets: runs of up to {RUN_SLICES} slices in one request "
        f"(static/js/viewer.js), on a {RUN_SLICES}-slice copy of the head CT, cached, "
        "interleaved with Orthanc rendering one slice of the same series (a different one "
        "each run):",
        "",
        *HEADER, *rows(run),
        "",
        f"Target warm slice >= 5x faster than Orthanc: one slice alone is "
        f"{theirs / frame:.1f}x ({frame:.2f} ms against {theirs:.2f} ms, "
        f"{'met' if theirs / frame >= 5 else 'missed'}); in a run of {RUN_SLICES}, "
        f"{theirs_run / ours_run:.0f}x ({ours_run:.2f} ms a slice against {theirs_run:.2f} "
        f"ms, {'met' if theirs_run / ours_run >= 5 else 'missed'}).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    lines, _ = measure(args.runs, args.workers)
    print(section("overhead", "\n".join(lines)))


if __name__ == "__main__":
    main()
