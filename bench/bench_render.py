"""Image rendering, side by side with Orthanc, in one run against one Orthanc.

    .venv/bin/python bench/bench_render.py [--repeat 40] [--no-write]

Starts its own Orthanc (tests/services/orthanc.py), loads the 28-slice head CT from
tests/data, then measures:
  1. one slice, brain preset: our fetch (WADO-RS) + parse + decode + window + encode, PNG
     and JPEG, against Orthanc's DICOMweb /rendered for the same instance (no cache on
     either side);
  2. our per-step timings against a numpy floor (one pass over the same pixels);
  3. the whole series fetched and rendered one slice after another (extrapolated to 300).
Prints the figures and writes them under "## Images" in docs/BENCHMARKS.md.
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

import numpy as np  # noqa: E402

from integrations.imaging import (  # noqa: E402
    PRESETS,
    decode_frame,
    encode,
    read_dataset,
    render,
    to_display,
)
from integrations.pacs import DicomWebClient  # noqa: E402
from tests.services.orthanc import HEAD_CT_DIR, start_orthanc  # noqa: E402

BRAIN = PRESETS["brain"]
COMMAND = ".venv/bin/python bench/bench_render.py"


def timed(action, repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` calls (one warm-up call first, not counted)."""
    action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p50(samples):
    return statistics.median(samples)


def p90(samples):
    return statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]


def row(label: str, samples: list[float]) -> str:
    return f"| {label} | {p50(samples):.2f} | {p90(samples):.2f} | {len(samples)} |"


def measure(repeat: int) -> list[str]:
    server = start_orthanc()
    try:
        server.load_samples()
        pacs = DicomWebClient(server.base_url, name="Bench", auth=server.auth)
        [study] = pacs.search_studies(patient_id=_patient_id())
        [series] = pacs.series(study.study_uid)
        instances = pacs.instances(study.study_uid, series.series_uid)
        middle = instances[len(instances) // 2]
        uids = (study.study_uid, series.series_uid, middle.sop_uid)
        window = (BRAIN.center, BRAIN.width)

        def ours(fmt):
            return lambda: render(pacs.fetch_instance(*uids), preset="brain", fmt=fmt)

        def theirs(fmt):
            return lambda: pacs.rendered(*uids, window=window, fmt=fmt)

        one_slice = [
            row("ours: WADO-RS fetch + render, PNG", timed(ours("png"), repeat)),
            row("Orthanc DICOMweb /rendered, PNG", timed(theirs("png"), repeat)),
            row("ours: WADO-RS fetch + render, JPEG", timed(ours("jpeg"), repeat)),
            row("Orthanc DICOMweb /rendered, JPEG", timed(theirs("jpeg"), repeat)),
            row("ours: WADO-RS fetch alone", timed(lambda: pacs.fetch_instance(*uids), repeat)),
        ]

        data = pacs.fetch_instance(*uids)
        ds = read_dataset(data)
        pixels = decode_frame(ds, 1)
        shown = to_display(ds, pixels, window=BRAIN)
        steps = [
            row("parse (read_dataset)", timed(lambda: read_dataset(data), repeat)),
            row("decode (decode_frame)", timed(lambda: decode_frame(ds, 1), repeat)),
            row("window (rescale + brain + uint8)",
                timed(lambda: to_display(ds, pixels, window=BRAIN), repeat)),
            row("encode PNG (compress level 1)", timed(lambda: encode(shown, "png"), repeat)),
            row("encode JPEG (quality 90)", timed(lambda: encode(shown, "jpeg"), repeat)),
            row("all four, PNG (render from bytes)",
                timed(lambda: render(data, preset="brain", fmt="png"), repeat)),
            row("floor: one numpy pass (int16 -> uint8 cast)",
                timed(lambda: pixels.astype(np.uint8), repeat)),
        ]

        def whole_series(fetch_render):
            return lambda: [fetch_render(i) for i in instances]

        ours_series = timed(whole_series(lambda i: render(pacs.fetch_instance(
            i.study_uid, i.series_uid, i.sop_uid), preset="brain", fmt="jpeg")),
            max(3, repeat // 8))
        theirs_series = timed(whole_series(lambda i: pacs.rendered(
            i.study_uid, i.series_uid, i.sop_uid, window=window, fmt="jpeg")),
            max(3, repeat // 8))
        scale = 300 / len(instances)
        series_rows = [
            f"| ours: fetch + render JPEG, {len(instances)} slices | {p50(ours_series):.0f} | "
            f"{p90(ours_series):.0f} | {len(ours_series)} |",
            f"| Orthanc /rendered JPEG, {len(instances)} slices | {p50(theirs_series):.0f} | "
            f"{p90(theirs_series):.0f} | {len(theirs_series)} |",
            f"| ours, extrapolated to 300 slices (x{scale:.1f}) | "
            f"{p50(ours_series) * scale:.0f} | {p90(ours_series) * scale:.0f} | - |",
            f"| Orthanc, extrapolated to 300 slices (x{scale:.1f}) | "
            f"{p50(theirs_series) * scale:.0f} | {p90(theirs_series) * scale:.0f} | - |",
        ]
        return _report(one_slice, steps, series_rows, len(instances), repeat)
    finally:
        server.stop()


def _patient_id() -> str:
    from integrations.imaging import inspect

    return inspect(next(iter(sorted(HEAD_CT_DIR.glob("*.dcm")))).read_bytes()).patient_id


def _report(one_slice, steps, series_rows, count, repeat) -> list[str]:
    header = ["| what | median ms | p90 ms | runs |", "|---|---|---|---|"]
    return [
        "## Images",
        "",
        f"Reproduce: `{COMMAND}` (starts its own Orthanc; about a minute).",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()}, "
        "Orthanc and the client on 127.0.0.1. One 512x512 CT slice of the 28-slice head CT "
        "(explicit VR little endian), brain preset (40/80); each figure is the median and "
        f"90th percentile of {repeat} runs after one warm-up. Neither side caches. "
        "Orthanc's HTTP gzip is off (tests/services/orthanc.py): with it on, one WADO-RS "
        "instance took ~70 ms instead of ~7 ms here.",
        "",
        "### One slice: ours against Orthanc's own rendering (cold)",
        "",
        *header, *one_slice,
        "",
        "### Our steps, against a numpy floor",
        "",
        *header, *steps,
        "",
        f"### A whole series, one slice after another ({count} slices, JPEG)",
        "",
        *header, *series_rows,
        "",
        "The 300-slice figures are extrapolated linearly from the 28-slice series, not "
        "measured: they are one slice after another with no cache. A 300-slice series in "
        "the viewer (cached, in runs of 64 slices per request) is measured under "
        "## Viewer.",
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
    parser.add_argument("--no-write", action="store_true", help="print only")
    options = parser.parse_args()
    lines = measure(options.repeat)
    print("\n".join(lines))
    if not options.no_write:
        write_section(lines)
        print("written to docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
