"""An upload the PACS refuses is reported in the PACS's own words (the real Orthanc)."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from integrations.pacs import DicomWebClient, PacsError
from tests.integrations.dicom_factory import make_dicom

pytestmark = pytest.mark.orthanc


def pacs_client(orthanc) -> DicomWebClient:
    return DicomWebClient(orthanc.base_url, name="Pilgrim", auth=orthanc.auth, retries=0)


def without(keyword: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((4, 4), np.uint16))))
    delattr(ds, keyword)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_a_file_orthanc_cannot_parse_is_refused_with_orthancs_reason(running_orthanc):
    good = make_dicom(np.zeros((4, 4), np.uint16))
    results = pacs_client(running_orthanc).store([("scan.dcm", b"DICM but not really"),
                                                  ("good.dcm", good)])
    refused, stored = results
    assert stored.stored and not refused.stored
    assert refused.reason == ("the PACS refused it: Bad file format (Cannot parse an invalid "
                              "DICOM file (size: 19 bytes))")


def test_a_file_missing_a_mandatory_tag_says_which_kind_of_failure(running_orthanc):
    [result] = pacs_client(running_orthanc).store([("no_study.dcm",
                                                    without("StudyInstanceUID"))])
    assert not result.stored
    assert result.reason.startswith("the PACS cannot understand the file: ")
    assert "Inexistent tag" in result.reason and "gave no reason" not in result.reason


def test_a_refused_whole_request_carries_orthancs_message(running_orthanc):
    pacs = pacs_client(running_orthanc)
    with pytest.raises(PacsError) as failed:
        pacs._request("POST", "../instances", data=b"junk",
                      headers={"Content-Type": "application/dicom"})
    assert failed.value.status == 400
    assert failed.value.message == ("Pilgrim PACS answered 400: Bad file format (Cannot "
                                    "parse an invalid DICOM file (size: 4 bytes))")
