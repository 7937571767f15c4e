"""The review page brings its first slice itself: the browser asks for it while it parses
the page, shows it before any script has run, and the canvas takes its place without
asking for it again."""

from __future__ import annotations

import time

import pytest

from tests.browser.test_viewer import REFERRER, SPECIALIST, sign_in
from tests.images.conftest import SAMPLE_STUDY
from workflow.imaging import studies

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]


def _linked(referral) -> int:
    from extensions import db
    from tests.paging.helpers import user

    referral_id = referral.id
    studies.link(referral_id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    db.session.commit()  # SQLite: the test holds no transaction open while the page loads
    return referral_id


def test_the_first_slice_shows_before_the_viewer_script_runs(referral, live_server, phone):
    referral_id = _linked(referral)
    sign_in(phone, live_server.url, SPECIALIST)
    phone.route("**/static/js/viewer.js", lambda route: route.abort())
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    phone.wait_for_function("() => document.getElementById('viewer-first')?.complete")
    shown = phone.eval_on_selector("#viewer-first", "i => [i.naturalWidth, i.naturalHeight]")
    assert shown == [512, 512]  # the sample head CT's middle slice, decoded
    src = phone.eval_on_selector("#viewer-first", "i => i.getAttribute('src')")
    assert "/instances/" in src and "preset=brain" in src and "format=jpeg" in src
    box = phone.locator("#viewer-first").bounding_box()
    viewer = phone.locator("#viewer").bounding_box()
    assert (box["width"], box["height"]) == (viewer["width"], viewer["height"])


def test_the_canvas_takes_over_the_pages_first_slice_without_asking_again(
        referral, live_server, phone):
    referral_id = _linked(referral)
    sign_in(phone, live_server.url, SPECIALIST)
    asked: list[str] = []
    phone.on("request", lambda r: asked.append(r.url) if "/instances/" in r.url else None)
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    phone.wait_for_function("() => document.getElementById('viewer-canvas').dataset.firstPaintMs")
    painted = phone.eval_on_selector("#viewer-canvas", "c => c.dataset.painted")
    assert phone.locator("#viewer-first").count() == 0  # the canvas has its place
    assert phone.eval_on_selector("#viewer-canvas", "c => c.dataset.slice") == "15"
    # The slice the page asked for is the one the canvas drew, asked for once.
    assert [u for u in asked if u.endswith(painted)] == [live_server.url + painted]


def test_a_first_slice_that_came_before_the_script_counts_towards_the_whole_series(
        referral, live_server, phone):
    referral_id = _linked(referral)
    sign_in(phone, live_server.url, SPECIALIST)

    def late(route):  # the script arrives a second late: the slice is in by then
        time.sleep(1)
        route.continue_()

    phone.route("**/static/js/viewer.js", late)
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    phone.wait_for_function("() => document.getElementById('viewer-canvas')"
                            ".dataset.seriesLoadedMs", timeout=30_000)
    marks = phone.eval_on_selector("#viewer-canvas", "c => ({...c.dataset})")
    assert marks["slice"] == "15"
    # It was on screen (the page's own img, as the browser painted it) before the canvas.
    assert float(marks["firstSliceShownMs"]) < float(marks["firstPaintSinceNavigationMs"])
