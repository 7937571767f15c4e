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
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from extensions import db
from models import LinkedStudy, ReferralEvent
from tests.images.conftest import HEAD_CT_DIR, SAMPLE_STUDY
from tests.paging.helpers import REFERRER, raise_stroke, stroke_payload, user
from tests.workflow.helpers import bearer
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
    studies.link(referral.id, user(REFERRER), "PIL", [SAMPLE_STUDY],
                 confirm_reason="the outside test's case")
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


# --- Linking a study whose patient disagrees needs a confirmation with a reason ---------


def _linked(referral_id: int) -> list[str]:
    db.session.expire_all()
    return [s.study_uid for s in db.session.scalars(
        select(LinkedStudy).where(LinkedStudy.referral_id == referral_id))]


def _events(referral_id: int) -> list[ReferralEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.seq)))


def born_1951(matching_study):
    """A referral filed under the test study's local number, for SMITH born 1951-03-14:
    the study (SMITH, born 1950-01-01) disagrees on the birth date alone."""
    patient = dict(stroke_payload()["patient"], local_number="GH-IDENTITY-1",
                   birth_date="1951-03-14")
    return raise_stroke(patient=patient)


def test_the_refusal_names_both_sides():
    sentence = identity.both_sides(referral_for(local_number=""), {
        "modalities": ["CT"], "patient_id": "X1",
        "patient": {"name": "SMITH^ANN", "birth_date": "19500101", "sex": "F"}})
    assert sentence == ("this CT is for SMITH, born 1950-01-01, sex F, patient ID X1; the "
                        "referral is for SMITH, born 1951-03-14, sex F, NHS 943 476 5919")


@pytest.mark.orthanc
def test_a_mismatched_study_is_refused_and_nothing_is_linked(matching_study):
    referral = born_1951(matching_study)
    with pytest.raises(identity.PatientMismatch) as refused:
        studies.link(referral.id, user(REFERRER), "PIL", [matching_study])
    assert ("This CT is for SMITH, born 1950-01-01, sex F, patient ID GH-IDENTITY-1; the "
            "referral is for SMITH, born 1951-03-14, sex F") in str(refused.value)
    [mismatch] = refused.value.mismatches
    assert mismatch.fields == ("birth_date",)
    assert _linked(referral.id) == []
    assert "studies_linked" not in [e.kind for e in _events(referral.id)]


@pytest.mark.orthanc
def test_the_api_refuses_a_mismatched_study_until_confirmed_with_a_reason(
        matching_study, client, runner):
    referral = born_1951(matching_study)
    url = f"/api/v1/referrals/{referral.id}/studies"
    body = {"hospital": "PIL", "study_uids": [matching_study]}
    refused = client.post(url, json=body, headers=bearer(REFERRER))
    assert refused.status_code == 409
    assert "the referral is for SMITH, born 1951-03-14" in refused.json["error"]
    [found] = refused.json["patient_mismatch"]
    assert found["study_uid"] == matching_study and found["fields"] == ["birth_date"]
    assert found["message"].startswith("this CT is for SMITH, born 1950-01-01")
    assert _linked(referral.id) == []

    no_reason = client.post(url, json={**body, "confirm_identity": True, "identity_reason": " "},
                            headers=bearer(REFERRER))
    assert no_reason.status_code == 422 and "identity_reason" in no_reason.json["errors"]
    assert _linked(referral.id) == []

    reason = "Birth date mistyped at booking; wristband and CT label checked with the nurse"
    linked = client.post(url, json={**body, "confirm_identity": True,
                                    "identity_reason": reason}, headers=bearer(REFERRER))
    assert linked.status_code == 201
    assert _linked(referral.id) == [matching_study]
    event = _events(referral.id)[-1]
    assert event.kind == "studies_linked" and event.reason == reason
    assert event.actor_id == user(REFERRER).id
    [confirmed] = event.data["identity_confirmed"]["studies"]
    assert confirmed["study_uid"] == matching_study and confirmed["fields"] == ["birth_date"]
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0

    # The banner stays, and says who confirmed it and why.
    client.login(REFERRER, PASSWORD)
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "identity-warning" in page and "born 1950-01-01" in page
    assert f"confirmed: “{reason}”" in page


