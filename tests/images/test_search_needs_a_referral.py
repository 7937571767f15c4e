"""The hospitals' PACS are searched only for a referral's patient or for the patient a
referral is being raised for, never for a patient id alone; every search, and every
refusal, is in the access log with its reason."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from extensions import db
from models import AccessLog
from tests.images.conftest import PATIENT_ID, SAMPLE_STUDY
from tests.workflow.helpers import OTHER_REFERRER, REFERRER, bearer

pytestmark = pytest.mark.orthanc
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


@pytest.fixture
def patient_ids_asked(monkeypatch):
    """The PatientID of every QIDO-RS study search the app sends to a PACS."""
    asked: list[str] = []
    real = requests.Session.request

    def recording(self, method, url, *args, **kwargs):
        if url.endswith("/dicom-web/studies") and method == "GET":
            asked.extend(v for k, v in kwargs.get("params") or [] if k == "PatientID")
        return real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    return asked


def search_rows() -> list[AccessLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AccessLog).where(
        AccessLog.action == "studies.search").order_by(AccessLog.id)))


@pytest.mark.parametrize("query", [f"patient_id={PATIENT_ID}", "nhs_number=9434765919",
                                   "accession=A1", ""])
def test_a_search_with_no_referral_is_refused_and_logged(referral, client, patient_ids_asked,
                                                        query):
    answer = client.get(f"/api/v1/studies?{query}", headers=bearer(REFERRER))
    assert answer.status_code == 422
    [message] = answer.json["errors"].values()
    assert "only for a referral's patient (referral=<id>)" in message
    assert patient_ids_asked == []
    [row] = search_rows()
    assert row.outcome == "failure" and "searched only for a referral's patient" in row.detail


def test_a_referrals_search_uses_its_patients_identifiers_and_is_logged(
        referral, client, patient_ids_asked):
    answer = client.get(f"/api/v1/studies?referral={referral.id}", headers=bearer(REFERRER))
    assert answer.status_code == 200
    assert SAMPLE_STUDY in [s["study_uid"] for s in answer.json["studies"]]
    assert sorted(set(patient_ids_asked)) == sorted(["9434765919", PATIENT_ID])
    [row] = search_rows()
    assert (row.outcome, row.referral_id) == ("ok", referral.id)
    assert row.detail.startswith(f"for referral {referral.reference}: ")
    # A patient id beside the referral is not searched either.
    assert client.get(f"/api/v1/studies?referral={referral.id}&patient_id=SOMEONE-ELSE",
                      headers=bearer(REFERRER)).status_code == 422
    assert "SOMEONE-ELSE" not in patient_ids_asked


@pytest.mark.parametrize("given", ["37811317568", "0", "-1", "1e3"])
def test_a_referral_id_out_of_range_is_refused_and_logged_not_a_500(
        referral, client, patient_ids_asked, given):
    # Found by tests/fuzz/test_api_cross_hospital.py: an id past PostgreSQL's integer
    # reached the access-log row and failed its insert (a 500).
    answer = client.get(f"/api/v1/studies?referral={given}", headers=bearer(REFERRER))
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert answer.json["errors"]["referral"] == \
        "A referral id (a whole number from 1 to 2147483647)."
    assert patient_ids_asked == []
    [row] = search_rows()
    assert (row.outcome, row.referral_id) == ("failure", None)


def test_another_hospitals_referral_cannot_be_searched_for(referral, client,
                                                          patient_ids_asked):
    answer = client.get(f"/api/v1/studies?referral={referral.id}",
                        headers=bearer(OTHER_REFERRER))
    assert answer.status_code == 403
    assert patient_ids_asked == []
    [row] = search_rows()
    assert (row.outcome, row.referral_id) == ("denied", referral.id)


def test_raising_a_referral_searches_the_nhs_number_being_entered(pilgrim, client,
                                                                 patient_ids_asked):
    answer = client.get("/api/v1/studies?reason=raising_referral&nhs_number=943+476+5919"
                        f"&local_number={PATIENT_ID}", headers=bearer(REFERRER))
    assert answer.status_code == 200
    assert SAMPLE_STUDY in [s["study_uid"] for s in answer.json["studies"]]
    assert sorted(set(patient_ids_asked)) == sorted(["9434765919", PATIENT_ID])
    [row] = search_rows()
    assert row.outcome == "ok" and row.referral_id is None
    assert row.detail.startswith("raising a referral for NHS 9434765919: ")


@pytest.mark.parametrize("nhs, who, status", [
    ("", REFERRER, 422), ("9434765918", REFERRER, 422),  # none, or a wrong check digit
    ("9434765919", SPECIALIST, 403),  # specialists do not raise referrals
])
def test_raising_needs_a_valid_nhs_number_and_a_referrer(pilgrim, client, patient_ids_asked,
                                                        nhs, who, status):
    answer = client.get(f"/api/v1/studies?reason=raising_referral&nhs_number={nhs}"
                        f"&local_number={PATIENT_ID}", headers=bearer(who))
    assert answer.status_code == status
    assert patient_ids_asked == []
    [row] = search_rows()
    assert row.outcome == ("denied" if status == 403 else "failure")


def test_the_referral_pages_search_is_for_its_patient_and_logged(referral, client,
                                                                 patient_ids_asked):
    client.login(REFERRER, "goldenhour-demo")
    page = client.get(f"/referrals/{referral.id}/studies/search?patient_id=SOMEONE-ELSE")
    assert page.status_code == 200 and SAMPLE_STUDY in page.get_data(as_text=True)
    assert "SOMEONE-ELSE" not in patient_ids_asked
    assert sorted(set(patient_ids_asked)) == sorted(["9434765919", PATIENT_ID])
    [row] = search_rows()
    assert (row.outcome, row.referral_id) == ("ok", referral.id)
    assert row.detail.startswith(f"for referral {referral.reference}: ")
