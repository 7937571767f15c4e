"""How big a thread photo is in the PACS: the DICOM file we store for one phone photo,
uncompressed (as before) and as JPEG Baseline (workflow/imaging/photos.py), and how
long each takes to build.

    .venv/bin/python bench/bench_photos.py [--width 4032 --height 3024]

The photo is made here, as no real patient's may be: a 12-megapixel frame (a phone's
default 4:3) with what a camera sees of an ECG on a desk — lighting falling off across
the frame, paper grid lines, a trace, and sensor noise (sigma 2) — saved as the phone
would, JPEG quality 92 with EXIF and GPS. Prints the sizes and the compression ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402


def phone_photo(width: int, height: int) -> bytes:
    rng = np.random.default_rng(17)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 235 - 60 * ((x / width - 0.3) ** 2 + (y / height - 0.4) ** 2)
    paper = np.stack([light, light * 0.93, light * 0.90], axis=-1)
    grid = ((x % 40 < 2) | (y % 40 < 2))[..., None] * np.array([0, 60, 60], np.float32)
    paper -= grid
    trace = np.abs(y - (height / 2 + 120 * np.sin(x / 37) * (np.sin(x / 400) > 0.6))) < 3
    paper[trace] = (30, 30, 40)
    paper += rng.normal(0, 2, paper.shape)
    pixels = np.clip(paper, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 58.0, 41.0), 3: "W", 4: (0.0, 1.0, 12.0)}
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=4032)
    parser.add_argument("--height", type=int, default=3024)
    args = parser.parse_args()
    from workflow.imaging import photos

    original = phone_photo(args.width, args.height)
    image = photos.read_photo(original)
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    referral = SimpleNamespace(reference="BENCH-1", id=1, nhs_number="9434765919",
                               local_number="L123", family_name="Bench", given_name="Ann",
                               birth_date=None, sex="female", created_at=at)
    started = time.perf_counter()
    ds = photos.secondary_capture(referral, image, sop_uid=generate_uid(), number=1, at=at)
    compressed = photos._part10(ds)
    jpeg_s = time.perf_counter() - started
    # Before: the same attributes with the pixels as they are (explicit VR little endian).
    started = time.perf_counter()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PhotometricInterpretation = "RGB"
    for keyword in ("LossyImageCompression", "LossyImageCompressionMethod",
                    "LossyImageCompressionRatio"):
        delattr(ds, keyword)
    ds.PixelData = image.tobytes()
    ds["PixelData"].is_undefined_length = False
    uncompressed = photos._part10(ds)
    raw_s = time.perf_counter() - started
    print(f"photo {args.width}x{args.height}, as the phone saved it: "
          f"{len(original) / 1e6:.2f} MB")
    print(f"DICOM, uncompressed (before): {len(uncompressed) / 1e6:.2f} MB "
          f"({raw_s * 1000:.0f} ms)")
    print(f"DICOM, JPEG Baseline q{photos.JPEG_QUALITY} (now): "
          f"{len(compressed) / 1e6:.2f} MB ({jpeg_s * 1000:.0f} ms, encode included)")
    print(f"ratio: {len(uncompressed) / len(compressed):.1f}x smaller")


if __name__ == "__main__":
    main()
