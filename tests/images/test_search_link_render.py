"""Search, link and render against the real Orthanc."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from extensions import db
from models import AccessLog, LinkedStudy, Page, ReferralEvent
from tests.images.conftest import (
    PATIENT_ID,
    SAMPLE_STUDY,
    TODAY_STUDY_DESCRIPTION,
    cold_caches,
    point_pilgrim_at,
)
from tests.paging.helpers import REFERRER, user
from workflow.imaging import frames, studies
from workflow.referrals import actions as referrals

pytestmark = pytest.mark.orthanc
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
PASSWORD = "goldenhour-demo"


def link_sample(referral, who=REFERRER):
    return studies.link(referral.id, user(who), "PIL", [SAMPLE_STUDY])


def frame_url(referral_id, sop_uid, study_uid=SAMPLE_STUDY, **params):
    query = "&".join(f"{k}={v}" for k, v in {"frame": 1, "preset": "brain", "format": "png",
                                              **params}.items())
    return (f"/api/v1/referrals/{referral_id}/studies/{study_uid}/instances/{sop_uid}"
            f"/rendered?{query}")


def sops(referral_id):
    study = db.session.scalar(select(LinkedStudy).where(LinkedStudy.referral_id == referral_id,
                                                        LinkedStudy.study_uid == SAMPLE_STUDY))
    return [i["sop_uid"] for i in study.snapshot["series"][0]["instances"]]


def pixels(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("L"), dtype=np.int16)


def test_search_finds_the_sample_study_by_patient_id_newest_first(referral, client):
    client.login(REFERRER, PASSWORD)
    answer = client.get(f"/api/v1/studies?referral={referral.id}")
    assert answer.status_code == 200
    found = answer.get_json()
    assert found["unavailable"] == []
    uids = [s["study_uid"] for s in found["studies"]]
    assert SAMPLE_STUDY in uids
    newest = found["studies"][0]
    assert newest["description"] == TODAY_STUDY_DESCRIPTION and newest["today"] is True
    sample = found["studies"][uids.index(SAMPLE_STUDY)]
    assert sample["hospital_name"] == "Pilgrim Hospital" and sample["today"] is False
    assert sample["instance_count"] == 28


def test_search_page_pre_selects_todays_study(referral, client):
    client.login(REFERRER, PASSWORD)
    page = client.get(f"/referrals/{referral.id}/studies/search").get_data(as_text=True)
    assert TODAY_STUDY_DESCRIPTION in page
    assert page.count("checked") == 1


def test_linking_writes_an_event_and_a_snapshot(referral, client):
    client.login(REFERRER, PASSWORD)
    answer = client.post(f"/api/v1/referrals/{referral.id}/studies",
                         json={"hospital": "PIL", "study_uids": [SAMPLE_STUDY]})
    assert answer.status_code == 201, answer.get_json()
    series = answer.get_json()["studies"][0]["series"]
    assert len(series[0]["instances"]) == 28
    row = db.session.scalar(select(LinkedStudy).where(LinkedStudy.referral_id == referral.id))
    assert (row.study_uid, row.instance_count, row.series_count) == (SAMPLE_STUDY, 28, 1)
    assert row.modalities == "CT" and row.snapshot["patient_id"] == PATIENT_ID
    event = db.session.scalar(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral.id, ReferralEvent.kind == "studies_linked"))
    assert event.data["studies"][0]["study_uid"] == SAMPLE_STUDY
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Review images" in page and "Images linked" in page


def test_linking_more_later_tells_the_assigned_specialist(referral):
    link_sample(referral)
    referrals.acknowledge(referral.id, user(SPECIALIST))
    found = studies.search(patient_ids=[PATIENT_ID])
    today = next(s for s in found.studies if s.today)
    studies.link(referral.id, user(REFERRER), "PIL", [today.summary.study_uid])
    kinds = [e.kind for e in db.session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral.id).order_by(ReferralEvent.seq))]
    assert kinds.count("studies_linked") == 2
    notice = db.session.scalar(select(Page).where(Page.referral_id == referral.id,
                                                  Page.kind == "notice",
                                                  Page.text.like("New images%")))
    assert notice.who == f"user:{user(SPECIALIST).id}"
    assert set(notice.channels) == {"sms", "in_app"}
    assert PATIENT_ID not in notice.text and referral.family_name not in notice.text


def test_frames_differ_between_presets_and_slices_in_png_and_jpeg(referral, client):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    brain = client.get(frame_url(referral.id, ids[14]))
    assert brain.status_code == 200 and brain.mimetype == "image/png"
    bone = client.get(frame_url(referral.id, ids[14], preset="bone"))
    other_slice = client.get(frame_url(referral.id, ids[20]))
    jpeg = client.get(frame_url(referral.id, ids[14], format="jpeg"))
    custom = client.get(frame_url(referral.id, ids[14], preset="window=40,80"))
    assert jpeg.mimetype == "image/jpeg" and jpeg.data[:2] == b"\xff\xd8"
    b, o = pixels(brain.data), pixels(other_slice.data)
    assert b.shape == (512, 512)
    assert np.abs(b - pixels(bone.data)).mean() > 10
    assert np.abs(b - o).mean() > 5
    assert np.array_equal(b, pixels(custom.data))  # window=40,80 is the brain preset
    assert np.abs(b - pixels(jpeg.data)).mean() < 3


def test_the_second_view_comes_from_the_cache_without_asking_the_pacs(referral, client,
                                                                      pacs_proxy):
    link_sample(referral)
    cold_caches()
    point_pilgrim_at(pacs_proxy.base_url)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    first = client.get(frame_url(referral.id, ids[3]))
    assert first.status_code == 200 and first.headers["X-Image-Cache"] == "miss"
    asked = pacs_proxy.hits
    assert asked >= 1
    second = client.get(frame_url(referral.id, ids[3]))
    assert second.headers["X-Image-Cache"] == "memory" and second.data == first.data
    assert pacs_proxy.hits == asked


def image_views(**where):
    return db.session.scalars(select(AccessLog).filter_by(action="image.view", **where)
                              .order_by(AccessLog.id)).all()


@pytest.mark.clock("2026-11-29T03:00:05+00:00")
def test_a_series_view_is_logged_once_a_minute_and_another_hospitals_referrer_is_refused(
        referral, client, clock):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    for sop in ids[:3]:
        assert client.get(frame_url(referral.id, sop)).status_code == 200
    [view] = image_views(outcome="ok")
    assert view.referral_id == referral.id and view.email == SPECIALIST
    assert ids[0] in view.detail and "series" in view.detail
    clock.move_to("2026-11-29T03:01:00+00:00", tick=False)
    assert client.get(frame_url(referral.id, ids[3])).status_code == 200
    assert len(image_views(outcome="ok")) == 2  # a new minute, a new row
    client.logout()
    client.login("referrer@lch.demo.nhs.uk", PASSWORD)
    refused = client.get(frame_url(referral.id, ids[0]))
    assert refused.status_code == 403
    [denied] = image_views(outcome="denied")
    assert denied.email == "referrer@lch.demo.nhs.uk" and denied.referral_id == referral.id


def test_an_api_client_fetching_one_frame_leaves_a_trace(referral, client):
    from workflow.accounts import accounts

    link_sample(referral)
    ids = sops(referral.id)
    token = accounts.issue_token(SPECIALIST, "viewer test")
    db.session.commit()
    answer = client.get(frame_url(referral.id, ids[5], format="jpeg"),
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.mimetype == "image/jpeg"
    [view] = image_views(outcome="ok")
    assert view.email == SPECIALIST and ids[5] in view.detail


def series_url(referral_id, series_uid, **params):
    query = "&".join(f"{k}={v}" for k, v in {"preset": "brain", "format": "jpeg",
                                              **params}.items())
    return (f"/api/v1/referrals/{referral_id}/studies/{SAMPLE_STUDY}/series/{series_uid}"
            f"/rendered?{query}")


@pytest.mark.clock  # one minute's views are one row: on the wall clock a minute could turn
def test_the_viewer_fetches_a_run_of_slices_in_one_request_logged_once(referral, client):
    link_sample(referral)
    cold_caches()
    ids = sops(referral.id)
    series_uid = db.session.scalar(select(LinkedStudy)).snapshot["series"][0]["series_uid"]
    client.login(SPECIALIST, PASSWORD)
    answer = client.get(series_url(referral.id, series_uid, first=11, count=8))
    assert answer.status_code == 200, answer.get_json()
    sizes = [int(n) for n in answer.headers["X-Frame-Sizes"].split(",")]
    assert answer.headers["X-Frame-Sops"].split(",") == ids[10:18]
    assert answer.headers["X-Frame-Type"] == "image/jpeg"
    assert answer.headers["X-Series-Slices"] == "28" and sum(sizes) == len(answer.data)
    assert all(sizes) and answer.headers["X-Image-Cache-Misses"] == "8"
    first = answer.data[:sizes[0]]
    alone = client.get(frame_url(referral.id, ids[10], format="jpeg"))
    assert alone.headers["X-Image-Cache"] == "memory" and alone.data == first
    frames.wait_for_prefetch()  # the first run fetched and rendered the whole series
    again = client.get(series_url(referral.id, series_uid, first=1, count=28))
    assert again.headers["X-Image-Cache-Misses"] == "0"
    [view] = image_views(outcome="ok")  # one series, one minute: one row
    assert series_uid in view.detail and "slices 11-18 of 28" in view.detail
    assert client.get(series_url(referral.id, series_uid, first=29, count=1)).status_code == 422
    assert client.get(series_url(referral.id, series_uid, count=65)).status_code == 422
    assert client.get(series_url(referral.id, "1.2.3")).status_code == 404
    client.logout()
    client.login("referrer@lch.demo.nhs.uk", PASSWORD)
    assert client.get(series_url(referral.id, series_uid)).status_code == 403
    [denied] = image_views(outcome="denied")
    assert series_uid in denied.detail


def test_bad_requests_get_clear_answers(referral, client):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    bad_preset = client.get(frame_url(referral.id, ids[0], preset="sunset"))
    assert bad_preset.status_code == 422 and "unknown preset" in bad_preset.get_json()["error"]
    assert client.get(frame_url(referral.id, ids[0], format="gif")).status_code == 422
    assert client.get(frame_url(referral.id, ids[0], frame=2)).status_code == 422
    # A blank preset is the default (brain), for a slice and a run of slices, not a 500.
    brain = client.get(frame_url(referral.id, ids[0], preset="brain"))
    blank = client.get(frame_url(referral.id, ids[0], preset="%20%20"))
    assert blank.status_code == 200 and blank.data == brain.data
    series_uid = db.session.scalar(select(LinkedStudy)).snapshot["series"][0]["series_uid"]
    assert client.get(series_url(referral.id, series_uid, preset="%20", count=2)).status_code == 200
    assert client.get(frame_url(referral.id, "1.2.3.4")).status_code == 404
    assert client.get(frame_url(referral.id, ids[0], study_uid="1.2.3")).status_code == 404


def _unavailable_everywhere(client, referral, ids):
    started = time.monotonic()
    search = client.get(f"/api/v1/studies?referral={referral.id}")
    frame = client.get(frame_url(referral.id, ids[5], preset="stroke"))
    elapsed = time.monotonic() - started
    assert search.status_code == 200
    assert search.get_json()["unavailable"][0]["message"].startswith(
        "images unavailable from Pilgrim Hospital")
    assert frame.status_code == 503
    assert frame.get_json()["error"].startswith("images unavailable from Pilgrim Hospital")
    assert elapsed < 10  # each under 5 s
    return search, frame


def test_pacs_stopped_referral_and_paging_go_on_and_images_say_unavailable(
        referral, client, pilgrim):
    from tests.paging.helpers import deliveries, raise_stroke, run_sweep

    link_sample(referral)
    ids = sops(referral.id)
    pilgrim.stop()
    started = time.monotonic()
    fresh = raise_stroke()
    run_sweep()
    assert time.monotonic() - started < 5
    assert deliveries(fresh.id)
    client.login(SPECIALIST, PASSWORD)
    _unavailable_everywhere(client, referral, ids)
    from models import PacsEndpoint

    db.session.expire_all()
    endpoint = db.session.scalar(select(PacsEndpoint))
    assert "Pilgrim Hospital PACS" in endpoint.last_error and endpoint.last_error_at


def test_a_pacs_slow_past_its_timeout_is_reported_within_five_seconds(referral, client,
                                                                     pacs_proxy):
    link_sample(referral)
    ids = sops(referral.id)
    point_pilgrim_at(pacs_proxy.base_url, timeout=1.5)
    pacs_proxy.delay = 3
    client.login(SPECIALIST, PASSWORD)
    started = time.monotonic()
    _, frame = _unavailable_everywhere(client, referral, ids)
    assert "did not answer within" in frame.get_json()["error"]
    assert time.monotonic() - started < 5


def test_a_pacs_answering_500_is_reported(referral, client, pacs_proxy):
    link_sample(referral)
    ids = sops(referral.id)
    point_pilgrim_at(pacs_proxy.base_url)
    pacs_proxy.fail_status = 500
    client.login(SPECIALIST, PASSWORD)
    _unavailable_everywhere(client, referral, ids)
