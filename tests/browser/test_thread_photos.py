"""The team chat in Chromium: the specialist sends a message with a camera photo from
their phone; it appears on the referrer's open page within 2 s, photo rendered, with
its receipts; the referrer's page reports it read, and the specialist's page says so."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from extensions import db
from tests.browser.test_viewer import REFERRER, SPECIALIST, sign_in
from tests.images.test_thread_photos import camera_jpeg, photo_study  # noqa: F401
from tests.workflow.helpers import user
from workflow.referrals import actions as referrals

pytestmark = [pytest.mark.browser, pytest.mark.orthanc, pytest.mark.clock(tick=True)]


@pytest.fixture
def app_config():
    return {"LIVE_STREAM_SECONDS": 2, "LIVE_POLL_MS": 200, "LIVE_HEARTBEAT_SECONDS": 1}


@pytest.fixture(autouse=True)
def streams_end_before_the_database_goes(app):
    """As in test_live_referral: let the pages' streams end before the database goes."""
    yield
    time.sleep(1.5)


@pytest.mark.usefixtures("photo_study")  # removed from Orthanc afterwards
def test_the_specialists_photo_message_appears_on_the_referrers_page_with_receipts(
        referral, live_server, browser, phone):
    referral_id = referral.id
    referrer_name = user(REFERRER).name
    referrals.acknowledge(referral_id, user(SPECIALIST))
    db.session.commit()  # SQLite: the test holds no transaction while the server works
    base = f"{live_server.url}/referrals/{referral_id}"
    sign_in(phone, live_server.url, REFERRER)
    phone.goto(base)
    expect(phone.locator("#live-status")).to_contain_text("Updated")
    phone.locator("#messages").scroll_into_view_if_needed()
    phone.evaluate("() => { window.notReloaded = true; }")

    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True,
                                  has_touch=True)
    specialist = context.new_page()
    sign_in(specialist, live_server.url, SPECIALIST)
    specialist.goto(base)
    photo_input = specialist.locator("#f-msg-photo")
    assert photo_input.get_attribute("capture") == "environment"
    assert photo_input.get_attribute("accept") == "image/*"
    specialist.fill("#f-msg-text", "Wound photo, left calf")
    photo_input.set_input_files(files=[{"name": "IMG_0042.jpg", "mimeType": "image/jpeg",
                                        "buffer": camera_jpeg(320, 240)}])
    specialist.locator("#messages button[type=submit]").click()
    specialist.wait_for_url(re.compile(rf"/referrals/{referral_id}#messages$"))
    sent_at = time.monotonic()

    # On the referrer's open page within 2 s: the text, the photo (its pixels loaded
    # through the app's image route), and the receipts.
    thread = phone.locator("#thread")
    expect(thread).to_contain_text("Wound photo, left calf", timeout=2000)
    image = thread.locator("img[data-photo-sop]")
    expect(image).to_have_count(1, timeout=2000)
    phone.wait_for_function(
        "() => { const i = document.querySelector('#thread img[data-photo-sop]');"
        " return i && i.complete && i.naturalWidth === 320; }", timeout=2000)
    expect(thread.locator("[data-receipts]")).to_contain_text("Sent", timeout=2000)
    assert time.monotonic() - sent_at < 2.5  # the three waits above overlap
    assert phone.evaluate("() => window.notReloaded") is True

    # The referrer's page had it on screen: the specialist's open page says it was read.
    expect(specialist.locator("#thread [data-receipts]")).to_contain_text(
        re.compile(rf"Read by {re.escape(referrer_name)} \d\d:\d\d"), timeout=4000)
    expect(phone.locator("#thread [data-receipts]")).to_contain_text(
        f"Read by {referrer_name}", timeout=4000)
    context.close()
