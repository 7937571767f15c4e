"""New scans announced: a study stored in the PACS after the referral is found by one
poll, offered on the referral page, linked with one tap, and the milestone is set."""

from __future__ import annotations

import io
from datetime import timedelta

import pydicom
import pytest
import requests
from sqlalchemy import select

from extensions import db
from models import LinkedStudy, OfferedStudy, Page, Referral, ReferralEvent
from tests.images.conftest import SAMPLE_FAMILY_NAME, today_study_files
from tests.images.test_search_link_render import PASSWORD, SPECIALIST
from tests.paging.helpers import REFERRER, user
from workflow.imaging import arrivals, frames
from workflow.referrals import actions as referrals
from workflow.times import now as utcnow

pytestmark = pytest.mark.orthanc
RAISED = "2026-11-29T10:00:00+00:00"  # 10:00 in the UK (GMT); the fixture's study is 03:15
SAMPLE_FAMILY = SAMPLE_FAMILY_NAME.upper()  # the sample CT's PatientName, as the referral has it


def cta_taken_at(orthanc, hhmmss: str, *, family=SAMPLE_FAMILY,
                 study_uid: str | None = None) -> str:
    """Store a 3-slice CTA of the referral's patient taken at ``hhmmss`` (UK) today (or
    3 more slices, as a new series, of the study ``study_uid``)."""
    files = []
    for data in today_study_files():
        ds = pydicom.dcmread(io.BytesIO(data))
        if study_uid:
            ds.StudyInstanceUID = study_uid
        ds.StudyTime = ds.SeriesTime = hhmmss
        ds.StudyDescription = "CTA head"
        ds.PatientName = f"{family}^ANN"
        ds.PatientBirthDate, ds.PatientSex = "19500101", "F"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    for data in files:
        requests.post(f"{orthanc.rest_url}/instances", data=data, auth=orthanc.auth,
                      timeout=10).raise_for_status()
    return pydicom.dcmread(io.BytesIO(files[0])).StudyInstanceUID


@pytest.mark.clock(RAISED)
def test_a_study_stored_after_the_referral_is_offered_and_linked_with_one_tap(
        referral, client, pilgrim, clock):
    referrals.acknowledge(referral.id, user(SPECIALIST))
    assert arrivals.poll() == 0  # only the study from before the referral is there
    assert db.session.scalar(select(OfferedStudy)) is None

    clock.move_to(utcnow() + timedelta(minutes=12), tick=False)
    study_uid = cta_taken_at(pilgrim, "101000")  # 10 minutes after the referral
    polled_at = utcnow()
    assert arrivals.poll() == 1
    offer = db.session.scalar(select(OfferedStudy))
    assert (offer.study_uid, offer.description, offer.warning) == (study_uid, "CTA head", "")
    assert db.session.get(Referral, referral.id).images_arrived_at == polled_at
    notice = db.session.scalar(select(Page).where(Page.referral_id == referral.id,
                                                  Page.text.like("New images from%")))
    assert notice.who == f"user:{user(SPECIALIST).id}" and notice.channels == ["in_app"]
    assert "Pilgrim Hospital" in notice.text and "CTA head" in notice.text

    assert arrivals.poll() == 0  # asked at most every 30 s
    clock.move_to(utcnow() + timedelta(seconds=31), tick=False)
    assert arrivals.poll() == 0  # asked again: nothing new, nothing offered twice

    client.login(REFERRER, PASSWORD)
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "New images from Pilgrim Hospital:</strong> CTA head, 2 min ago" in page
    answer = client.post(f"/referrals/{referral.id}/offered/{offer.id}/link")
    assert answer.status_code == 302
    frames.wait_for_prefetch()
    linked = db.session.scalar(select(LinkedStudy).where(LinkedStudy.referral_id == referral.id,
                                                         LinkedStudy.study_uid == study_uid))
    assert linked is not None and linked.instance_count == 3
    assert db.session.scalar(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral.id, ReferralEvent.kind == "studies_linked"))
    db.session.expire_all()
    assert db.session.get(OfferedStudy, offer.id).status == "linked"
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "New images from" not in page and "CTA head" in page
    # The milestone stays the first arrival, and the decision record carries it.
    assert db.session.get(Referral, referral.id).images_arrived_at == polled_at
    from models import DecisionRecord
    from tests.workflow.helpers import SIGNED

    referrals.decide(referral.id, user(SPECIALIST), {
        "outcome": "advice_only", "advice": "Repeat CT", "rationale": "No bleed", **SIGNED})
    record = db.session.scalar(select(DecisionRecord))
    assert record.content["images_arrived_at"] == polled_at.isoformat()


