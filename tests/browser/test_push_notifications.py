"""The service worker in Chromium: the real /sw.js registers from the Pager page, a push
delivered to it shows the page as a notification that names no patient and links to
the page, and the "Page me on this device" button says clearly when this browser cannot
subscribe.

The one boundary: Chromium's own push service (Google's FCM) cannot run here. So the
push travels as far as it really can: our sweep encrypts the page and sends it to the
local push service (tests/services/push.py), which checks our VAPID token and decrypts
it with the test browser's key; those decrypted bytes, exactly what FCM would hand the
browser, are then delivered to Chromium's service worker through the DevTools Protocol
(ServiceWorker.deliverPushMessage), as Chromium does when FCM delivers. Subscribing,
which needs FCM, fails here: the test proves the page says so and stays usable.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from extensions import db
from tests.browser.test_viewer import sign_in
from tests.paging.helpers import raise_stroke, run_sweep
from tests.paging.test_webpush import NIGHT, subscribe

pytestmark = [pytest.mark.browser, pytest.mark.clock]
IDENTIFIERS = ("9434765919", "943 476 5919", "Smith", "Ann", "1950")


@pytest.fixture
def app_config(push_server):
    return push_server.app_config()


@pytest.fixture
def desktop(browser, live_server):
    """A desktop page that may show notifications (the permission a person grants)."""
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    page = context.new_page()
    yield page
    context.close()


def registration_id(page, cdp) -> str:
    """The id Chromium gives the page's service worker registration (DevTools)."""
    found: list[str] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: found.extend(
        r["registrationId"] for r in event["registrations"]
        if r["scopeURL"].rstrip("/") == page.url.split("/pager")[0]))
    cdp.send("ServiceWorker.enable")
    page.wait_for_timeout(100)
    for _ in range(50):
        if found:
            return found[-1]
        page.wait_for_timeout(100)
    raise AssertionError("Chromium reported no service worker registration for the app")


def notifications(page) -> list[dict]:
    return page.evaluate("""() => navigator.serviceWorker.ready
        .then(r => r.getNotifications())
        .then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data,
                                  requireInteraction: n.requireInteraction})))""")


def test_a_push_delivered_to_the_real_service_worker_shows_the_page_without_the_patient(
        app, network, push_service, live_server, desktop, clock):
    # The page, as our sweep encrypts it and a push service decrypts it.
    subscribe(app, NIGHT, push_service.browser())
    referral = raise_stroke()
    run_sweep()
    [push] = push_service.received
    db.session.commit()

    sign_in(desktop, live_server.url, NIGHT)
    desktop.goto(f"{live_server.url}/pager")
    scope = desktop.evaluate("""() => navigator.serviceWorker.register('/sw.js', {scope: '/'})
        .then(() => navigator.serviceWorker.ready).then(r => r.scope)""")
    assert scope == f"{live_server.url}/"
    cdp = desktop.context.new_cdp_session(desktop)
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": live_server.url, "registrationId": registration_id(desktop, cdp),
        "data": push.plaintext.decode()})

    shown: list[dict] = []
    for _ in range(50):
        shown = notifications(desktop)
        if shown:
            break
        desktop.wait_for_timeout(100)
    [note] = shown
    db.session.refresh(referral)
    reference = referral.reference
    # SQLite begins every transaction IMMEDIATE: a read left open here would hold the
    # write lock, and the server's next request would wait behind this test.
    db.session.commit()
    assert note["title"] == f"Stroke (hyperacute) referral {reference}"
    assert note["tag"] == reference and note["requireInteraction"] is True
    assert note["data"]["url"] == push.payload["url"]  # the page's own link
    link = urlsplit(note["data"]["url"]).path
    assert link.startswith("/ack/")
    for secret in IDENTIFIERS:
        assert secret not in json.dumps(note)
    # The link is the page: in the signed-in browser, it offers to accept the referral.
    desktop.goto(f"{live_server.url}{link}")
    expect(desktop.get_by_role("button", name="I'll take this referral")).to_be_visible()
    expect(desktop.locator("main")).to_contain_text(reference)


def test_turning_on_push_where_the_browser_has_no_push_service_says_so_and_stays_usable(
        app, network, live_server, desktop):
    sign_in(desktop, live_server.url, NIGHT)
    desktop.goto(f"{live_server.url}/pager")
    box = desktop.locator("#push-pages")
    expect(box).to_be_visible()
    button = box.get_by_role("button", name="Page me on this device")
    button.click()
    note = box.locator("[data-push-note]")
    expect(note).to_contain_text("This browser could not subscribe to its push service",
                                 timeout=20_000)
    expect(note).to_contain_text("Pages still reach you by SMS and calls.")
    expect(button).to_be_enabled()  # they may try again
    # The service worker did register before subscribing failed.
    assert desktop.evaluate("() => navigator.serviceWorker.getRegistration('/')"
                            ".then(r => !!(r && r.active))") is True
    assert desktop.evaluate("() => Notification.permission") == "granted"


def test_turning_on_push_with_notifications_blocked_says_where_to_allow_them(
        app, network, live_server, browser):
    context = browser.new_context()  # no permission granted: headless Chromium denies it
    page = context.new_page()
    try:
        sign_in(page, live_server.url, NIGHT)
        page.goto(f"{live_server.url}/pager")
        box = page.locator("#push-pages")
        box.get_by_role("button", name="Page me on this device").click()
        expect(box.locator("[data-push-note]")).to_contain_text(
            "Notifications are blocked for this site", timeout=20_000)
        expect(box.get_by_role("button", name="Page me on this device")).to_be_enabled()
    finally:
        context.close()
