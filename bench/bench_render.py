"""One slice through the production server, side by side with Orthanc, in one run.

    .venv/bin/python bench/bench_render.py [--repeat 40] [--workers 2] [--no-write]

Starts PostgreSQL and gunicorn as `make serve` does (bench/production.py) and an
Orthanc holding a copy of the head CT long enough that every cold run asks for a slice
neither side has rendered before. The stroke specialist signs in over HTTP (password
and authenticator code); a referral is linked to the copy in the bench's own app, so
the server's caches stay cold. Then, interleaved run by run (the order reversed every
other run):
  1. cold: one slice (brain 40/80) through `/api/v1/referrals/<id>/studies/.../rendered`
     (the session, the access checks, the PACS fetch by WADO-RS, decode, window,
     encode, the access log) against Orthanc's DICOMweb `/rendered` of the same slice,
     JPEG and PNG; each run a new slice, checked as a cache miss;
  2. warm: the slice of the first run again (our cache) against Orthanc again (it keeps
     no rendered images);
  3. the floor, in the bench's process on bytes already fetched: decode + window +
     encode (what any server must do), each step alone, and the WADO-RS fetch alone.
Prints the figures and writes them as "## Images" in docs/BENCHMARKS.md. The cold
series (300 slices) is bench/bench_series.py's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.bench_overhead import commit  # noqa: E402
from bench.imaging_stack import SPECIALIST, instances, new_referral, start_pacs, store_long_series  # noqa: E402
from bench.production import Production  # noqa: E402
from bench.timing import HEADER, interleaved, p50, rows  # noqa: E402
from integrations.imaging import PRESETS, decode_frame, encode, read_dataset, render, to_display  # noqa: E402
from integrations.pacs import DicomWebClient  # noqa: E402

BRAIN = PRESETS["brain"]
COMMAND = ".venv/bin/python bench/bench_render.py"
ACCEPT = {"jpeg": "image/jpeg", "png": "image/png"}


def measure(repeat: int, workers: int) -> list[str]:
    with Production(workers=workers) as prod:
        orthanc = start_pacs(prod)
        try:
            # Every cold run of each format takes a slice of its own, plus the warm-ups.
            study = store_long_series(orthanc, 2 * (repeat + 1), "render bench copy")
            referral_id = new_referral(prod, study)
            slices = instances(prod, referral_id, study)
            specialist = prod.sign_in(SPECIALIST)
            pacs = requests.Session()
            pacs.auth = orthanc.auth
            root = orthanc.rest_url

            def ours_url(instance, fmt):
                return prod.url(f"/api/v1/referrals/{referral_id}/studies/{study}/instances/"
                                f"{instance['sop_uid']}/rendered?frame=1&preset=brain"
                                f"&format={fmt}")

            def theirs_url(instance):
                return (f"{root}/dicom-web/studies/{study}/series/{instance['series_uid']}/"
                        f"instances/{instance['sop_uid']}/rendered?window="
                        f"{BRAIN.center:g},{BRAIN.width:g},linear")

            misses = []

            def ours(fmt, pick, *, cold=True):
                def get(run):
                    answer = specialist.get(ours_url(pick(run), fmt), timeout=60)
                    answer.raise_for_status()
                    if cold:
                        misses.append(answer.headers["X-Image-Cache"] == "miss")
                return get

            def theirs(fmt, pick):
                return lambda run: pacs.get(theirs_url(pick(run)), timeout=60,
                                            headers={"Accept": ACCEPT[fmt]}).raise_for_status()

            jpeg_slices = slices[:repeat + 1]
            png_slices = slices[repeat + 1:]
            cold = {}
            for fmt, chosen in (("jpeg", jpeg_slices), ("png", png_slices)):
                def pick(run, chosen=chosen):
                    return chosen[run + 1]  # run -1 is the warm-up
                cold.update(interleaved({
                    f"ours, cold: HTTP + sign-in + WADO-RS + render, {fmt.upper()}":
                        ours(fmt, pick),
                    f"Orthanc DICOMweb /rendered, {fmt.upper()}": theirs(fmt, pick)},
                    repeat))
            first = jpeg_slices[1]
            warm = interleaved({
                "ours, warm (cached): HTTP + sign-in + access checks, JPEG":
                    ours("jpeg", lambda _run: first, cold=False),
                "Orthanc DICOMweb /rendered, JPEG (it caches nothing)":
                    theirs("jpeg", lambda _run: first)}, repeat)
            floor, fetch = floor_rows(orthanc, study, first, repeat)
        finally:
            orthanc.stop()
    return report(repeat, workers, cold, warm, floor, fetch, sum(misses), len(misses))


def floor_rows(orthanc, study: str, instance: dict, repeat: int):
    """The work any server must do for one slice, here in the bench's process."""
    pacs = DicomWebClient(orthanc.base_url, name="Bench", auth=orthanc.auth)
    uids = (study, instance["series_uid"], instance["sop_uid"])
    fetch = interleaved({"WADO-RS fetch of the instance alone (bench -> Orthanc)":
                         lambda _run: pacs.fetch_instance(*uids)}, repeat)
    data = pacs.fetch_instance(*uids)
    ds = read_dataset(data)
    pixels = decode_frame(ds, 1)
    shown = to_display(ds, pixels, window=BRAIN)
    steps = interleaved({
        "parse (read_dataset)": lambda _run: read_dataset(data),
        "decode (decode_frame)": lambda _run: decode_frame(ds, 1),
        "window (rescale + brain + uint8)": lambda _run: to_display(ds, pixels, window=BRAIN),
        "encode JPEG (quality 90)": lambda _run: encode(shown, "jpeg"),
        "encode PNG (compress level 1)": lambda _run: encode(shown, "png"),
        "floor, JPEG: decode + window + encode": lambda _run: encode(
            to_display(ds, decode_frame(ds, 1), window=BRAIN), "jpeg"),
        "floor, PNG: decode + window + encode": lambda _run: encode(
            to_display(ds, decode_frame(ds, 1), window=BRAIN), "png"),
        "all of it from bytes, JPEG (render: parse + the floor)":
            lambda _run: render(data, preset="brain", fmt="jpeg"),
    }, repeat)
    return steps, fetch