@pytest.mark.clock(RAISED)
def test_a_new_study_filed_under_another_name_is_offered_with_the_identity_warning(
        referral, pilgrim, clock):
    clock.move_to(utcnow() + timedelta(minutes=12), tick=False)
    cta_taken_at(pilgrim, "100500", family="JONES")
    assert arrivals.poll() == 1
    offer = db.session.scalar(select(OfferedStudy))
    assert offer.warning.startswith("Check the patient: it is for JONES, the referral for "
                                    "REMOVED")


def test_an_offer_of_another_referral_cannot_be_linked(referral, client):
    client.login(REFERRER, PASSWORD)
    answer = client.post(f"/referrals/{referral.id}/offered/999/link")
    assert answer.status_code == 404
    assert db.session.scalar(select(LinkedStudy)) is None


def test_the_scheduler_looks_for_new_images_every_30_seconds(app):
    from apscheduler.schedulers.background import BackgroundScheduler
    from flask import current_app

    from workflow import scheduler

    background = BackgroundScheduler()
    scheduler._add_job(background, current_app._get_current_object())
    job = background.get_job("images")
    assert job is not None and job.trigger.interval == timedelta(seconds=30)
    assert job.func is scheduler._images


@pytest.mark.clock(RAISED)
def test_a_study_still_arriving_when_linked_is_flagged_until_linked_again(
        referral, client, pilgrim, clock):
    """Hazard: a decision made on incomplete imaging. The CTA was linked after its first
    3 images; 3 more reach the PACS: the referral page and the viewer say the study is
    still arriving, with both counts, until it is linked again."""
    referrals.acknowledge(referral.id, user(SPECIALIST))
    clock.move_to(utcnow() + timedelta(minutes=12), tick=False)
    study_uid = cta_taken_at(pilgrim, "101000")
    assert arrivals.poll() == 1
    offer = db.session.scalar(select(OfferedStudy))
    client.login(SPECIALIST, PASSWORD)
    assert client.post(f"/referrals/{referral.id}/offered/{offer.id}/link").status_code == 302
    frames.wait_for_prefetch()
    clock.move_to(utcnow() + timedelta(seconds=31), tick=False)
    assert arrivals.poll() == 0
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "still arriving" not in page  # the PACS holds what was linked

    cta_taken_at(pilgrim, "101000", study_uid=study_uid)  # the rest of the CTA
    clock.move_to(utcnow() + timedelta(seconds=31), tick=False)
    assert arrivals.poll() == 0  # not offered again: it is linked
    warning = ("This study was still arriving: the PACS now holds 6 images, 3 when it was "
               "linked. Link it again to see them all before deciding.")
    assert warning in client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert warning in client.get(f"/referrals/{referral.id}/review").get_data(as_text=True)

    answer = client.post(f"/referrals/{referral.id}/studies",
                         data={"study": f"PIL|{study_uid}"})  # the banner's "Link it again"
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    frames.wait_for_prefetch()
    db.session.expire_all()
    linked = db.session.scalar(select(LinkedStudy).where(LinkedStudy.study_uid == study_uid))
    assert linked.instance_count == 6
    assert "still arriving" not in client.get(f"/referrals/{referral.id}").get_data(as_text=True)
