"""Every transfer syntax in the samples: what Orthanc renders we render too, alike, and
what cannot be decoded is refused in one line naming the cause, with no traceback."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGExtended12Bit

from integrations import dicom_gdcm
from integrations.imaging import ImagingError, file_window, read_dataset, render
from tests.services import missing_service, require_binary
from tools.orthanc_local import GDCM_PLUGIN_GLOB, find_plugin, start_orthanc

pytestmark = pytest.mark.orthanc
DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
SYNTAXES = sorted((DATA / "syntaxes").glob("*.dcm"))
JPEG_12BIT = DATA / "syntaxes" / "wg04_nm1_jpeg_extended_12bit.dcm"


# Orthanc 1.10 refuses this file on upload (no study, series or SOP Instance UID).
ORTHANC_REFUSES = {"leadtools_jpeg_baseline_gray8"}


@pytest.fixture(scope="module")
def orthanc_gdcm(tmp_path_factory):
    """An Orthanc of its own with the DICOMweb and GDCM plugins (JPEG 2000 rendering)."""
    require_binary("/usr/sbin/Orthanc", "Orthanc")
    plugins = sorted(Path("/").glob(GDCM_PLUGIN_GLOB.lstrip("/")))
    if find_plugin() is None or not plugins:
        missing_service("the Orthanc DICOMweb or GDCM plugin is not installed; run "
                        "`make test-deps`")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-gdcm"),
                           extra_plugins=(str(plugins[0]),))
    yield server
    server.stop()


def grey(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("L"), dtype=np.int16)


def window_for(data: bytes) -> tuple[float, float]:
    """The file's own window, or the stored range (both servers then agree on it)."""
    ds = read_dataset(data)
    own = file_window(ds)
    if own is not None:
        return own.center, own.width
    from integrations.imaging import decode_frame, rescale

    slope, intercept = rescale(ds)
    pixels = decode_frame(ds).astype(np.float64) * slope + intercept
    low, high = float(pixels.min()), float(pixels.max())
    return (low + high) / 2, max(high - low, 1)


def orthanc_rendered(orthanc, data: bytes, window: tuple[float, float]) -> bytes | None:
    """Orthanc's PNG of the file, or None when it refuses the file or to render it."""
    stored = requests.post(f"{orthanc.rest_url}/instances", data=data, auth=orthanc.auth,
                           timeout=30)
    if stored.status_code != 200:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        url = (f"{orthanc.base_url}/studies/{ds.StudyInstanceUID}/series/"
               f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/rendered"
               f"?window={window[0]:.6f},{window[1]:.6f},linear")  # commas unencoded
        answer = requests.get(url, auth=orthanc.auth, headers={"Accept": "image/png"},
                              timeout=30)
        return answer.content if answer.status_code == 200 else None
    finally:
        requests.delete(f"{orthanc.rest_url}/instances/{stored.json()['ID']}",
                        auth=orthanc.auth, timeout=30)


@pytest.mark.parametrize("path", SYNTAXES, ids=lambda p: p.stem)
def test_each_syntax_renders_as_orthanc_does_or_both_refuse(path, orthanc_gdcm, caplog,
                                                           capfd):
    data = path.read_bytes()
    caplog.set_level(logging.DEBUG)
    try:
        window = window_for(data)
        ours = render(data, preset=f"{window[0]!r},{window[1]!r}", fmt="png")
    except ImagingError as exc:
        ours, window, why = None, (0.0, 1.0), exc.message
    theirs = orthanc_rendered(orthanc_gdcm, data, window)
    if theirs is None:
        assert path.stem in ORTHANC_REFUSES, f"Orthanc no longer renders {path.name}"
        return  # Orthanc refuses it: ours may render it (it does) or refuse it
    assert ours is not None, f"Orthanc renders {path.name}, we refuse it: {why}"
    a, b = grey(ours), grey(theirs)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 2.0, f"{path.name}: mean difference {np.abs(a - b).mean()}"
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in "".join(capfd.readouterr())


def test_the_12_bit_jpeg_orthanc_renders_is_decoded_by_the_gdcm_fallback(capfd, caplog):
    caplog.set_level(logging.DEBUG)
    decoder = get_decoder(JPEGExtended12Bit)
    assert list(decoder._available)[-1] == dicom_gdcm.LABEL  # tried after the others
    image = grey(render(JPEG_12BIT.read_bytes(), preset="file"))
    assert image.shape == (1024, 256) and len(np.unique(image)) > 20
    out, err = capfd.readouterr()
    assert err == "" and out == ""  # neither IJG's warnings nor a decoder traceback
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


def test_without_the_fallback_the_reason_names_the_unsupported_12_bit_jpeg(capfd, caplog):
    caplog.set_level(logging.DEBUG)
    decoder = get_decoder(JPEGExtended12Bit)
    decoder.remove_plugin(dicom_gdcm.LABEL)
    try:
        with pytest.raises(ImagingError) as refused:
            render(JPEG_12BIT.read_bytes(), preset="file")
    finally:
        decoder.add_plugin(dicom_gdcm.LABEL, ("integrations.dicom_gdcm", "decode_frame"))
    assert refused.value.message.startswith(
        "JPEG Extended 12-bit is not supported by the installed decoders")
    assert "corrupt" not in refused.value.message and "\n" not in refused.value.message
    assert "Traceback" not in "".join(capfd.readouterr())
    assert not [r for r in caplog.records if r.exc_info]


def test_a_damaged_jpeg_2000_names_the_decoders_words_and_logs_no_traceback(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    data = (DATA / "malformed" / "j2k_embedded_seq_delimiter.dcm").read_bytes()
    with pytest.raises(ImagingError) as refused:
        render(data, preset="file")
    assert refused.value.message == (
        "the compressed image is damaged: JPEG 2000 Image Compression could not be decoded "
        "(Error decoding the J2K data: failed to read the header)")
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in "".join(capfd.readouterr())
