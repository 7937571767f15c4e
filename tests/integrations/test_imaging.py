"""Decoding and rendering real DICOM files, and refusing broken ones with their reason."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.encaps import encapsulate

from integrations.imaging import (
    PRESETS,
    ImagingError,
    Window,
    decode_frame,
    inspect,
    parse_window,
    read_dataset,
    render,
    resolve_window,
    to_display,
    without_preamble,
)
from tests.integrations.dicom_factory import make_dicom

DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
SERIES = sorted((DATA / "series" / "ge_hispeed_head_ct").glob("*.dcm"))
SYNTAXES = sorted((DATA / "syntaxes").glob("*.dcm"))


def picture(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image)


def test_the_sample_series_has_28_slices():
    assert len(SERIES) == 28


def test_it_renders_every_slice_of_the_head_ct_in_every_preset():
    for path in SERIES:
        data = path.read_bytes()
        for preset in PRESETS:
            image = picture(render(data, preset=preset))
            assert image.shape == (512, 512)
            assert len(np.unique(image)) > 10, (path.name, preset)
        brain = picture(render(data, preset="brain"))
        grey = np.count_nonzero((brain > 0) & (brain < 255)) / brain.size
        assert grey > 0.01, f"{path.name}: brain window shows almost no tissue"


def test_presets_give_different_images():
    data = SERIES[14].read_bytes()
    images = {name: picture(render(data, preset=name)).tobytes() for name in PRESETS}
    assert len(set(images.values())) == len(PRESETS)


def test_brain_window_maps_hounsfield_units_as_a_radiologist_expects():
    # stored 1024 + intercept -1024 = 0 HU; brain 40/80 spans 0..80 HU
    stored = np.array([[1000, 1024, 1064], [1104, 2000, 1044]], np.uint16)
    ds = read_dataset(make_dicom(stored))
    shown = to_display(ds, decode_frame(ds), window=PRESETS["brain"])
    assert shown.tolist() == [[0, 0, 127], [255, 255, 63]]


def test_monochrome1_is_inverted():
    stored = np.array([[1000, 1024, 1064], [1104, 2000, 1044]], np.uint16)
    normal = picture(render(make_dicom(stored), preset="brain"))
    inverted = picture(render(make_dicom(stored, PhotometricInterpretation="MONOCHROME1"),
                              preset="brain"))
    assert (inverted.astype(int) == 255 - normal.astype(int)).all()


def test_an_explicit_window_renders_like_the_equivalent_preset():
    data = SERIES[10].read_bytes()
    assert render(data, preset="window=40,80") == render(data, preset="brain")
    assert render(data, preset="500,2000") == render(data, preset="bone")


def test_file_preset_uses_the_files_own_window():
    data = SERIES[10].read_bytes()  # the file says center 35, width 100
    assert render(data, preset="file") == render(data, preset="window=35,100")
    assert render(data, preset="file") != render(data, preset="brain")


@pytest.mark.parametrize("text, window", [
    ("40,80", Window(40, 80)), ("window=-600,1500", Window(-600, 1500)),
    (" 40.5 , 80 ", Window(40.5, 80)),
])
def test_the_window_parser_reads_center_then_width(text, window):
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["40", "a,b", "40,0", "40,-5", "", "40,80,linear"])
def test_the_window_parser_refuses_nonsense(text):
    with pytest.raises(ImagingError, match="window"):
        parse_window(text)


@pytest.mark.parametrize("text, window", [
    ("-670.805,2061.64", Window(-670.805, 2061.64)),
    ("window=-670.805,2061.64", Window(-670.805, 2061.64)),
    ("-.5,0.25", Window(-0.5, 0.25)), ("+40,80.", Window(40, 80)),
])
def test_a_negative_center_and_decimal_width_are_a_window(text, window):
    assert parse_window(text) == window
    assert resolve_window(text) == window


@pytest.mark.parametrize("text, message", [
    ("-670.805", "window must be two numbers 'center,width'"),
    ("1,2,3", "window must be two numbers 'center,width'"),
    ("lung,1500", "window center must be a number"),
    ("--600,1500", "window center must be a number"),
    ("nan,80", "window center must be a number"),
    ("-600,0", "window width must be a number above 0"),
    ("-600,-1500", "window width must be a number above 0"),
    ("-600,inf", "window width must be a number above 0"),
    ("-600,1e400", "window width must be a number above 0"),
    ("-600,200000", "within 100,000"),
])
def test_a_bad_window_is_refused_saying_what_is_wrong(text, message):
    with pytest.raises(ImagingError) as refused:
        resolve_window(text)
    assert message in refused.value.message


def test_a_negative_center_window_renders_hounsfield_units_as_asked():
    # window -670.805/2061.64 spans -1701.625 .. 359.015 HU
    hu = np.array([[-2000, -1701, -670], [0, 359, 1000]])
    ds = read_dataset(make_dicom((hu + 1024).astype(np.int16)))
    expected = np.clip((hu + 1701.625) * 255 / 2061.64, 0, 255).astype(np.uint8)
    shown = picture(render(make_dicom((hu + 1024).astype(np.int16)),
                           preset="-670.805,2061.64"))
    assert np.array_equal(shown, expected)
    assert np.array_equal(to_display(ds, decode_frame(ds), window=Window(-670.805, 2061.64)),
                          expected)
    slice_ = SERIES[14].read_bytes()
    assert render(slice_, preset="window=-670.805,2061.64") != render(slice_, preset="lung")


def test_an_unknown_preset_is_refused_with_the_list_of_presets():
    with pytest.raises(ImagingError, match="unknown preset 'liver'.*brain"):
        resolve_window("liver")


def test_multiframe_frames_differ_and_frame_numbers_start_at_one():
    data = (DATA / "multiframe" / "emri_small_10frames.dcm").read_bytes()
    first, fifth = (picture(render(data, frame=n)) for n in (1, 5))
    assert first.shape == (64, 64) and not np.array_equal(first, fifth)
    with pytest.raises(ImagingError, match="no frame 11 in this image \\(it has 10\\)"):
        render(data, frame=11)
    with pytest.raises(ImagingError, match="no frame 0"):
        render(data, frame=0)


def test_enhanced_ct_uses_the_rescale_from_its_functional_groups():
    data = (DATA / "multiframe" / "ect_enhanced_ct_head_2frames.dcm").read_bytes()
    ds = read_dataset(data)
    stored = decode_frame(ds, 2).astype(np.float64)
    expected = np.clip((stored - 1024 - 0) * 255 / 80, 0, 255).astype(np.uint8)  # -1024 shared
    shown = picture(render(data, preset="brain", frame=2))
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
    assert 0.05 < np.count_nonzero((shown > 0) & (shown < 255)) / shown.size


@pytest.mark.parametrize("path", SYNTAXES, ids=lambda p: p.stem)
def test_every_transfer_syntax_sample_renders_as_png_and_jpeg(path):
    data = path.read_bytes()
    meta = inspect(data)
    png = picture(render(data, preset="file", fmt="png"))
    jpeg = picture(render(data, preset="file", fmt="jpeg"))
    assert png.shape[:2] == jpeg.shape[:2] == (meta.rows, meta.columns)
    assert png.std() > 5, "the rendered image is flat"


def test_colour_passes_through_without_windowing():
    data = (DATA / "syntaxes" / "sc_rgb_jpeg_baseline_dcmtk.dcm").read_bytes()
    image = picture(render(data, preset="brain"))
    assert image.shape == (100, 100, 3)
    assert render(data, preset="brain") == render(data, preset="bone")


MALFORMED = {
    "malformed/empty.dcm": "empty file (0 bytes)",
    "malformed/not_dicom.dcm": "not a DICOM file",
    "malformed/no_meta.dcm": "not a DICOM file",
    "malformed/mr_truncated.dcm":
        "pixel data is shorter than the image size says (truncated file)",
    "malformed/bad_vr.dcm": "invalid Number of Frames in the header: '1A'",
    "malformed/j2k_embedded_seq_delimiter.dcm":
        "the compressed image is damaged: JPEG 2000 Image Compression could not be "
        "decoded (Error decoding the J2K data: failed to read the header)",
    "non_image/rtplan.dcm": "no image in this file (RT Plan)",
    "non_image/test_sr.dcm": "no image in this file (Comprehensive SR)",
}


@pytest.mark.parametrize("name, reason", MALFORMED.items(), ids=list(MALFORMED))
def test_each_broken_or_imageless_file_is_refused_with_its_reason(name, reason):
    data = (DATA / name).read_bytes()
    for attempt in (lambda: render(data, preset="brain"), lambda: inspect(data)):
        started = time.monotonic()
        with pytest.raises(ImagingError) as refused:
            attempt()
        assert refused.value.message == reason
        assert time.monotonic() - started < 5


def test_every_sample_broken_file_is_covered():
    found = {f"{p.parent.name}/{p.name}" for d in ("malformed", "non_image")
             for p in (DATA / d).glob("*.dcm")}
    assert found == set(MALFORMED)


def test_an_image_larger_than_the_limit_is_refused_before_decoding():
    data = make_dicom(np.zeros((2, 2), np.uint16), Rows=5000, Columns=6000)
    with pytest.raises(ImagingError, match="^image too large: 6000 x 5000"):
        render(data)


def test_too_many_frames_are_refused():
    with pytest.raises(ImagingError, match="^too many frames: 5000"):
        render(make_dicom(NumberOfFrames=5000))


def test_a_file_over_the_size_limit_is_refused_unread():
    with pytest.raises(ImagingError, match="^file too large"):
        read_dataset(SERIES[0].read_bytes(), max_bytes=100_000)


def test_a_compression_nobody_here_decodes_is_named():
    fragment = encapsulate([b"\x00" * 64])
    data = make_dicom(np.zeros((2, 2), np.uint16), PixelData=fragment,
                      transfer_syntax="1.2.840.10008.1.2.4.100")
    with pytest.raises(ImagingError, match="^unsupported compression: MPEG2 Main Profile"):
        render(data)


def test_a_truncated_compressed_file_is_refused():
    data = (DATA / "syntaxes" / "wg04_ct1_j2k_lossy.dcm").read_bytes()
    with pytest.raises(ImagingError, match="corrupt|truncated"):
        render(data[: len(data) // 2])


def test_a_file_without_file_meta_renders_when_its_encoding_can_be_inferred():
    stored = np.array([[1024, 1064], [1104, 2000]], np.uint16)
    data = make_dicom(stored, meta=False)
    assert data[128:132] != b"DICM"
    assert picture(render(data, preset="brain")).tolist() == [[0, 127], [255, 255]]


def test_the_preamble_is_ignored_and_can_be_blanked():
    data = bytearray(SERIES[0].read_bytes())
    data[0:2] = b"MZ"  # an executable header hiding in the preamble
    assert inspect(bytes(data)).modality == "CT"
    clean = without_preamble(bytes(data))
    assert clean[:128] == bytes(128) and clean[128:] == bytes(data[128:])


def test_it_summarises_a_slice_for_upload_validation():
    meta = inspect(SERIES[0].read_bytes())
    assert (meta.modality, meta.rows, meta.columns, meta.frames) == ("CT", 512, 512, 1)
    assert meta.study_uid.startswith("1.2.826.0.1.3680043")
    assert meta.sop_uid and meta.series_uid and meta.has_image
    assert meta.image_position is not None and meta.slice_location == -35.5
    metas = [inspect(p.read_bytes()) for p in SERIES]
    assert len({m.sop_uid for m in metas}) == 28 and len({m.series_uid for m in metas}) == 1
    heights = [m.image_position[2] for m in sorted(metas, key=lambda m: m.instance_number)]
    assert heights == sorted(heights)


def test_an_imageless_file_can_be_summarised_when_images_are_not_required():
    meta = inspect((DATA / "non_image" / "rtplan.dcm").read_bytes(), require_image=False)
    assert meta.has_image is False and meta.frames == 0 and meta.sop_uid


SEED = (DATA / "syntaxes" / "ct_small.dcm").read_bytes()


@settings(max_examples=200, deadline=5000, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 255)), max_size=12),
       st.integers(0, len(SEED)))
def test_damaged_headers_give_only_imaging_errors(changes, length):
    data = bytearray(SEED)
    for position, value in changes:
        data[position] = value
    try:
        render(bytes(data[:length]), preset="brain")
    except ImagingError:
        pass


@settings(max_examples=150, deadline=5000, database=None)
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_give_only_imaging_errors(noise, with_marker):
    data = (bytes(128) + b"DICM" + noise) if with_marker else noise
    try:
        render(data)
    except ImagingError:
        pass
