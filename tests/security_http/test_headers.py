"""Security headers on every response; nothing but static files cached; pages that
the Content-Security-Policy does not break (no inline script, style or handler)."""

from __future__ import annotations

import re

import pytest

from tests.images.conftest import pacs, pilgrim, referral  # noqa: F401 - fixtures
from tests.paging.helpers import raise_stroke
from tests.workflow.helpers import ADMIN, AUDIT, REFERRER, bearer

PASSWORD = "goldenhour-demo"


def _assert_secure(response):
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_every_kind_of_response_carries_the_security_headers(network, client):
    raised = raise_stroke()
    answers = [client.get("/login"), client.get("/health"), client.get("/nowhere"),
               client.get("/static/css/app.css", buffered=True),
               client.get("/api/v1/referrals", headers=bearer(REFERRER)),
               client.get("/api/v1/referrals"),  # 401
               client.post("/api/v1/referrals", json=[], headers=bearer(REFERRER))]  # 422
    client.login(REFERRER, PASSWORD)
    answers.append(client.get(f"/referrals/{raised.id}"))
    for response in answers:
        _assert_secure(response)


def test_patient_pages_and_json_are_never_cached_but_static_files_may_be(network, client):
    raised = raise_stroke()
    client.login(REFERRER, PASSWORD)
    for path in (f"/referrals/{raised.id}", f"/referrals/{raised.id}/status.json",
                 "/referrals/mine", f"/api/v1/referrals/{raised.id}"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path
    static = client.get("/static/js/live.js", buffered=True)
    assert "no-store" not in static.headers.get("Cache-Control", "")
    client.logout()
    client.login(AUDIT, PASSWORD)
    export = client.get("/audit/export/referrals.csv", buffered=True)
    assert export.status_code == 200 and export.headers["Cache-Control"] == "no-store"


@pytest.mark.orthanc
def test_a_rendered_image_is_never_cached(referral, client):  # noqa: F811
    from tests.images.test_search_link_render import frame_url, link_sample, sops

    link_sample(referral)
    client.login(REFERRER, PASSWORD)
    response = client.get(frame_url(referral.id, sops(referral.id)[0]))
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "no-store"
    _assert_secure(response)


def test_hsts_only_over_https(network, client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.mark.parametrize("app_config", [{"PUBLIC_BASE_URL": "https://goldenhour.example"}])
def test_hsts_when_the_public_address_is_https_behind_a_tls_proxy(network, client):
    assert "max-age=" in client.get("/login").headers["Strict-Transport-Security"]


INLINE = (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"),
          re.compile(r"<style"), re.compile(r"\sstyle=\""), re.compile(r"\son[a-z]+=\""),
          re.compile(r"javascript:"))


def test_no_page_needs_inline_script_or_style(network, client):
    raised = raise_stroke()
    pages = {}
    client.login(REFERRER, PASSWORD)
    for path in ("/", "/referrals/new", "/referrals/mine", f"/referrals/{raised.id}",
                 f"/referrals/{raised.id}/review"):
        pages[path] = client.get(path)
    client.logout()
    client.login(AUDIT, PASSWORD)
    pages["/audit/"] = client.get("/audit/")
    client.logout()
    client.login(ADMIN, PASSWORD)
    for path in ("/admin/", "/admin/users", "/admin/rota", "/admin/pacs/", "/admin/status",
                 "/admin/hospitals"):
        pages[path] = client.get(path)
    for path, response in pages.items():
        assert response.status_code == 200, path
        text = response.get_data(as_text=True)
        for pattern in INLINE:
            assert not pattern.search(text), f"{path}: {pattern.search(text).group(0)}"
