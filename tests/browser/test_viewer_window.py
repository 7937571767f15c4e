"""The review page opened with ?window=center,width shows and fetches that window."""

from __future__ import annotations

import pytest

from tests.browser.test_viewer import REFERRER, SPECIALIST, canvas_signature, differs, sign_in
from tests.images.conftest import SAMPLE_STUDY
from workflow.imaging import studies

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]
LUNG = "-670.805,2061.64"


def test_a_window_in_the_url_is_the_viewers_window(referral, live_server, phone):
    from extensions import db
    from tests.paging.helpers import user

    referral_id = referral.id
    studies.link(referral_id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    db.session.commit()  # SQLite: no transaction held open while the browser works
    sign_in(phone, live_server.url, SPECIALIST)
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review?window={LUNG}")
    asked = "preset=-670.805%2C2061.64&"
    phone.wait_for_function(
        """(p) => (document.getElementById('viewer-canvas').dataset.painted || '')
                  .includes(p)""", arg=asked, timeout=10_000)
    phone.wait_for_timeout(150)
    assert phone.eval_on_selector("#viewer-preset", "s => s.value") == LUNG
    assert "Window -670.805/2061.64" in phone.inner_text("#viewer-status")
    in_window = canvas_signature(phone)
    phone.select_option("#viewer-preset", "brain")
    phone.wait_for_function(
        """() => (document.getElementById('viewer-canvas').dataset.painted || '')
                 .includes('preset=brain&')""", timeout=10_000)
    phone.wait_for_timeout(150)
    assert differs(in_window, canvas_signature(phone)) > 200
