"""GDCM as a last-resort pixel decoder for pydicom (a decoding plugin).

pydicom's own GDCM plugin declines JPEG Extended (process 2 and 4) with 12-bit
samples, and pylibjpeg refuses some of those files from older scanners (a scan whose
SOS parameters are not the sequential ones) that GDCM's 12-bit IJG library reads, as
Orthanc does. This plugin hands such a frame to GDCM itself. It is added after the other
plugins (see `integrations.dicom_files`), so it is only tried when they have failed.

Raises (from `decode_frame`, which pydicom catches and reports): RuntimeError when GDCM
cannot decode the frame or gives back fewer bytes than the frame holds.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager

from pydicom import uid

try:
    import gdcm
except ImportError:  # pragma: no cover - python-gdcm is a dependency; kept optional here
    gdcm = None
else:
    # GDCM writes its warnings ("Unsupported JPEG data precision 12") to stderr itself.
    gdcm.Trace.WarningOff()
    gdcm.Trace.ErrorOff()
    gdcm.Trace.DebugOff()

LABEL = "goldenhour-gdcm"
# What GDCM's IJG library prints to stderr itself (its Trace switches do not reach it).
_IJG_NOISE = re.compile(r"^(Unsupported JPEG data precision|Invalid SOS parameters|"
                        r"Premature end of JPEG|Corrupt JPEG data|Warning: )")
_stderr_lock = threading.Lock()
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("python-gdcm>=3.0",),
                        uid.JPEGBaseline8Bit: ("python-gdcm>=3.0",)}


def is_available(transfer_syntax: str) -> bool:
    """True when GDCM is installed and decodes ``transfer_syntax`` through this plugin."""
    return gdcm is not None and transfer_syntax in DECODER_DEPENDENCIES


def decode_frame(src: bytes, runner) -> bytes:
    """One encoded JPEG frame -> its pixels, as the runner's geometry says."""
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    pixel_data = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    pixel_data.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(pixel_data)
    photometric = gdcm.PhotometricInterpretation.GetPIType(
        str(runner.photometric_interpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(photometric))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    syntax = gdcm.TransferSyntax.GetTSType(str(runner.transfer_syntax))
    image.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    bits = runner.bits_stored
    image.SetPixelFormat(gdcm.PixelFormat(runner.samples_per_pixel, runner.bits_allocated,
                                          bits, bits - 1, runner.pixel_representation))
    with _without_decoder_noise():
        text = image.GetBuffer()  # GDCM hands back char* as a str
    frame = text.encode("utf-8", "surrogateescape") if text else b""
    expected = (runner.rows * runner.columns * runner.samples_per_pixel
                * (runner.bits_allocated // 8))
    if len(frame) < expected:
        raise RuntimeError("GDCM could not decode the JPEG data")
    return frame[:expected]


@contextmanager
def _without_decoder_noise():
    """Run with file descriptor 2 caught, then pass on to stderr every line but IJG's
    own messages (what another thread wrote meanwhile is not lost). Only this rare
    fallback path pays for it."""
    with _stderr_lock, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines(True)
                    if not _IJG_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
