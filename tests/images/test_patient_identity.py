"""The right patient's images: a linked study whose DICOM patient disagrees with the
referral is shown with a warning on the referral page and in the viewer."""

from __future__ import annotations

import io
from datetime import date
from types import SimpleNamespace

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.images.conftest import HEAD_CT_DIR, SAMPLE_STUDY
from tests.paging.helpers import REFERRER, raise_stroke, stroke_payload, user
from workflow.imaging import identity, studies

PASSWORD = "goldenhour-demo"


def referral_for(**over):
    values = {"nhs_number": "9434765919", "local_number": "PIL123", "family_name": "Smith",
              "birth_date": date(1951, 3, 14), "sex": "female", **over}
    return SimpleNamespace(**values)


def snapshot(patient_id="9434765919", **patient):
    return {"patient_id": patient_id,
            "patient": {"name": "", "birth_date": "", "sex": "", "other_ids": [], **patient}}


def test_the_same_patient_has_nothing_to_say():
    assert identity.disagreements(referral_for(), snapshot(
        "943 476 5919", name="SMITH^ANN", birth_date="19510314", sex="F")) == []
    # Filed under the local number, or with the NHS number among the other IDs.
    assert identity.disagreements(referral_for(), snapshot("pil123")) == []
    assert identity.disagreements(referral_for(), snapshot(
        "X1", other_ids=["9434765919"])) == []


def test_each_disagreement_is_named():
    found = identity.disagreements(referral_for(), snapshot(
        "QMNx85rKkkg", name="JONES^ANN", birth_date="19500101", sex="M"))
    assert found == [
        "its patient ID (QMNX85RKKKG) is neither the referral's NHS number nor its "
        "local number",
        "it is for JONES, the referral for SMITH",
        "born 1950-01-01; the referral's patient was born 1951-03-14",
        "sex M; the referral says female",
    ]


def test_what_the_study_leaves_empty_is_not_a_disagreement():
    assert identity.disagreements(referral_for(sex="unknown"), snapshot(
        birth_date="", sex="O", name="")) == []
    assert identity.disagreements(referral_for(), snapshot(birth_date="1951")) == []


@pytest.mark.orthanc
def test_another_patients_study_is_flagged_on_the_referral_and_in_the_viewer(pilgrim, client):
    """The outside test's case: the sample CT (PatientID QMNx85rKkkg) linked to a referral
    for NHS 943 476 5919 with no local number."""
    referral = raise_stroke()
    studies.link(referral.id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    client.login(REFERRER, PASSWORD)
    for path in (f"/referrals/{referral.id}", f"/referrals/{referral.id}/review"):
        page = client.get(path).get_data(as_text=True)
        assert "identity-warning" in page, path
        assert "Check the patient" in page and "QMNX85RKKKG" in page, path
        assert "it is for REMOVED, the referral for SMITH" in page, path


@pytest.fixture
def matching_study(pilgrim):
    """Three slices of the sample filed under a test patient whose details are the
    referral's (removed after)."""
    study = generate_uid()
    series = generate_uid()
    for path in sorted(HEAD_CT_DIR.glob("*.dcm"))[:3]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID, ds.PatientName = "GH-IDENTITY-1", "SMITH^ANN"
        ds.PatientBirthDate, ds.PatientSex = "19500101", "F"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        requests.post(f"{pilgrim.rest_url}/instances", data=out.getvalue(),
                      auth=pilgrim.auth, timeout=10).raise_for_status()
    yield study
    for hit in requests.post(f"{pilgrim.rest_url}/tools/lookup", data=study,
                             auth=pilgrim.auth, timeout=10).json():
        if hit["Type"] == "Study":
            requests.delete(f"{pilgrim.rest_url}/studies/{hit['ID']}", auth=pilgrim.auth,
                            timeout=10)


@pytest.mark.orthanc
def test_the_referrals_own_patient_is_not_flagged(matching_study, client):
    patient = dict(stroke_payload()["patient"], local_number="GH-IDENTITY-1")
    referral = raise_stroke(patient=patient)
    [row] = studies.link(referral.id, user(REFERRER), "PIL", [matching_study])
    assert row.snapshot["patient"] == {"name": "SMITH^ANN", "birth_date": "19500101",
                                       "sex": "F", "other_ids": []}
    client.login(REFERRER, PASSWORD)
    for path in (f"/referrals/{referral.id}", f"/referrals/{referral.id}/review"):
        page = client.get(path).get_data(as_text=True)
        assert "identity-warning" not in page, path
