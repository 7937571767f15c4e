"""Fixtures for the image tests: the demo network with Pilgrim's PACS on the test Orthanc.

The sample 28-slice head CT (no study date) is in the PACS, and a small second study
of the same patient dated today, so that "newest first" and "today" can be seen.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid
from sqlalchemy import select

from extensions import db
from models import Hospital, PacsEndpoint, Referral
from tests.paging.helpers import raise_stroke, stroke_payload
from tests.services.orthanc import HEAD_CT_DIR
from workflow.times import local, now

PATIENT_ID = "QMNx85rKkkg"  # the sample series' Patient ID
SAMPLE_FAMILY_NAME = "Removed"  # its PatientName is "REMOVED"; no birth date or sex
SAMPLE_STUDY = "1.2.826.0.1.3680043.9.4245.1760717064491086528325869788156915668"
TODAY_STUDY_DESCRIPTION = "CT angiogram (today)"


def uk_today() -> str:
    """Today's date in the UK (what the product calls today), as DICOM writes it: the
    machine's own time zone may be another."""
    return local(now()).strftime("%Y%m%d")


def today_study_files(count: int = 3) -> list[bytes]:
    """Copies of the first slices as a new study taken today (new UIDs throughout)."""
    study, series = generate_uid(), generate_uid()
    files = []
    for path in sorted(HEAD_CT_DIR.glob("*.dcm"))[:count]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate = uk_today()
        ds.StudyTime = "031500"
        ds.StudyDescription = TODAY_STUDY_DESCRIPTION
        ds.SeriesDescription = "CTA head"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


def _has_today_study(orthanc) -> bool:
    answer = requests.get(f"{orthanc.base_url}/studies",
                          params={"PatientID": PATIENT_ID, "StudyDate": uk_today()},
                          auth=orthanc.auth, timeout=5)
    return bool(answer.content and answer.json())


def _remove_added_studies(orthanc) -> None:
    """Delete every study of the sample patient but the sample itself (other tests
    sharing this Orthanc expect the patient to have exactly one study)."""
    orthanc.start()
    found = requests.get(f"{orthanc.base_url}/studies", params={"PatientID": PATIENT_ID},
                         auth=orthanc.auth, timeout=10)
    for item in (found.json() if found.content else []):
        uid = item["0020000D"]["Value"][0]
        if uid == SAMPLE_STUDY:
            continue
        for hit in requests.post(f"{orthanc.rest_url}/tools/lookup", data=uid,
                                 auth=orthanc.auth, timeout=10).json():
            if hit["Type"] == "Study":
                requests.delete(f"{orthanc.rest_url}/studies/{hit['ID']}", auth=orthanc.auth,
                                timeout=10)


@pytest.fixture
def pacs(running_orthanc):
    """The worker's Orthanc holding the sample study and today's study (removed after)."""
    running_orthanc.load_samples()
    if not _has_today_study(running_orthanc):
        for data in today_study_files():
            requests.post(f"{running_orthanc.rest_url}/instances", data=data,
                          auth=running_orthanc.auth, timeout=10).raise_for_status()
    yield running_orthanc
    _remove_added_studies(running_orthanc)


def point_pilgrim_at(base_url: str, *, auth=("goldenhour", "test-pacs-password"),
                     timeout: float = 5.0, code: str = "PIL") -> PacsEndpoint:
    hospital = db.session.scalar(select(Hospital).where(Hospital.code == code))
    endpoint = hospital.pacs or PacsEndpoint(hospital=hospital)
    endpoint.base_url = base_url
    endpoint.auth_type = "basic"
    endpoint.username, endpoint.secret = auth
    endpoint.timeout_seconds = timeout
    endpoint.viewer_url_template = "https://pacs.pilgrim.example/viewer?study={study_uid}"
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


@pytest.fixture
def pilgrim(network, pacs):
    """Pilgrim Hospital's PACS endpoint pointing at the test Orthanc."""
    point_pilgrim_at(pacs.base_url)
    return pacs


@pytest.fixture
def referral(pilgrim) -> Referral:
    """A stroke referral from Pilgrim for the sample's patient: its local number, and
    the family name the anonymised sample carries (so its studies link without a
    patient-mismatch confirmation)."""
    patient = dict(stroke_payload()["patient"], local_number=PATIENT_ID,
                   family_name=SAMPLE_FAMILY_NAME)
    return raise_stroke(patient=patient)


def cold_caches() -> None:
    """Empty the image caches of the app, once the prefetch a link started has ended
    (linking warms the images at once): the next frame is rendered from the PACS."""
    from flask import current_app

    from workflow.imaging import frames

    frames.wait_for_prefetch(60)
    current_app.extensions.pop("goldenhour.image_caches", None)
    shutil.rmtree(Path(current_app.instance_path) / "image-cache", ignore_errors=True)


@pytest.fixture
def pacs_requests(monkeypatch):
    """Every DICOMweb request the app sends (method and URL), whichever client sends it."""
    sent: list[str] = []
    real = requests.Session.request

    def recording(self, method, url, *args, **kwargs):
        if "/dicom-web" in url:
            sent.append(f"{method} {url}")
        return real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    return sent