@pytest.mark.orthanc
def test_the_form_asks_to_confirm_a_mismatched_study(matching_study, client, runner):
    referral = born_1951(matching_study)
    client.login(REFERRER, PASSWORD)
    url = f"/referrals/{referral.id}/studies"
    asked = client.post(url, data={"study": f"PIL|{matching_study}"})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 409
    assert "nothing was linked" in page
    assert "This CT is for SMITH, born 1950-01-01" in page
    assert "the referral is for SMITH, born 1951-03-14" in page
    assert f'name="study" value="PIL|{matching_study}"' in page
    assert 'name="identity_reason"' in page
    assert _linked(referral.id) == []

    empty = client.post(url, data={"study": f"PIL|{matching_study}",
                                   "confirm_identity": "yes", "identity_reason": ""})
    assert empty.status_code == 422
    assert "Say why you are sure" in empty.get_data(as_text=True)
    assert _linked(referral.id) == []

    done = client.post(url, data={"study": f"PIL|{matching_study}", "confirm_identity": "yes",
                                  "identity_reason": "Same patient: checked the wristband"})
    assert done.status_code == 302
    assert _linked(referral.id) == [matching_study]
    event = _events(referral.id)[-1]
    assert event.reason == "Same patient: checked the wristband"
    assert event.data["identity_confirmed"]["studies"][0]["fields"] == ["birth_date"]
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "identity-warning" in page and "checked the wristband" in page


@pytest.mark.orthanc
def test_a_matching_study_links_directly_by_the_api_and_the_form(matching_study, client):
    patient = dict(stroke_payload()["patient"], local_number="GH-IDENTITY-1")
    referral = raise_stroke(patient=patient)
    linked = client.post(f"/api/v1/referrals/{referral.id}/studies",
                         json={"hospital": "PIL", "study_uids": [matching_study]},
                         headers=bearer(REFERRER))
    assert linked.status_code == 201
    event = _events(referral.id)[-1]
    assert event.kind == "studies_linked" and "identity_confirmed" not in event.data
    again = raise_stroke(patient=patient)
    client.login(REFERRER, PASSWORD)
    assert client.post(f"/referrals/{again.id}/studies",
                       data={"study": f"PIL|{matching_study}"}).status_code == 302
    assert _linked(again.id) == [matching_study]


@pytest.mark.orthanc
def test_an_upload_for_another_patient_stores_nothing_until_confirmed(pilgrim, client):
    from tests.images.conftest import today_study_files

    referral = raise_stroke()  # SMITH; the files are the sample patient's (REMOVED)
    files = today_study_files(2)
    study_uid = pydicom.dcmread(io.BytesIO(files[0])).StudyInstanceUID
    client.login(REFERRER, PASSWORD)
    url = f"/referrals/{referral.id}/studies/upload"

    def send(**form):
        # Encoded in memory: the test client would spool the body to a file it never
        # closes (as in test_upload_prefetch).
        fields = MultiDict([("files", FileStorage(io.BytesIO(f), filename=f"{n}.dcm"))
                            for n, f in enumerate(files)] + list(form.items()))
        boundary, body = encode_multipart(fields)
        return client.post(url, data=body, headers={"Accept": "application/json"},
                           content_type=f"multipart/form-data; boundary={boundary}")

    refused = send()
    assert refused.status_code == 409
    assert "it is for REMOVED, the referral for SMITH" in \
        refused.json["patient_mismatch"][0]["disagreements"]
    in_pacs = requests.post(f"{pilgrim.rest_url}/tools/lookup", data=study_uid,
                            auth=pilgrim.auth, timeout=10).json()
    assert in_pacs == []  # nothing half-stored
    assert _linked(referral.id) == []

    stored = send(confirm_identity="yes", identity_reason="Anonymised export of our CT")
    assert stored.status_code == 200 and stored.json["linked"] == [study_uid]
    assert _events(referral.id)[-1].reason == "Anonymised export of our CT"


@pytest.mark.orthanc
def test_one_mismatched_study_holds_its_hospitals_others_for_the_confirmation(
        matching_study, client):
    """A hospital's ticked studies link all or none: the confirmation page sends them all
    again, the matching one too."""
    patient = dict(stroke_payload()["patient"], local_number="GH-IDENTITY-1")
    referral = raise_stroke(patient=patient)
    client.login(REFERRER, PASSWORD)
    url = f"/referrals/{referral.id}/studies"
    chosen = [f"PIL|{matching_study}", f"PIL|{SAMPLE_STUDY}"]
    asked = client.post(url, data={"study": chosen})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 409 and _linked(referral.id) == []
    assert page.count("identity-mismatch") == 1 and "This CT is for REMOVED" in page
    for value in chosen:
        assert f'name="study" value="{value}"' in page
    done = client.post(url, data={"study": chosen, "confirm_identity": "yes",
                                  "identity_reason": "Anonymised copy of tonight's CT"})
    assert done.status_code == 302
    assert sorted(_linked(referral.id)) == sorted([matching_study, SAMPLE_STUDY])
    [confirmed] = _events(referral.id)[-1].data["identity_confirmed"]["studies"]
    assert confirmed["study_uid"] == SAMPLE_STUDY  # only the one that disagreed
