"""Single sign-on and the two-factor requirement: the identity provider did the strong
sign-in, so a role that must use an authenticator here is not sent to enrol after it;
the same person signing in by password still is."""

from __future__ import annotations

import pytest

from tests.security_sso.conftest import open_sessions
from tests.services.oidc import ADMIN

pytestmark = pytest.mark.oidc


@pytest.fixture
def app_config(idp) -> dict:
    return {**idp.app_config(), "REQUIRE_2FA_ROLES": frozenset({"admin", "specialist"})}


def test_an_admin_signed_in_by_sso_is_not_sent_to_enrol(network, client, sso_sign_in):
    answer = sso_sign_in(ADMIN, next_url="/admin/")

    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    admin = client.get("/admin/")
    assert admin.status_code == 200, admin.headers.get("Location")
    assert open_sessions() == 1


def test_the_same_admin_signing_in_by_password_is_sent_to_enrol(network, client):
    answer = client.login(ADMIN.email, "goldenhour-demo")

    assert answer.status_code == 302 and "/two-factor/enrol" in answer.headers["Location"]
    assert client.get("/admin/").status_code == 302
    assert open_sessions() == 0
