"""`flask images render FILE [--preset NAME | --window C,W] [--frame N] --out OUT.png`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from integrations.imaging import MAX_FILE_BYTES, PRESETS, ImagingError, render

images_cli = AppGroup("images", help="Check and render DICOM files.")
_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def _fail(reason: str) -> None:
    click.echo(f"error: {reason}", err=True)
    raise SystemExit(1)


@images_cli.command("render")
@click.argument("file")
@click.option("--preset", default="file", show_default=True,
              help=f"One of {', '.join(PRESETS)}, or window=CENTER,WIDTH.")
@click.option("--window", default=None, metavar="CENTER,WIDTH",
              help="A window of your own instead of a preset, e.g. --window=-600,1500 "
                   "(decimals allowed).")
@click.option("--frame", default=1, show_default=True, type=int, help="Frame number, from 1.")
@click.option("--out", required=True, help="Where to write the image (.png, .jpg).")
def render_command(file, preset, window, frame, out):
    """Render one frame of a DICOM FILE, or say in one line why it cannot be."""
    fmt = _FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        _fail(f"{out}: the output must end in .png, .jpg or .jpeg")
    if window is not None:
        preset = window if window.strip().lower().startswith("window=") else f"window={window}"
    source = Path(file)
    try:
        if source.stat().st_size > MAX_FILE_BYTES:
            _fail(f"{file}: file too large (limit {MAX_FILE_BYTES // 1_000_000} MB)")
        data = source.read_bytes()
    except OSError as exc:
        _fail(f"{file}: {exc.strerror or exc}")
    try:
        image = render(data, preset=preset, frame=frame, fmt=fmt)
    except ImagingError as exc:
        _fail(f"{file}: {exc.message}")
    try:
        Path(out).write_bytes(image)
    except OSError as exc:
        _fail(f"{out}: {exc.strerror or exc}")
    shown = (f"window {preset.removeprefix('window=')}" if "," in preset
             else f"preset {preset}")
    click.echo(f"Wrote {out} ({len(image) // 1024} KB, {shown}, frame {frame}).")
