"""Input that once made a 500: dates past the calendar, ids past the database's integer,
upload errors that answered a JSON client with a redirect, and a missing study that
counted as a broken PACS."""

from __future__ import annotations

import io

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from extensions import db
from models import PacsEndpoint
from tests.paging.helpers import raise_stroke
from tests.workflow.helpers import ADMIN, AUDIT, REFERRER, bearer
from workflow.paging import rota

PASSWORD = "goldenhour-demo"
PUBLIC = "https://goldenhour.example.nhs.uk"
TWILIO_TOKEN = "test-twilio-auth-token"
HUGE = 99999999999999999999


@pytest.fixture
def app_config():
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PUBLIC_BASE_URL": PUBLIC}


@pytest.mark.parametrize("path", ["/audit/", "/audit/export/referrals.csv",
                                  "/audit/export/access-log.csv"])
@pytest.mark.parametrize("field", ["date_to", "date_from"])
def test_an_audit_date_at_the_end_of_the_calendar_is_named_not_a_500(network, client,
                                                                     path, field):
    client.login(AUDIT, PASSWORD)
    response = client.get(f"{path}?{field}=9999-12-31", buffered=True)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    assert "Choose a date from 1900-01-01 to 2999-12-31, not 9999-12-31." in text
    assert field in text


def test_a_rota_time_pushed_past_the_calendar_by_its_offset_is_a_bad_row(network, make_user):
    make_user(roles=["specialist"], hospital="QMC", specialties=["stroke"],
              email="day@qmc.nhs.uk")
    text = ("email,hub,specialty,tier,start,end\n"
            "day@qmc.nhs.uk,QMC,stroke,1,9999-12-31T20:00-05:00,9999-12-31T23:00-05:00\n")
    with pytest.raises(rota.RotaImportError) as caught:
        rota.import_csv(text)
    assert "is not a date and time" in caught.value.bad_rows[0].message


def test_a_signed_voice_webhook_with_a_delivery_id_too_big_for_the_database_is_a_400(
        network, client):
    path = f"/webhooks/twilio/voice?delivery={HUGE}"
    params = {"CallSid": "CA" + "1" * 32}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature},
                           csrf=False)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json == {"error": "delivery must be a page id from 1 to 2147483647"}


@pytest.mark.parametrize("path", [f"/admin/users/{HUGE}/password",
                                  f"/admin/escalation/{2**63}",
                                  f"/referrals/1/records/{2**63}.pdf",
                                  f"/api/v1/referrals/{HUGE}/fhir"])
def test_an_id_in_a_path_too_big_for_the_database_is_a_404(network, client, path):
    client.login(ADMIN, PASSWORD)
    response = client.get(path)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    assert client.post(f"/admin/users/{HUGE}/active", data={"active": "0"}).status_code == 404


def test_a_key_image_frame_too_big_for_the_database_is_named(network, client):
    referral = raise_stroke()
    client.login(REFERRER, PASSWORD)
    response = client.post(f"/referrals/{referral.id}/key-images",
                           json={"frame": HUGE, "study_uid": "1.2.3", "sop_uid": "1.2.3.4"})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert "frame must be from 1 to" in response.json["errors"]["frame"]


def _upload(client, referral_id, **kw):
    boundary, body = encode_multipart(MultiDict(
        [("files", FileStorage(io.BytesIO(b"not an image"), filename="a.dcm"))]))
    return client.post(f"/referrals/{referral_id}/studies/upload", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}",
                       headers={"Accept": "application/json"}, **kw)


def test_upload_errors_answer_a_json_client_in_json_with_their_status(network, client):
    referral = raise_stroke()
    client.login(REFERRER, PASSWORD)
    response = _upload(client, referral.id)  # Pilgrim has no PACS endpoint yet
    assert response.status_code == 422, response.headers.get("Location")
    assert response.json["errors"] == {
        "files": "Pilgrim Hospital has no PACS endpoint configured to store uploads."}
    client.logout()
    client.login(ADMIN, PASSWORD)
    refused = _upload(client, referral.id)
    assert refused.status_code in (403, 404), refused.headers.get("Location")
    assert refused.is_json and refused.json["error"]


@pytest.mark.orthanc
def test_linking_a_study_the_pacs_does_not_have_is_a_422_and_the_pacs_stays_healthy(
        network, running_orthanc, client):
    from tests.images.conftest import point_pilgrim_at

    point_pilgrim_at(running_orthanc.base_url)
    referral = raise_stroke()
    response = client.post(f"/api/v1/referrals/{referral.id}/studies",
                           json={"hospital": "PIL", "study_uids": ["1.2.826.0.1.999.1"]},
                           headers=bearer(REFERRER))
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.json["errors"] == {
        "study_uids": "Pilgrim Hospital PACS has no study 1.2.826.0.1.999.1."}
    db.session.expire_all()
    endpoint = db.session.query(PacsEndpoint).one()
    assert endpoint.last_error_at is None and endpoint.last_success_at is not None
    client.login(ADMIN, PASSWORD)
    status = client.get("/admin/status").get_data(as_text=True)
    assert "answering" in status and "failing" not in status
