"""A cold series in Chromium: the slice on screen first, then the rest nearest-first, all
of it from one series request to the PACS."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.browser.test_viewer import REFERRER, SPECIALIST, sign_in
from tests.images.conftest import cold_caches, pacs_requests  # noqa: F401 - a fixture
from tests.services.orthanc import HEAD_CT_DIR
from workflow.imaging import studies

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]
SLICES = 150


@pytest.fixture
def long_series(pacs) -> tuple[str, str]:
    """A SLICES-slice copy of the sample head CT (its slices cycled under new UIDs) as a
    study of the sample's patient; (study UID, series UID). The `pacs` fixture removes it."""
    study, series = generate_uid(), generate_uid()
    sources = [pydicom.dcmread(p) for p in sorted(HEAD_CT_DIR.glob("*.dcm"))]
    session = requests.Session()
    for number in range(1, SLICES + 1):
        ds = sources[(number - 1) % len(sources)]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        session.post(f"{pacs.rest_url}/instances", data=out.getvalue(), auth=pacs.auth,
                     timeout=30).raise_for_status()
    return study, series


def test_a_cold_series_arrives_nearest_first_from_one_pacs_request(
        referral, long_series, live_server, phone, pacs_requests):  # noqa: F811
    from extensions import db
    from tests.paging.helpers import user

    study_uid, series_uid = long_series
    referral_id = referral.id
    studies.link(referral_id, user(REFERRER), "PIL", [study_uid])
    cold_caches()
    db.session.commit()
    asked_for: list[tuple[int, int]] = []
    phone.on("request", lambda r: asked_for.append(_run(r.url)) if "/series/" in r.url else None)
    sign_in(phone, live_server.url, SPECIALIST)
    pacs_requests.clear()
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    phone.wait_for_function("() => document.getElementById('viewer-canvas')"
                            ".dataset.seriesLoadedMs", timeout=60_000)
    on_screen = int(phone.eval_on_selector("#viewer-canvas", "c => c.dataset.slice"))
    assert on_screen == SLICES // 2 + 1
    queued = [tuple(int(n) for n in run.split("+")) for run in
              phone.eval_on_selector("#viewer-canvas", "c => c.dataset.runs").split(",")]
    first, count = queued[0]
    assert first <= on_screen < first + count  # the run around the slice on screen first
    # Then outward: each run's nearest slice is no nearer than the last run's.
    nearest = [min(abs(s - on_screen) for s in range(f, f + c)) for f, c in queued]
    assert nearest == sorted(nearest) and len(queued) > 2, queued
    assert sorted(asked_for) == sorted(queued)  # each asked once, as queued
    assert sorted(s for f, c in queued for s in range(f, f + c)) == list(range(1, SLICES + 1))
    asked = [r.split("/dicom-web")[1] for r in pacs_requests]
    assert asked.count(f"/studies/{study_uid}/series/{series_uid}") == 1
    # Besides the one series request: only instances asked for alone (the slice on
    # screen, its lossless copy, the thumbnail), never one per slice.
    assert len(asked) <= 4, asked


def _run(url: str) -> tuple[int, int]:
    query = parse_qs(urlparse(url).query)
    return int(query["first"][0]), int(query["count"][0])


# Each URL.createObjectURL is one slice made into an image from the bytes a run brought.
COUNT_IMAGES = """(() => {
  const make = URL.createObjectURL.bind(URL);
  window.madeImages = 0;
  URL.createObjectURL = (blob) => { window.madeImages++; return make(blob); };
})()"""
NEAR = 12  # static/js/viewer.js: slices each way of the one on screen kept as images


def test_the_series_is_held_as_bytes_and_only_slices_near_the_screen_become_images(
        referral, long_series, live_server, phone):
    """The whole series is in the viewer (no slice asked for again) while only the slices
    near the one on screen are images: 150 at once kept the main thread busy."""
    from extensions import db
    from tests.browser.test_viewer import wait_painted
    from tests.paging.helpers import user

    study_uid, _series_uid = long_series
    referral_id = referral.id
    studies.link(referral_id, user(REFERRER), "PIL", [study_uid])
    db.session.commit()
    sign_in(phone, live_server.url, SPECIALIST)
    phone.add_init_script(COUNT_IMAGES)
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    phone.wait_for_function("() => document.getElementById('viewer-canvas')"
                            ".dataset.seriesLoadedMs", timeout=60_000)
    made = phone.evaluate("window.madeImages")
    # The slice on screen came on its own; of the rest, only its neighbours are images.
    assert 0 < made <= 2 * NEAR, made
    singles: list[str] = []
    phone.on("request", lambda r: singles.append(r.url)
             if "/instances/" in r.url and "format=jpeg" in r.url else None)
    sops = [i["sop_uid"] for i in phone.evaluate(
        "JSON.parse(document.getElementById('viewer-data').textContent)"
        ".studies[0].series[0].instances")]
    for key, slice_number in (("Home", 1), ("End", SLICES)):
        phone.keyboard.press(key)  # far from every image made so far: drawn from its bytes
        wait_painted(phone, slice_number, "brain")
        painted = phone.eval_on_selector("#viewer-canvas", "c => c.dataset.painted")
        assert f"/instances/{sops[slice_number - 1]}/" in painted  # its own slice
    for _ in range(NEAR + 5):  # scrolling up from the end: each step one image more
        phone.keyboard.press("ArrowUp")
    wait_painted(phone, SLICES - NEAR - 5, "brain")
    assert not singles, singles  # every slice shown came from the runs' bytes
    # Home and End: each its own neighbourhood; then one image a step.
    assert phone.evaluate("window.madeImages") <= made + 2 * (NEAR + 1) + NEAR + 5
