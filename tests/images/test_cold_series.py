"""The cold path: a series fetched in one PACS request, rendered in a process pool that
falls back to the web process, and warmed as soon as it is linked."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from extensions import db
from integrations import imaging
from models import LinkedStudy
from tests.images.conftest import SAMPLE_STUDY, cold_caches
from tests.images.test_search_link_render import (
    PASSWORD,
    SPECIALIST,
    frame_url,
    link_sample,
    series_url,
    sops,
)
from tests.paging.helpers import REFERRER, user
from tests.workflow.helpers import bearer
from workflow.imaging import frames, render_pool
from workflow.imaging.cache import caches
from workflow.imaging.endpoints import client as pacs_client
from workflow.imaging.endpoints import target_for_hospital

pytestmark = pytest.mark.orthanc


def sample_series_uid() -> str:
    return db.session.scalar(select(LinkedStudy)).snapshot["series"][0]["series_uid"]


def images_of(answer) -> list[bytes]:
    sizes = [int(n) for n in answer.headers["X-Frame-Sizes"].split(",")]
    out, at = [], 0
    for size in sizes:
        out.append(answer.data[at:at + size])
        at += size
    return out


def test_a_cold_series_is_fetched_in_one_pacs_request_and_every_slice_rendered(
        referral, client, pacs_requests):
    link_sample(referral)
    cold_caches()
    series_uid = sample_series_uid()
    client.login(SPECIALIST, PASSWORD)
    pacs_requests.clear()
    answer = client.get(series_url(referral.id, series_uid, first=1, count=28))
    assert answer.status_code == 200, answer.get_json()
    assert all(images_of(answer)) and answer.headers["X-Image-Cache-Misses"] == "28"
    frames.wait_for_prefetch()
    asked = [r.split("/dicom-web")[1] for r in pacs_requests]
    assert asked == [f"/studies/{SAMPLE_STUDY}/series/{series_uid}"]


def test_the_runs_after_the_first_come_from_that_one_fetch(referral, client, pacs_requests):
    link_sample(referral)
    cold_caches()
    series_uid = sample_series_uid()
    client.login(SPECIALIST, PASSWORD)
    pacs_requests.clear()
    for first in (11, 1, 21):  # the viewer's runs: around the slice on screen, then out
        answer = client.get(series_url(referral.id, series_uid, first=first, count=10))
        assert answer.status_code == 200 and all(images_of(answer))
    frames.wait_for_prefetch()
    asked = [r.split("/dicom-web")[1] for r in pacs_requests]
    assert asked == [f"/studies/{SAMPLE_STUDY}/series/{series_uid}"]


def test_pool_rendered_slices_are_the_same_bytes_as_slices_rendered_alone(referral, client):
    link_sample(referral)
    cold_caches()
    series_uid, ids = sample_series_uid(), sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    whole = client.get(series_url(referral.id, series_uid, first=1, count=28,
                                  preset="-600,1500"))
    assert render_pool.pool_for(None).in_use  # this machine has a pool to render in
    cold_caches()
    alone = [client.get(frame_url(referral.id, sop, format="jpeg", preset="-600,1500"))
             for sop in ids]
    assert all(a.headers["X-Image-Cache"] == "miss" for a in alone)
    assert images_of(whole) == [a.data for a in alone]


def sample_files(app) -> list[bytes]:
    with app.app_context():
        target = target_for_hospital(db.session.scalar(select(LinkedStudy)).hospital_id)
        series_uid = sample_series_uid()
    return list(pacs_client(target).iter_series(SAMPLE_STUDY, series_uid))


BONE_JPEG = ((imaging.PRESETS["bone"], 1, "jpeg"),)


def test_a_pool_process_that_dies_mid_series_leaves_the_rest_to_this_process(app, referral):
    link_sample(referral)
    files = sample_files(app)
    expected = {n: render_pool.render_file(data, BONE_JPEG) for n, data in enumerate(files)}
    pool = render_pool.RenderPool(2)
    try:
        def killing_after_the_third():
            for n, data in enumerate(files):
                if n == 3:
                    for process in list(pool._executor._processes.values()):
                        process.kill()
                yield n, data

        got = dict(pool.render(killing_after_the_third(), BONE_JPEG))
        assert got == expected and not pool.in_use  # broken: rendered here for a while
    finally:
        pool.shutdown()


def test_a_pool_that_cannot_start_renders_in_this_process(app, referral, monkeypatch):
    link_sample(referral)
    files = sample_files(app)[:4]

    def no_fork_server(method):
        raise ValueError(f"cannot find context for {method!r}")

    monkeypatch.setattr(render_pool.multiprocessing, "get_context", no_fork_server)
    pool = render_pool.RenderPool(2)
    got = dict(pool.render(enumerate(files), BONE_JPEG))
    assert not pool.in_use
    assert got == {n: render_pool.render_file(d, BONE_JPEG) for n, d in enumerate(files)}
    assert all(isinstance(images, list) and images[0][:2] == b"\xff\xd8"
               for _, images in got.values())


@pytest.mark.parametrize("app_config", [{"IMAGE_RENDER_PROCESSES": 0}])
def test_no_pool_configured_still_renders_the_series_from_one_fetch(
        referral, client, pacs_requests):
    link_sample(referral)
    cold_caches()
    client.login(SPECIALIST, PASSWORD)
    pacs_requests.clear()
    series_uid = sample_series_uid()
    answer = client.get(series_url(referral.id, series_uid, first=1, count=28))
    assert answer.status_code == 200 and all(images_of(answer))
    frames.wait_for_prefetch()
    asked = [r.split("/dicom-web")[1] for r in pacs_requests]
    assert asked == [f"/studies/{SAMPLE_STUDY}/series/{series_uid}"]


def test_a_study_linked_by_the_api_is_warmed_at_once(referral, client, app):
    answer = client.post(f"/api/v1/referrals/{referral.id}/studies",
                         json={"hospital": "PIL", "study_uids": [SAMPLE_STUDY]},
                         headers=bearer(REFERRER))
    assert answer.status_code == 201, answer.get_json()
    frames.wait_for_prefetch(60)
    series = db.session.scalar(select(LinkedStudy)).snapshot["series"][0]
    preset = frames.default_preset(series)
    cache = caches(app)
    warm = [cache.get_frame(frames.FrameSpec(SAMPLE_STUDY, i["sop_uid"], 1, preset, "jpeg").key)[0]
            for i in series["instances"]]
    assert all(warm) and len(warm) == 28


def test_a_second_link_within_the_minute_is_warmed_too(referral, app):
    from tests.images.conftest import PATIENT_ID
    from workflow.imaging import studies

    link_sample(referral)
    frames.wait_for_prefetch(60)
    today = next(s for s in studies.search(patient_ids=[PATIENT_ID]).studies if s.today)
    studies.link(referral.id, user(REFERRER), "PIL", [today.summary.study_uid])
    frames.wait_for_prefetch(60)
    row = db.session.scalar(select(LinkedStudy).where(
        LinkedStudy.study_uid == today.summary.study_uid))
    series = row.snapshot["series"][0]
    preset = frames.default_preset(series)
    keys = [frames.FrameSpec(row.study_uid, i["sop_uid"], 1, preset, "jpeg").key
            for i in series["instances"]]
    assert all(caches(app).get_frame(k)[0] for k in keys)


def test_a_pacs_slow_past_its_timeout_fails_a_run_after_one_timeout_not_two(
        referral, client, pacs_proxy):
    import time

    from tests.images.conftest import point_pilgrim_at

    link_sample(referral)
    cold_caches()
    series_uid = sample_series_uid()
    point_pilgrim_at(pacs_proxy.base_url, timeout=1.5)
    pacs_proxy.delay = 3
    client.login(SPECIALIST, PASSWORD)
    started = time.monotonic()
    answer = client.get(series_url(referral.id, series_uid, first=1, count=28))
    elapsed = time.monotonic() - started
    assert answer.status_code == 503
    assert "did not answer within 1.5 s" in answer.get_json()["error"]
    assert elapsed < 2.9  # the series fetch's timeout; no second one slice by slice


def test_opening_the_review_page_starts_the_render_pool(referral, client, app):
    import time

    link_sample(referral)
    cold_caches()
    pool = render_pool.pool_for(app.config.get("IMAGE_RENDER_PROCESSES"))
    pool.shutdown()  # as in a web worker that has rendered nothing yet
    client.login(SPECIALIST, PASSWORD)
    assert client.get(f"/referrals/{referral.id}/review").status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        executor = pool._executor
        if executor is not None and len(executor._processes) == pool.processes:
            break
        time.sleep(0.05)
    assert pool._executor is not None and len(pool._executor._processes) == pool.processes
