"""A study, series or SOP instance UID is a DICOM UID at every entry point, or nothing is
asked of the PACS and nothing is stored: API bodies, form fields, URL path segments,
uploaded files and the PACS's own answers. Against the real Orthanc."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import func, select

from extensions import db
from integrations.dicom_uid import UID_PATTERN, InvalidUid, check_uid, is_uid
from integrations.pacs import DicomWebClient, PacsError
from models import Hospital, LinkedStudy
from tests.images.conftest import SAMPLE_STUDY
from tests.images.test_new_referral_images import form as new_referral_form
from tests.images.test_search_link_render import PASSWORD, SPECIALIST, link_sample, sops
from tests.images.test_upload_prefetch import upload
from tests.integrations.dicom_factory import make_dicom, make_hostile_dicom
from tests.paging.helpers import REFERRER
from workflow.imaging import frames

pytestmark = pytest.mark.orthanc
HOSTILE = "../studies?limit=5&x="  # asks the PACS for every study it holds
NOT_UIDS = [HOSTILE, "1.2.03.4", "1..2", ".1.2", "1.2.", "1" * 65, "1.2.3a", "1.2.3/../4",
            "1.2.3%2F..", "1.2.3\n"]
HOSTILE_PATIENT = "GH-HOSTILE-UIDS"


def linked_count() -> int:
    return db.session.scalar(select(func.count()).select_from(LinkedStudy))


# --- The validator -----------------------------------------------------------------------


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.1", "0", "2.25.0",
                                 "1.2.826.0.1.3680043.9.4245." + "1" * 37, SAMPLE_STUDY])
def test_a_well_formed_uid_is_accepted(uid):
    assert len(uid) <= 64 and is_uid(uid) and check_uid(uid, "study_uid") == uid


@pytest.mark.parametrize("uid", [*NOT_UIDS, "", "00.1", "1.2 ", None, 12])
def test_anything_else_is_refused_naming_the_field(uid):
    assert not is_uid(uid)
    with pytest.raises(InvalidUid) as refused:
        check_uid(uid, "series_uid")
    assert refused.value.message.startswith("series_uid is not a DICOM UID")


# --- API body, forms ------------------------------------------------------------------


@pytest.mark.parametrize("bad", NOT_UIDS, ids=repr)
def test_linking_a_study_uid_that_is_not_a_uid_is_a_422_naming_it_and_asks_nothing(
        referral, client, pacs_requests, bad):
    client.login(REFERRER, PASSWORD)
    answer = client.post(f"/api/v1/referrals/{referral.id}/studies",
                         json={"hospital": "PIL", "study_uids": [SAMPLE_STUDY, bad]})
    assert answer.status_code == 422, answer.get_json()
    errors = answer.get_json()["errors"]
    assert list(errors) == ["study_uids[1]"]
    assert errors["study_uids[1]"].startswith("study_uids[1] is not a DICOM UID")
    assert pacs_requests == []
    assert linked_count() == 0


def test_a_ticked_study_on_the_link_form_that_is_not_a_uid_is_named_and_asks_nothing(
        referral, client, pacs_requests):
    client.login(REFERRER, PASSWORD)
    page = client.post(f"/referrals/{referral.id}/studies", data={"study": f"PIL|{HOSTILE}"},
                       follow_redirects=True).get_data(as_text=True)
    assert "Not linked: study is not a DICOM UID" in page
    assert pacs_requests == []
    assert linked_count() == 0


def test_a_ticked_study_on_the_new_referral_form_that_is_not_a_uid_is_named(
        pilgrim, client, pacs_requests):
    client.login(REFERRER, PASSWORD)
    page = client.post("/referrals/new", data=new_referral_form(study=f"PIL|{HOSTILE}"),
                       follow_redirects=True).get_data(as_text=True)
    assert "raised" in page  # the referral itself goes out
    assert "Images not linked: study is not a DICOM UID" in page
    assert pacs_requests == []
    assert linked_count() == 0


@pytest.mark.parametrize("field", ["study_uid", "sop_uid"])
def test_flagging_a_key_image_with_a_uid_that_is_not_one_is_a_422_naming_it(
        referral, client, field):
    link_sample(referral)
    body = {"study_uid": SAMPLE_STUDY, "sop_uid": sops(referral.id)[0], field: HOSTILE}
    client.login(SPECIALIST, PASSWORD)
    answer = client.post(f"/referrals/{referral.id}/key-images", json=body,
                         headers={"Accept": "application/json"})
    assert answer.status_code == 422
    errors = answer.get_json()["errors"]
    assert list(errors) == [field] and errors[field].startswith(f"{field} is not a DICOM UID")


# --- URL path segments ---------------------------------------------------------------


@pytest.fixture
def legacy_link(referral):
    """A link stored before UIDs were checked: its UIDs are not UIDs."""
    hospital = db.session.scalar(select(Hospital).where(Hospital.code == "PIL"))
    bad = "1.2.03.4"
    db.session.add(LinkedStudy(
        referral_id=referral.id, study_uid=bad, hospital_id=hospital.id, description="",
        study_date="", modalities="CT", series_count=1, instance_count=1,
        snapshot={"study_uid": bad, "series": [{"series_uid": bad, "number": 1,
                                                "modality": "CT", "description": "",
                                                "instances": [{"sop_uid": bad, "frames": 1}]}]}))
    db.session.commit()
    return referral.id, bad


@pytest.mark.parametrize("route", ["instances/{uid}/rendered?preset=brain",
                                   "series/{uid}/rendered?first=1&count=1"])
def test_a_path_segment_that_is_not_a_uid_is_a_404_and_asks_nothing(
        legacy_link, client, pacs_requests, route):
    referral_id, bad = legacy_link
    client.login(SPECIALIST, PASSWORD)
    answer = client.get(f"/api/v1/referrals/{referral_id}/studies/{bad}/"
                        + route.format(uid=bad))
    assert answer.status_code == 404
    assert pacs_requests == []


@pytest.mark.parametrize("segment", ["1.2.03.4", "1.2.3x", "1..2"])
def test_a_bad_study_segment_before_a_good_sop_is_a_404(referral, client, pacs_requests,
                                                        segment):
    link_sample(referral)
    frames.wait_for_prefetch()  # the link's own warm-up asks the PACS
    pacs_requests.clear()
    client.login(SPECIALIST, PASSWORD)
    answer = client.get(f"/api/v1/referrals/{referral.id}/studies/{segment}/instances/"
                        f"{sops(referral.id)[0]}/rendered")
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "There is nothing at this address."
    assert pacs_requests == []


def test_the_api_document_gives_uid_parameters_the_pattern(client):
    document = client.get("/api/v1/openapi.json").get_json()
    path = "/api/v1/referrals/{referral_id}/studies/{study_uid}/series/{series_uid}/rendered"
    schemas = {p["name"]: p["schema"] for p in document["paths"][path]["get"]["parameters"]}
    assert schemas["study_uid"] == schemas["series_uid"] == {
        "type": "string", "pattern": UID_PATTERN, "maxLength": 64}


# --- Uploaded files --------------------------------------------------------------------


@pytest.mark.parametrize("keyword, label", [("StudyInstanceUID", "Study Instance UID"),
                                            ("SeriesInstanceUID", "Series Instance UID"),
                                            ("SOPInstanceUID", "SOP Instance UID")])
def test_an_uploaded_file_whose_uid_is_not_a_uid_is_refused_and_never_sent(
        referral, client, pilgrim, pacs_requests, keyword, label):
    before = pilgrim.instance_count()
    client.login(REFERRER, PASSWORD)
    answer = upload(client, referral.id, [("scan.dcm", make_hostile_dicom(**{keyword: HOSTILE}))])
    assert answer.status_code == 422
    assert answer.get_json()["rejected"] == [{
        "file": "scan.dcm", "reason": f"{label} is not a DICOM UID (got {HOSTILE!r})"}]
    assert pacs_requests == [] and pilgrim.instance_count() == before
    assert linked_count() == 0


def test_an_uploaded_file_without_a_study_uid_is_refused_before_the_pacs(
        referral, client, pacs_requests):
    client.login(REFERRER, PASSWORD)
    answer = upload(client, referral.id, [("scan.dcm", make_dicom(StudyInstanceUID=""))])
    assert answer.get_json()["rejected"] == [{"file": "scan.dcm",
                                              "reason": "no Study Instance UID in this file"}]
    assert pacs_requests == []


# --- What the PACS answers -------------------------------------------------------------


@pytest.fixture
def hostile_pacs(pilgrim):
    """Orthanc holding, for one patient, a study whose UID is a URL path and a good study
    with one good instance, one with a bad SOP Instance UID and one in a bad series."""
    good_study, good_series = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.1.1"
    files = [
        make_hostile_dicom(PatientID=HOSTILE_PATIENT, StudyInstanceUID=HOSTILE),
        make_dicom(PatientID=HOSTILE_PATIENT, StudyInstanceUID=good_study,
                   SeriesInstanceUID=good_series, SOPInstanceUID=good_series + ".1"),
        make_hostile_dicom(PatientID=HOSTILE_PATIENT, StudyInstanceUID=good_study,
                           SeriesInstanceUID=good_series, SOPInstanceUID="1.2.03.4"),
        make_hostile_dicom(PatientID=HOSTILE_PATIENT, StudyInstanceUID=good_study,
                           SeriesInstanceUID="1.2.3.?x=", SOPInstanceUID=good_series + ".2"),
    ]
    for data in files:
        requests.post(f"{pilgrim.rest_url}/instances", data=data, auth=pilgrim.auth,
                      timeout=10).raise_for_status()
    yield good_study, good_series
    for hit in requests.post(f"{pilgrim.rest_url}/tools/lookup", data=HOSTILE_PATIENT,
                             auth=pilgrim.auth, timeout=10).json():
        if hit["Type"] == "Patient":
            requests.delete(f"{pilgrim.rest_url}/patients/{hit['ID']}", auth=pilgrim.auth,
                            timeout=10)


def test_a_study_the_pacs_lists_under_a_uid_that_is_not_one_is_left_out(
        referral, client, hostile_pacs, pacs_requests):
    good_study, _ = hostile_pacs
    client.login(REFERRER, PASSWORD)
    found = client.get("/api/v1/studies?reason=raising_referral&nhs_number=9434765919"
                       f"&local_number={HOSTILE_PATIENT}").get_json()
    assert [s["study_uid"] for s in found["studies"]] == [good_study]
    # The search alone (one query per identifier: NHS number, local number).
    assert [r.split("/dicom-web")[1] for r in pacs_requests] == ["/studies", "/studies"]


def test_instances_the_pacs_describes_with_uids_that_are_not_uids_are_not_stored(
        referral, client, hostile_pacs):
    good_study, good_series = hostile_pacs
    client.login(REFERRER, PASSWORD)
    answer = client.post(f"/api/v1/referrals/{referral.id}/studies",
                         json={"hospital": "PIL", "study_uids": [good_study],
                               # the hostile PACS's patient is nobody's: linked anyway
                               "confirm_identity": True, "identity_reason": "test PACS"})
    assert answer.status_code == 201, answer.get_json()
    row = db.session.scalar(select(LinkedStudy).where(LinkedStudy.study_uid == good_study))
    assert [(s["series_uid"], [i["sop_uid"] for i in s["instances"]])
            for s in row.snapshot["series"]] == [(good_series, [good_series + ".1"])]
    assert row.instance_count == 1


# --- The DICOMweb client itself ---------------------------------------------------------


def test_the_pacs_client_refuses_to_put_a_non_uid_in_a_path(running_orthanc, pacs_requests):
    pacs = DicomWebClient(running_orthanc.base_url, name="Pilgrim", auth=running_orthanc.auth)
    calls = [lambda: pacs.series(HOSTILE), lambda: pacs.study_metadata(HOSTILE),
             lambda: pacs.instances(SAMPLE_STUDY, "1.2.03"),
             lambda: pacs.fetch_instance(SAMPLE_STUDY, SAMPLE_STUDY, "x/../../y"),
             lambda: pacs.fetch_frames(SAMPLE_STUDY, SAMPLE_STUDY, "..", [1])]
    for call in calls:
        with pytest.raises(PacsError) as refused:
            call()
        assert refused.value.permanent and "is not a DICOM UID" in refused.value.message
    assert pacs_requests == []
