"""Cold images through the production server: a whole 300-slice series, and one slice,
ours against Orthanc rendering the same, interleaved in one run; and the same series
once cached (warm).

    .venv/bin/python bench/bench_series.py [--runs 5] [--slices 300] [--singles 20]
                                           [--workers 2] [--no-write]

Starts PostgreSQL and gunicorn as `make serve` does (bench/production.py: each worker
starts its render pool at boot) and an Orthanc, stores 2×RUNS+3 copies of a
SLICES-slice CT head series (the 28 sample slices cycled under new UIDs, each copy its
own study) and links one copy per run to its own referral in the bench's own app, with
the link's prefetch switched off: the server has never seen a measured series. The
referrer signs in over HTTP (password, and an authenticator code if asked): every
request checks the session and the referral.

Per run, the two sides take turns going first:
  ours:    what the viewer does: the review page, the middle slice alone, then the
           series in runs of 64 slices nearest-first, 4 requests at a time, until every
           slice's bytes are in; cold, then at once again, warm (every slice cached);
  Orthanc: DICOMweb `/rendered` (JPEG, window=40,80,linear) of every slice of another
           copy, one after another (and the same 4 at a time, for reference).
Then SINGLES cold slices: ours (`/instances/<sop>/rendered`, JPEG and PNG, a slice of a
series nobody fetched) against Orthanc `/rendered` of a slice of another copy.
Run 0 is a warm-up on its own copy (the first series after gunicorn started) and is
reported apart.
Writes the section "cold-series" of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.imaging_stack import REFERRER, start_pacs  # noqa: E402
from bench.production import Production  # noqa: E402
from bench.sections import replace_sections, section  # noqa: E402

COMMAND = ".venv/bin/python bench/bench_series.py"
BATCH, AT_ONCE = 64, 4  # as static/js/viewer.js
ORTHANC_JPEG_WINDOW = "window=40,80,linear"  # the brain preset; commas unencoded
READING = """\
How a cold series is served (workflow/imaging/series_fetch.py): the first run of slices
that finds its slices missing takes the series' file lock and starts one job that fetches
the whole series in one series-level WADO-RS request (`DicomWebClient.iter_series`,
read in 1 MB chunks and cut as it streams) and hands each file, as it arrives, to a
process pool (`IMAGE_RENDER_PROCESSES`, default the cores) that parses, windows and
encodes it; every image goes to the memory and disk caches. Each run request, in
whichever gunicorn worker, waits only for its own slices. Why one series request:
measured at this Orthanc for 300 slices (158 MB), it took 0.2-0.6 s, against 1.9 s for
300 instance requests 4 at a time, 2.1 s for 300 frame requests and 4.2 s one by one
(a one-off comparison while choosing, not repeated by this command).
A single slice asked for alone is still one instance request rendered in the worker.
Orthanc's side has no cache of rendered images: it reads, decodes and encodes every
slice it is asked for, as ours does when cold.

