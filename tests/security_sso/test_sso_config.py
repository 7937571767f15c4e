"""Single sign-on is configured by the environment alone, and is off without an issuer."""

from __future__ import annotations

import pytest

from config import ConfigError, load_config

BASE = {"GOLDENHOUR_OIDC_ISSUER": "https://am.nhs.uk/openam/oauth2/realms/root/realms/oidc",
        "GOLDENHOUR_OIDC_CLIENT_ID": "goldenhour-em",
        "GOLDENHOUR_OIDC_CLIENT_SECRET": "a-secret-from-the-cis2-onboarding"}


def test_it_reads_the_provider_from_the_environment(tmp_path):
    config = load_config({**BASE, "GOLDENHOUR_OIDC_TIMEOUT_SECONDS": "3"}, tmp_path)

    assert config["OIDC_ISSUER"] == BASE["GOLDENHOUR_OIDC_ISSUER"]
    assert config["OIDC_CLIENT_ID"] == "goldenhour-em"
    assert config["OIDC_LABEL"] == "Sign in with NHS CIS2"
    assert config["OIDC_SCOPES"] == "openid email profile"
    assert config["OIDC_TIMEOUT_SECONDS"] == 3


def test_it_is_off_without_an_issuer(tmp_path):
    assert load_config({}, tmp_path)["OIDC_ISSUER"] == ""


@pytest.mark.parametrize("missing", ["GOLDENHOUR_OIDC_CLIENT_ID",
                                     "GOLDENHOUR_OIDC_CLIENT_SECRET"])
def test_an_issuer_without_client_credentials_stops_the_app(tmp_path, missing):
    with pytest.raises(ConfigError, match=f"half configured.*set {missing} too"):
        load_config({**BASE, missing: ""}, tmp_path)


@pytest.mark.parametrize("issuer", ["http://idp.example.nhs.uk", "am.nhs.uk",
                                    "https://am.nhs.uk/?realm=x"])
def test_an_issuer_that_is_not_an_https_url_stops_the_app(tmp_path, issuer):
    with pytest.raises(ConfigError, match="GOLDENHOUR_OIDC_ISSUER must be"):
        load_config({**BASE, "GOLDENHOUR_OIDC_ISSUER": issuer}, tmp_path)


def test_scopes_without_openid_stop_the_app(tmp_path):
    with pytest.raises(ConfigError, match="must include openid"):
        load_config({**BASE, "GOLDENHOUR_OIDC_SCOPES": "email profile"}, tmp_path)


@pytest.fixture
def app_config() -> dict:
    return {}  # this environment names no identity provider


def test_without_an_issuer_there_is_no_button_and_no_route(client):
    page = client.get("/login").get_data(as_text=True)

    assert "NHS CIS2" not in page and "/login/sso" not in page
    assert client.get("/login/sso").status_code == 404
    assert client.get("/login/sso/callback?code=x&state=y").status_code == 404
