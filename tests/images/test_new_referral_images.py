"""The new-referral form finds the patient's studies in the network's PACS and links the
ticked ones when the referral is sent, against the real Orthanc."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from extensions import db
from models import AccessLog, LinkedStudy, Referral, ReferralEvent
from tests.images.conftest import (
    PATIENT_ID,
    SAMPLE_FAMILY_NAME,
    SAMPLE_STUDY,
    TODAY_STUDY_DESCRIPTION,
    point_pilgrim_at,
)
from tests.paging.helpers import REFERRER
from tests.workflow.test_pages import field_error, stroke_form
from workflow.imaging import frames

pytestmark = pytest.mark.orthanc
PASSWORD = "goldenhour-demo"


def form(**over) -> dict:
    """The stroke form for the sample patient (the PACS files it under its local number,
    with the anonymised name)."""
    return stroke_form(**{"patient.local_number": PATIENT_ID,
                          "patient.family_name": SAMPLE_FAMILY_NAME, **over})


def study_boxes(page: str) -> list[tuple[str, bool]]:
    """(value, ticked) of each study checkbox, in page order."""
    return [(html.unescape(m.group(1)), bool(m.group(2))) for m in re.finditer(
        r'<input type="checkbox" name="study" value="([^"]+)"( checked)?>', page)]


def find_images(client, **over):
    return client.post("/referrals/new", data=form(find_studies="1", **over))


def test_find_images_lists_the_patients_studies_newest_first_with_todays_ticked(
        pilgrim, client):
    client.login(REFERRER, PASSWORD)
    answer = find_images(client)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    boxes = study_boxes(page)
    assert len(boxes) == 2
    (newest, newest_ticked), (oldest, oldest_ticked) = boxes
    assert newest.startswith("PIL|") and newest_ticked  # today's CTA, ticked
    assert oldest == f"PIL|{SAMPLE_STUDY}" and not oldest_ticked
    assert page.index(TODAY_STUDY_DESCRIPTION) < page.index("date not given")
    assert 'value="Ann"' in page  # the form keeps what was typed
    assert db.session.scalar(select(Referral)) is None  # searching sends nothing
    search = db.session.scalar(select(AccessLog).where(AccessLog.action == "studies.search"))
    assert search.outcome == "ok"
    assert search.detail.startswith("raising a referral for NHS 9434765919: 2 found")


def test_an_accession_number_is_searched_on_beside_the_nhs_number(pilgrim, client):
    client.login(REFERRER, PASSWORD)
    answer = find_images(client, **{"patient.nhs_number": "4010232137",
                                    "patient.local_number": "",
                                    "studies_accession": "ACC-NOT-FILED"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and study_boxes(page) == []
    assert "No studies found for this patient" in page


@pytest.mark.parametrize("nhs", ["", "943 476 5918"])
def test_find_images_without_a_valid_nhs_number_searches_nothing(pilgrim, client,
                                                                 pacs_requests, nhs):
    """A local or accession number alone would search for anybody's study."""
    client.login(REFERRER, PASSWORD)
    answer = find_images(client, **{"patient.nhs_number": nhs,
                                    "studies_accession": "ACC-1"})
    assert answer.status_code == 200
    assert "Enter the patient's NHS number to find their images" in field_error(
        answer.get_data(as_text=True), "studies_accession")
    assert pacs_requests == []
    refused = db.session.scalar(select(AccessLog).where(AccessLog.action == "studies.search"))
    assert refused.outcome == "failure" and refused.detail.startswith("raising a referral")


def test_sending_the_form_raises_the_referral_and_links_the_ticked_studies(pilgrim, client):
    client.login(REFERRER, PASSWORD)
    [(today, _), (sample, _)] = study_boxes(find_images(client).get_data(as_text=True))
    answer = client.post("/referrals/new", data=form(study=[today, sample],
                                                     studies_searched="1"))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    frames.wait_for_prefetch(60)  # linking at raise warms the first slices
    referral = db.session.scalar(select(Referral))
    linked = {s.study_uid for s in db.session.scalars(
        select(LinkedStudy).where(LinkedStudy.referral_id == referral.id))}
    assert linked == {today.partition("|")[2], SAMPLE_STUDY}
    kinds = [e.kind for e in db.session.scalars(
        select(ReferralEvent).where(ReferralEvent.referral_id == referral.id)
        .order_by(ReferralEvent.seq))]
    assert kinds[:2] == ["raise", "studies_linked"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Referral {referral.reference} raised" in page and "2 studies linked." in page


def test_a_form_sent_back_for_a_bad_field_keeps_the_referrers_ticks(pilgrim, client):
    client.login(REFERRER, PASSWORD)
    answer = client.post("/referrals/new", data=form(
        study=[f"PIL|{SAMPLE_STUDY}"], studies_searched="1", **{"stroke.nihss": "99"}))
    assert answer.status_code == 422
    boxes = dict(study_boxes(answer.get_data(as_text=True)))
    assert boxes[f"PIL|{SAMPLE_STUDY}"] is True  # ticked by the referrer
    assert sum(boxes.values()) == 1  # today's study stays as the referrer left it
    assert db.session.scalar(select(Referral)) is None


def test_a_pacs_failing_at_send_still_raises_the_referral_and_says_whose_images(
        pilgrim, client, pacs_proxy):
    point_pilgrim_at(pacs_proxy.base_url)
    client.login(REFERRER, PASSWORD)
    [_, (sample, _)] = study_boxes(find_images(client).get_data(as_text=True))
    pacs_proxy.fail_status = 500
    answer = client.post("/referrals/new", data=form(study=[sample]))
    assert answer.status_code == 302
    referral = db.session.scalar(select(Referral))
    assert referral.state == "submitted"
    assert db.session.scalar(select(LinkedStudy)) is None
    page = html.unescape(client.get(answer.headers["Location"]).get_data(as_text=True))
    assert "Images not linked: images unavailable from Pilgrim Hospital" in page
    failure = db.session.scalar(select(AccessLog).where(AccessLog.action == "studies.link"))
    assert failure.outcome == "failure" and failure.referral_id == referral.id


def test_a_pacs_failing_at_search_is_named_and_the_form_still_sends(pilgrim, client,
                                                                    pacs_proxy):
    point_pilgrim_at(pacs_proxy.base_url)
    pacs_proxy.fail_status = 500
    client.login(REFERRER, PASSWORD)
    page = html.unescape(find_images(client).get_data(as_text=True))
    assert "Images unavailable from Pilgrim Hospital" in page
    assert "The referral can still be sent" in page
    assert client.post("/referrals/new", data=form()).status_code == 302
