"""Uploads built to hurt: DICOM files shaped to crash the PACS they are forwarded to.
Each is refused by name, early and cheaply, and never reaches the (real) Orthanc."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from extensions import db
from integrations import dicom_files
from integrations.imaging import ImagingError, inspect, read_dataset
from models import LinkedStudy
from tests.images.test_upload_prefetch import upload
from tests.integrations.dicom_factory import make_dicom, nested_content
from tests.paging.helpers import REFERRER

pytestmark = pytest.mark.orthanc
PASSWORD = "goldenhour-demo"
DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
_MB = 1024 * 1024


def linked_count() -> int:
    return db.session.scalar(select(func.count()).select_from(LinkedStudy))


def rejected(answer) -> dict[str, str]:
    return {r["file"]: r["reason"] for r in answer.get_json()["rejected"]}


# --- DICOM shaped to crash the PACS ----------------------------------------------------


def test_a_file_nested_51_deep_is_refused_by_name_and_never_reaches_the_pacs(
        referral, client, pilgrim):
    before = pilgrim.instance_count()
    deep = make_dicom(ContentSequence=nested_content(51), PatientID="GH-DEEP")
    client.login(REFERRER, PASSWORD)
    answer = upload(client, referral.id, [("deep.dcm", deep)])
    assert answer.status_code == 422
    assert rejected(answer) == {"deep.dcm": "sequences nested more than 16 levels deep (at "
                                            "Content Sequence): refused, since a PACS can "
                                            "crash on such a file"}
    assert pilgrim.is_up() and pilgrim.instance_count() == before
    assert linked_count() == 0


def test_a_file_nested_10_deep_like_a_real_report_is_stored(referral, client, pilgrim):
    before = pilgrim.instance_count()
    report = make_dicom(np.full((4, 4), 1000, np.uint16), ContentSequence=nested_content(10),
                        PatientID="GH-DEEP")
    client.login(REFERRER, PASSWORD)
    answer = upload(client, referral.id, [("report.dcm", report)])
    assert answer.get_json()["stored"] == ["report.dcm"], answer.get_json()
    assert pilgrim.instance_count() == before + 1


def test_a_structure_nested_too_deep_for_the_parser_is_refused_not_crashed():
    # Undefined-length sequences, 2000 deep: pydicom parses them as it reads the file.
    opening = (struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
               + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF))
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data = _insert_before_pixels(make_dicom(), opening * 2000 + closing * 2000)
    with pytest.raises(ImagingError, match=r"^sequences nested too deep to read \(limit 16"):
        inspect(data)


def test_every_sample_file_passes_the_structure_checks():
    checked = 0
    for path in sorted(DATA.rglob("*.dcm")):
        try:
            ds = read_dataset(path.read_bytes())
        except ImagingError:
            continue  # refused earlier, for its own reason
        dicom_files.check_structure(ds)
        checked += 1
    assert checked >= 40
    assert inspect((DATA / "non_image" / "test_sr.dcm").read_bytes(),
                   require_image=False).sop_class == "1.2.840.10008.5.1.4.1.1.88.33"


def test_too_many_elements_or_sequence_items_are_refused(monkeypatch):
    report = make_dicom(ContentSequence=nested_content(3))
    monkeypatch.setattr(dicom_files, "MAX_SEQUENCE_ITEMS", 2)
    with pytest.raises(ImagingError, match=r"^too many sequence items \(limit 2\)$"):
        inspect(report)
    monkeypatch.setattr(dicom_files, "MAX_ELEMENTS", 10)
    with pytest.raises(ImagingError, match=r"^too many data elements \(limit 10\)$"):
        inspect(make_dicom())


def test_a_header_element_larger_than_the_limit_is_refused():
    data = make_dicom()
    big = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 17 * _MB) + bytes(17 * _MB)
    with pytest.raises(ImagingError, match=r"^element \(0009,1010\) is 18 MB \(limit 17 MB"):
        inspect(_insert_before_pixels(data, big))


def test_an_element_longer_than_the_file_is_refused():
    tail = struct.pack("<HH2sHI", 0x7FE1, 0x1010, b"OB", 0, 1_000_000) + b"0123456789"
    with pytest.raises(ImagingError, match=r"^element \(7FE1,1010\) says it holds 1,000,000 "
                                           r"bytes but the file ends after 10 of them"):
        inspect(make_dicom() + tail)


def test_an_undefined_length_on_an_element_that_is_not_a_sequence_is_refused():
    odd = (struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 0xFFFFFFFF) + b"abcd"
           + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    with pytest.raises(ImagingError, match=r"^element \(0009,1010\) has an undefined length"):
        inspect(_insert_before_pixels(make_dicom(), odd))


def _insert_before_pixels(data: bytes, element: bytes) -> bytes:
    """``data`` with an encoded explicit-VR element put just before (7FE0,0010)."""
    at = data.rindex(b"\xe0\x7f\x10\x00")
    return data[:at] + element + data[at:]
