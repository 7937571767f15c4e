"""`flask images render` for admins: an image, or one line saying why not."""

from __future__ import annotations

import io
from pathlib import Path

import flask
import numpy as np
import pytest
from PIL import Image

from views.cli.images import images_cli

DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
SLICE = DATA / "series" / "ge_hispeed_head_ct" / "14.dcm"


@pytest.fixture
def run():
    app = flask.Flask(__name__)
    app.cli.add_command(images_cli)
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["images", "render", *map(str, args)])


def test_it_renders_a_slice_with_a_preset(run, tmp_path):
    out = tmp_path / "slice.png"
    result = run(SLICE, "--preset", "brain", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output
    image = np.asarray(Image.open(io.BytesIO(out.read_bytes())))
    assert image.shape == (512, 512) and len(np.unique(image)) > 50


def test_it_renders_a_chosen_frame_as_jpeg(run, tmp_path):
    out = tmp_path / "frame.jpg"
    result = run(DATA / "multiframe" / "emri_small_10frames.dcm", "--frame", 7, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:2] == b"\xff\xd8"


@pytest.mark.parametrize("args, reason", [
    (["malformed/mr_truncated.dcm"], "pixel data is shorter than the image size says"),
    (["non_image/rtplan.dcm"], "no image in this file (RT Plan)"),
    (["malformed/not_dicom.dcm"], "not a DICOM file"),
    (["does/not/exist.dcm"], "No such file or directory"),
    (["series/ge_hispeed_head_ct/01.dcm", "--preset", "liver"], "unknown preset 'liver'"),
    (["multiframe/emri_small_10frames.dcm", "--frame", "11"], "no frame 11"),
])
def test_it_exits_non_zero_with_a_one_line_reason(run, tmp_path, args, reason):
    out = tmp_path / "never.png"
    result = run(DATA / args[0], *args[1:], "--out", out)
    assert result.exit_code == 1
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output and not out.exists()


def test_it_refuses_an_output_it_cannot_write_as_an_image(run, tmp_path):
    result = run(SLICE, "--out", tmp_path / "slice.gif")
    assert result.exit_code == 1
    assert "must end in .png, .jpg or .jpeg" in result.output


@pytest.mark.parametrize("args", [
    ["--window=-670.805,2061.64"], ["--window", "-670.805,2061.64"],
    ["--preset", "window=-670.805,2061.64"], ["--preset=-670.805,2061.64"],
])
def test_a_window_with_a_negative_center_renders(run, tmp_path, args):
    from integrations.imaging import render

    out = tmp_path / "lung.png"
    result = run(SLICE, *args, "--out", out)
    assert result.exit_code == 0, result.output
    assert "window -670.805,2061.64" in result.output and "_670" not in result.output
    assert out.read_bytes() == render(SLICE.read_bytes(), preset="-670.805,2061.64")


@pytest.mark.parametrize("window, reason", [
    ("-670.805", "window must be two numbers 'center,width'"),
    ("-670.805,0", "window width must be a number above 0"),
    ("abc,100", "window center must be a number"),
])
def test_a_bad_window_gets_its_own_one_line_reason(run, tmp_path, window, reason):
    out = tmp_path / "never.png"
    result = run(SLICE, f"--window={window}", "--out", out)
    assert result.exit_code == 1 and reason in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