Where targets are missed, and why (as far as measured): one cold slice is an instance
request to the PACS (~5-7 ms at this Orthanc), a render in the web worker (~3-5 ms
quiet, JPEG) and the per-request cost of our server (the session, the referral's access
check, the access log: 11-14 ms on a quiet machine per issue 18, 8.4 ms for a cached
slice after the work under "Per-request overhead" above), against one request to
Orthanc; no pool or series fetch helps a single slice. The series figures swing with the
shared machine's load (2 cores, others' tests and browsers running): at 841cf14, load
6.6, ours took 2084 ms against Orthanc's 2440 ms; the first line above gives this run's.
Earlier states of this code, same bench: 5.2 s against Orthanc's 4.2 s while the waiting
runs polled every 10 ms; 3.3 s against 3.1 s once they did not (both at load ~9), before
a run with one slice missing waited for the series instead of fetching it alone. Each
gunicorn worker starts its fork server and pool processes when it boots
(scripts/gunicorn_conf.py); before that, the first series a worker rendered paid for
them (3.5 s at 841cf14, load 6.6; ~5-6 s before the review page started them in the
background).
"Warm" asks for the same series, the same way, right after its cold run: every slice
then comes from the server's memory or disk cache, through the same sign-in, access
checks and HTTP as a cold one.""".splitlines()


def store_series(orthanc, slices: int, label: str) -> tuple[str, str, list[str]]:
    """A ``slices``-slice copy of the head CT as a study of its own, stored 4 files at a
    time; (study, series, SOP UIDs in slice order)."""
    from bench.imaging_stack import long_series

    study, series, files = long_series(slices, f"bench copy {label}")
    session = requests.Session()

    def upload(data: bytes) -> None:
        session.post(f"{orthanc.rest_url}/instances", data=data, auth=orthanc.auth,
                     timeout=60).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, [data for _, data in files]))
    return study, series, [sop for sop, _ in files]


def link_referrals(prod: Production, orthanc, studies: list[str]) -> list[int]:
    """One referral per study, each linked, in the bench's own app with the link's
    prefetch switched off (it would warm what is to be measured cold). Their ids."""
    from tests.images.conftest import PATIENT_ID, SAMPLE_FAMILY_NAME
    from tests.paging.helpers import raise_stroke, stroke_payload, user
    from workflow import events
    from workflow.imaging import frames
    from workflow.imaging import studies as imaging_studies

    ids = []
    with prod.app_context():
        events.replace([s for s in events.subscriptions()
                        if s.reaction is not frames.schedule_prefetch])
        patient = dict(stroke_payload()["patient"], local_number=PATIENT_ID,
                       family_name=SAMPLE_FAMILY_NAME)
        for study in studies:
            referral = raise_stroke(patient=patient, separate_referral=True)
            imaging_studies.link(referral.id, user(REFERRER), "PIL", [study])
            ids.append(referral.id)
    return ids


def viewer_runs(n: int, index: int) -> list[tuple[int, int]]:
    """(first, count) of each run, in the order static/js/viewer.js asks for them."""
    start = max(0, min(n - BATCH, index - BATCH // 2))
    up = down = start
    out = []
    while up < n or down > 0:
        if up < n:
            out.append((up + 1, min(n, up + BATCH) - up))
            up += BATCH
        if down > 0:
            low = max(0, down - BATCH)
            out.append((low + 1, down - low))
            down = low
    # Nearest first: by how far each run's nearest slice is from the one on screen.
    return sorted(out, key=lambda r: max(0, r[0] - 1 - index, index - (r[0] - 1 + r[1]) + 1))


def ours_series(session, base, referral_id, study, series, sops) -> tuple[float, int]:
    """ms from asking for the review page until every slice's bytes are in, asked for as
    the viewer does; and the slices received."""
    root = f"{base}/api/v1/referrals/{referral_id}/studies/{study}"
    middle = len(sops) // 2
    started = time.perf_counter()
    page = session.get(f"{base}/referrals/{referral_id}/review", timeout=60)
    assert page.status_code == 200, page.text[:300]
    first = session.get(f"{root}/instances/{sops[middle]}/rendered?frame=1&preset=brain"
                        "&format=jpeg", timeout=60)
    assert first.status_code == 200, first.text[:300]

    def run(first_count):
        first_slice, count = first_count
        answer = session.get(f"{root}/series/{series}/rendered?first={first_slice}"
                             f"&count={count}&preset=brain&format=jpeg", timeout=120)
        assert answer.status_code == 200, answer.text[:300]
        return sum(1 for size in answer.headers["X-Frame-Sizes"].split(",") if int(size))

    with ThreadPoolExecutor(AT_ONCE) as pool:
        got = sum(pool.map(run, viewer_runs(len(sops), middle)))
    return (time.perf_counter() - started) * 1000, got


def orthanc_rendered(orthanc, session, study, series, sop) -> bytes:
    answer = session.get(f"{orthanc.base_url}/studies/{study}/series/{series}/instances/{sop}"
                         f"/rendered?{ORTHANC_JPEG_WINDOW}", auth=orthanc.auth,
                         headers={"Accept": "image/jpeg"}, timeout=60)
    answer.raise_for_status()
    return answer.content


def orthanc_series(orthanc, study, series, sops, at_once: int = 1) -> float:
    session = requests.Session()
    started = time.perf_counter()
    if at_once == 1:
        for sop in sops:
            orthanc_rendered(orthanc, session, study, series, sop)
    else:
        with ThreadPoolExecutor(at_once) as pool:
            list(pool.map(lambda s: orthanc_rendered(orthanc, session, study, series, s), sops))
    return (time.perf_counter() - started) * 1000


def measure(args) -> dict:
    with Production(workers=args.workers) as prod:
        orthanc = start_pacs(prod)
        try:
            return _measure(args, prod, orthanc)
        finally:
            orthanc.stop()


def _measure(args, prod: Production, orthanc) -> dict:
    print(f"storing {2 * args.runs + 3} copies of a {args.slices}-slice series", flush=True)
    copies = [store_series(orthanc, args.slices, str(n)) for n in range(2 * args.runs + 3)]
    ours, theirs = copies[:args.runs + 1], copies[args.runs + 1:2 * args.runs + 1]
    single_ours, single_theirs = copies[-2], copies[-1]
    referral_ids = link_referrals(prod, orthanc, [c[0] for c in ours] + [single_ours[0]])
    session = prod.sign_in(REFERRER)
    base = prod.base
    results: dict[str, list[float]] = {"ours": [], "warm": [], "orthanc": [], "orthanc4": []}
    warm_up, got = ours_series(session, base, referral_ids[0], *ours[0])
    assert got == args.slices, f"{got} of {args.slices} slices came"
    print(f"warm-up series (the first after gunicorn started): {warm_up:.0f} ms", flush=True)
    for n in range(args.runs):
        sides = ["ours", "orthanc"] if n % 2 == 0 else ["orthanc", "ours"]
        for side in sides:
            if side == "ours":
                for key in ("ours", "warm"):  # cold, then the same series again, cached
                    ms, got = ours_series(session, base, referral_ids[n + 1], *ours[n + 1])
                    assert got == args.slices, f"{got} of {args.slices} slices came"
                    results[key].append(ms)
            else:
                results[side].append(orthanc_series(orthanc, *theirs[n]))
        print(f"run {n + 1}: ours cold {results['ours'][-1]:.0f} ms, warm "
              f"{results['warm'][-1]:.0f} ms, Orthanc one by one "
              f"{results['orthanc'][-1]:.0f} ms", flush=True)
    for n in range(min(args.runs, 3)):  # the same, 4 at a time, for reference
        results["orthanc4"].append(orthanc_series(orthanc, *theirs[n], at_once=AT_ONCE))
    singles = single_slices(session, base, orthanc, referral_ids[-1], single_ours,
                            single_theirs, args.singles)
    return {"series": results, "warm_up": warm_up, "singles": singles,
            "tracebacks": prod.log().count("Traceback")}


def single_slices(session, base, orthanc, referral_id, ours, theirs, count) -> dict:
    """One cold slice at a time, ours and Orthanc's in turn: JPEG, then PNG."""
    study, series, sops = ours
    t_study, t_series, t_sops = theirs
    root = f"{base}/api/v1/referrals/{referral_id}/studies/{study}/instances"
    plain = requests.Session()
    out = {"ours jpeg": [], "orthanc jpeg": [], "ours png": [], "orthanc png": []}
    step = max(1, len(sops) // (2 * count + 1))
    for n in range(count):
        for fmt in ("jpeg", "png"):
            index = (2 * n + (fmt == "png")) * step
            started = time.perf_counter()
            answer = session.get(f"{root}/{sops[index]}/rendered?frame=1&preset=brain"
                                 f"&format={fmt}", timeout=60)
            out[f"ours {fmt}"].append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200 and answer.headers["X-Image-Cache"] == "miss"
            started = time.perf_counter()
            plain.get(f"{orthanc.base_url}/studies/{t_study}/series/{t_series}/instances/"
                      f"{t_sops[index]}/rendered?{ORTHANC_JPEG_WINDOW}", auth=orthanc.auth,
                      headers={"Accept": f"image/{fmt}"}, timeout=60).raise_for_status()
            out[f"orthanc {fmt}"].append((time.perf_counter() - started) * 1000)
    return out


def p50(values: list[float]) -> float:
    return statistics.median(values)


def report(args, found: dict) -> str:
    series, singles = found["series"], found["singles"]
    ours, theirs, warm = p50(series["ours"]), p50(series["orthanc"]), p50(series["warm"])
    load = os.getloadavg()
    lines = [
        "## Images: cold series", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}; PostgreSQL, gunicorn ({args.workers} "
        "gthread workers, 16 threads, as `make serve`), Orthanc with DICOMweb, all on "
        f"127.0.0.1; load average at the end {load[0]:.1f}. Reproduce: "
        f"`{COMMAND} --runs {args.runs} --slices {args.slices} --singles {args.singles} "
        f"--workers {args.workers}`", "",
        f"| {args.slices}-slice series, cold (nothing cached or prefetched) and warm "
        "| p50 ms | min "
        "| max | n |", "|---|---|---|---|---|",
    ]
    labels = {"ours": "ours: over HTTP, signed in, as the viewer asks (the review page, the "
                      "middle slice, then runs of 64, 4 at a time)",
              "warm": "ours, warm: the same, at once again (every slice cached)",
              "orthanc": "Orthanc DICOMweb `/rendered` JPEG, one slice after another",
              "orthanc4": "Orthanc `/rendered` JPEG, 4 at a time (reference)"}
    for key, label in labels.items():
        values = series[key]
        lines.append(f"| {label} | {p50(values):.0f} | {min(values):.0f} | "
                     f"{max(values):.0f} | {len(values)} |")
    lines += ["", f"The first series after gunicorn started (its workers started their "
              f"render pools at boot): {found['warm_up']:.0f} ms, not in the table.", "",
              "| one cold slice | p50 ms | min | max | n |", "|---|---|---|---|---|"]
    for key in ("ours jpeg", "orthanc jpeg", "ours png", "orthanc png"):
        values = singles[key]
        lines.append(f"| {key} | {p50(values):.1f} | {min(values):.1f} | {max(values):.1f} | "
                     f"{len(values)} |")
    single_ours, single_theirs = p50(singles["ours jpeg"]), p50(singles["orthanc jpeg"])
    faster = [a <= b for a, b in zip(series["ours"], series["orthanc"], strict=True)]
    every_run = all(faster)
    verdict = [
        f"cold {args.slices}-slice series < 2000 ms: {ours:.0f} ms at p50, "
        f"**{'met' if ours < 2000 else 'missed'}**",
        f"never slower than Orthanc one by one: {ours:.0f} against {theirs:.0f} ms at p50; "
        f"ours faster in {sum(faster)} "
        f"of {len(series['ours'])} runs, **{'met' if every_run else 'missed'}**",
        f"warm ≥ 5× faster than Orthanc one by one: {warm:.0f} against {theirs:.0f} ms at "
        f"p50, {theirs / warm:.1f}×, **{'met' if theirs >= 5 * warm else 'missed'}**",
        f"one cold slice no slower than Orthanc `/rendered` (JPEG): {single_ours:.1f} against "
        f"{single_theirs:.1f} ms at p50, "
        f"**{'met' if single_ours <= single_theirs else 'missed'}**",
    ]
    four = p50(series["orthanc4"])
    lines += ["", "Targets (issue 18):", *[f"- {v}" for v in verdict],
              f"- tracebacks in gunicorn's log: {found['tracebacks']}",
              f"- not a target, for honesty: Orthanc asked 4 slices at a time (as our viewer "
              f"asks us) renders the series in {four:.0f} ms, "
              f"{'faster' if four < ours else 'slower'} than ours", "", *READING]
    return section("cold-series", "\n".join(lines))


def write(text: str, doc: Path = ROOT / "docs" / "BENCHMARKS.md") -> None:
    """Put the section in place, or (first time) right after the "## Images" section:
    its own "##" heading, since bench_render.py rewrites "## Images" to the next one."""
    document = doc.read_text()
    if "<!-- bench:cold-series -->" not in document:
        at = document.find("\n## ", document.find("\n## Images\n") + 1)
        document = document[:at + 1] + text + "\n\n" + document[at + 1:]
    else:
        document = replace_sections(document, text)[0]
    doc.write_text(document)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = report(args, measure(args))
    print(text)
    if not args.no_write:
        write(text)
        print("written to docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
