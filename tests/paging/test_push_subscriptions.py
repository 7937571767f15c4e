"""The installable app (manifest, service worker at the root) and how a browser
subscribes to push pages: signed in, with the CSRF token, a small body, a push
service's URL (https; 127.0.0.1 only outside production), and VAPID from the
environment."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from config import ConfigError, load_config
from extensions import db
from models import PushBrowser
from tests.paging.helpers import user
from tests.services.push import b64url
from workflow.errors import ValidationFailed
from workflow.paging import push
from workflow.seed import DEMO_PASSWORD

NIGHT = "stroke.night@qmc.demo.nhs.uk"


@pytest.fixture
def app_config(push_server):
    return push_server.app_config()


@pytest.fixture
def night(app, network):
    client = app.test_client()
    client.login(NIGHT, DEMO_PASSWORD)
    return client


def stored() -> list[PushBrowser]:
    db.session.expire_all()
    return list(db.session.scalars(select(PushBrowser)))


def test_the_manifest_makes_the_app_installable_opening_on_the_pager(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.content_type == "application/manifest+json"
    manifest = response.json
    assert manifest["start_url"] == "/pager" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        png = client.get(icon["src"])
        body = png.data
        png.close()
        assert png.status_code == 200 and body.startswith(b"\x89PNG")
    assert '<link rel="manifest" href="/manifest.webmanifest">' in \
        client.get("/login").get_data(as_text=True)


def test_the_service_worker_is_served_from_the_root_and_opens_the_pages_link(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.content_type.startswith("text/javascript")
    assert response.headers["Service-Worker-Allowed"] == "/"
    script = response.get_data(as_text=True)
    response.close()
    assert 'addEventListener("push"' in script and "showNotification" in script
    assert 'addEventListener("notificationclick"' in script and "openWindow" in script


def test_the_pager_offers_push_with_our_vapid_public_key(night, push_server):
    page = night.get("/pager").get_data(as_text=True)
    assert f'data-vapid-key="{push_server.app_config()["VAPID_PUBLIC_KEY"]}"' in page
    assert 'data-subscribe-url="/push/subscriptions"' in page


def test_a_signed_in_browser_subscribes_and_unsubscribes(night, push_service):
    browser = push_service.browser()
    response = night.post("/push/subscriptions", json=browser.subscription())
    assert response.status_code == 201 and response.json["channel"] == "webpush"
    [row] = stored()
    assert (row.endpoint, row.p256dh, row.user.email) == (browser.endpoint, browser.p256dh, NIGHT)
    again = night.post("/push/subscriptions", json=browser.subscription())
    assert again.status_code == 201 and len(stored()) == 1  # renewed, not doubled
    assert night.delete("/push/subscriptions", json={"endpoint": browser.endpoint}) \
        .status_code == 204
    assert stored() == []


def test_a_bad_subscription_is_refused_naming_each_field(night):
    response = night.post("/push/subscriptions", json={
        "endpoint": "ftp://127.0.0.1/x", "keys": {"p256dh": "AAAA", "auth": "not base64!"}})
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"endpoint", "keys.p256dh", "keys.auth"}
    assert stored() == []


def test_a_body_larger_than_a_subscription_is_refused_unread(night, push_service):
    body = push_service.browser().subscription() | {"padding": "x" * 5000}
    assert night.post("/push/subscriptions", json=body).status_code == 413
    assert stored() == []


def test_subscribing_needs_a_session_and_its_csrf_token(app, network, push_service):
    anonymous = app.test_client()
    subscription = push_service.browser().subscription()
    assert anonymous.post("/push/subscriptions", json=subscription).status_code in (302, 401)
    signed_in = app.test_client()
    signed_in.login(NIGHT, DEMO_PASSWORD)
    assert signed_in.post("/push/subscriptions", json=subscription, csrf=False) \
        .status_code == 400
    assert stored() == []


def test_in_production_only_an_https_push_service_on_a_public_address_is_taken(
        app, network, push_service):
    night = user(NIGHT)
    keys = push_service.browser().subscription()["keys"]
    for endpoint, why in (("http://127.0.0.1:9/push/a", "https"),
                          ("https://127.0.0.1/push/a", "public address"),
                          ("https://localhost/push/a", "public address")):
        with pytest.raises(ValidationFailed, match=why):
            push.subscribe(night, {"endpoint": endpoint, "keys": keys}, allow_local=False)
    row = push.subscribe(night, {"endpoint": "https://push.example.net/wpush/v2/abc",
                                 "keys": keys}, allow_local=False)
    assert row.endpoint == "https://push.example.net/wpush/v2/abc"


def test_vapid_settings_come_from_a_key_file_or_value_and_fail_loudly(tmp_path, push_server):
    pem = push_server.app_config()["VAPID_PRIVATE_KEY"]
    key_file = tmp_path / "vapid.pem"
    key_file.write_text(pem)
    subject = {"VAPID_SUBJECT": "mailto:pager@trust.nhs.uk"}
    from_file = load_config({"VAPID_PRIVATE_KEY": str(key_file), **subject}, tmp_path)
    from_value = load_config({"VAPID_PRIVATE_KEY": pem, **subject}, tmp_path)
    public = push_server.app_config()["VAPID_PUBLIC_KEY"]
    assert from_file["VAPID_PUBLIC_KEY"] == from_value["VAPID_PUBLIC_KEY"] == public
    raw = push_server.vapid.private_numbers().private_value.to_bytes(32, "big")
    assert load_config({"VAPID_PRIVATE_KEY": b64url(raw), **subject},
                       tmp_path)["VAPID_PUBLIC_KEY"] == public
    assert load_config({}, tmp_path)["VAPID_PRIVATE_KEY"] == ""  # webpush is the console
    with pytest.raises(ConfigError, match="VAPID_PRIVATE_KEY is not a P-256 private key"):
        load_config({"VAPID_PRIVATE_KEY": "not-a-key", **subject}, tmp_path)
    with pytest.raises(ConfigError, match="VAPID_SUBJECT must be a mailto: or https:"):
        load_config({"VAPID_PRIVATE_KEY": pem}, tmp_path)