def _ratio(samples, ours: str, theirs: str) -> str:
    return f"{p50(samples[ours]) / p50(samples[theirs]):.2f}x"


def report(repeat, workers, cold, warm, floor, fetch, misses, asked) -> list[str]:
    jpeg_ours = "ours, cold: HTTP + sign-in + WADO-RS + render, JPEG"
    png_ours = "ours, cold: HTTP + sign-in + WADO-RS + render, PNG"
    jpeg_theirs, png_theirs = "Orthanc DICOMweb /rendered, JPEG", "Orthanc DICOMweb /rendered, PNG"
    warm_ours = "ours, warm (cached): HTTP + sign-in + access checks, JPEG"
    warm_theirs = "Orthanc DICOMweb /rendered, JPEG (it caches nothing)"
    jpeg_met = p50(cold[jpeg_ours]) <= p50(cold[jpeg_theirs])
    warm_factor = p50(warm[warm_theirs]) / p50(warm[warm_ours])
    return [
        "## Images",
        "",
        f"Reproduce: `{COMMAND} --repeat {repeat} --workers {workers}` (a few minutes). "
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} UTC at commit {commit()} on "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}. Our "
        f"figures go through gunicorn as `make serve` starts it ({workers} workers) on "
        "PostgreSQL, signed in over HTTP as the stroke specialist (password and "
        "authenticator code), with the access checks and the access log; Orthanc (DICOMweb "
        "plugin, HTTP gzip off) on the same machine. One 512x512 CT slice (explicit VR "
        "little endian, from a copy of the 28-slice head CT), brain 40/80. Each figure is "
        f"the median and 90th percentile of {repeat} runs after one warm-up, ours and "
        "Orthanc's interleaved run by run, the order reversed every other run; every cold "
        f"run is a slice neither side rendered before ({misses} of {asked} of ours were "
        "cache misses).",
        "",
        "### One slice, cold: ours against Orthanc's own rendering",
        "",
        *HEADER, *rows(cold),
        "",
        f"Ours / Orthanc, median: JPEG {_ratio(cold, jpeg_ours, jpeg_theirs)}, "
        f"PNG {_ratio(cold, png_ours, png_theirs)}. Target (issue 18): "
        f"one cold slice no slower than Orthanc's /rendered: "
        f"{'met' if jpeg_met else 'missed'} for JPEG, the viewer's format.",
        "",
        "### One slice, warm: our cache against Orthanc",
        "",
        *HEADER, *rows(warm),
        "",
        f"Orthanc / ours, median: {warm_factor:.1f}x. Target: at least 5x "
        f"({'met' if warm_factor >= 5 else 'missed'}).",
        "",
        "### The floor: what any server must do for one slice (in-process, bytes fetched)",
        "",
        *HEADER, *rows(fetch), *rows(floor),
        "",
        "Cold, ours = WADO-RS fetch + parse + the floor + our per-request overhead (session, "
        "access checks, access log; see ## Per-request overhead) + HTTP. What is left "
        "above the sum is the server's share of two cores shared with Orthanc, PostgreSQL "
        "and the bench.",
        "",
    ]


def write_section(lines: list[str], path: Path = ROOT / "docs" / "BENCHMARKS.md", *,
                  title: str = "Images") -> None:
    """Replace (or add) the "## <title>" section, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    before, marker, after = text.partition(f"\n## {title}\n")
    rest = ""
    if marker:
        tail = after.split("\n## ", 1)
        rest = "\n## " + tail[1] if len(tail) == 2 else ""
    path.parent.mkdir(exist_ok=True)
    path.write_text(before.rstrip("\n") + "\n\n" + "\n".join(lines) + rest.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    options = parser.parse_args()
    lines = measure(options.repeat, options.workers)
    print("\n".join(lines))
    if not options.no_write:
        write_section(lines)
        print("written to docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
