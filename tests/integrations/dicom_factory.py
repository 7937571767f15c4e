"""Small DICOM files built in memory, for cases no sample file covers."""

from __future__ import annotations

import io
from contextlib import contextmanager

import numpy as np
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_dicom(pixels: np.ndarray | None = None, *, meta: bool = True, **attributes) -> bytes:
    """A CT image file holding ``pixels`` (uint16/int16, rows x cols).

    Keyword attributes override DICOM elements; ``transfer_syntax`` sets the file meta's.
    """
    pixels = np.zeros((4, 4), np.uint16) if pixels is None else pixels
    syntax = attributes.pop("transfer_syntax", ExplicitVRLittleEndian)
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientID = "GH-TEST"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = pixels.tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    if meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.save_as(buffer, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


@contextmanager
def unchecked_values():
    """Let pydicom set and write values its VR forbids (a UID that is a URL path, say),
    to build the files a hostile sender would."""
    reading, writing = (config.settings.reading_validation_mode,
                        config.settings.writing_validation_mode)
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode = reading
        config.settings.writing_validation_mode = writing


def make_hostile_dicom(pixels: np.ndarray | None = None, **attributes) -> bytes:
    """`make_dicom` with values pydicom would refuse (see `unchecked_values`)."""
    with unchecked_values():
        return make_dicom(pixels, **attributes)


def nested_content(depth: int) -> Sequence:
    """A Content Sequence (as in a structured report) nested ``depth`` levels deep."""
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", "finding"
    for _ in range(depth - 1):
        outer = Dataset()
        outer.RelationshipType, outer.ValueType = "CONTAINS", "CONTAINER"
        outer.ContentSequence = Sequence([item])
        item = outer
    return Sequence([item])
