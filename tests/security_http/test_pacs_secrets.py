"""PACS endpoint secrets are encrypted at rest and decrypted only for the PACS call."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from extensions import db
from tests.images.conftest import point_pilgrim_at
from tests.workflow.helpers import ADMIN

PASSWORD = "goldenhour-demo"


def _raw_secret() -> str:
    db.session.commit()
    return db.session.execute(text("SELECT secret FROM pacs_endpoints")).scalar_one()


def _save(client, orthanc, secret):
    return client.post("/admin/pacs/PIL", data={
        "base_url": orthanc.base_url, "auth_type": "basic", "username": orthanc.auth[0],
        "secret": secret, "timeout_seconds": "5",
        "viewer_url_template": "https://v/view?s={study_uid}"})


def _test_connection(client) -> str:
    return client.post("/admin/pacs/PIL/test", follow_redirects=True).get_data(as_text=True)


@pytest.mark.orthanc
def test_a_secret_saved_by_an_admin_is_stored_encrypted_and_still_opens_the_pacs(
        network, running_orthanc, client):
    client.login(ADMIN, PASSWORD)
    assert _save(client, running_orthanc, running_orthanc.auth[1]).status_code == 302
    raw = _raw_secret()
    assert raw.startswith("fernet:") and running_orthanc.auth[1] not in raw
    assert "Pilgrim Hospital PACS answered in" in _test_connection(client)
    assert _raw_secret() == raw  # reading it for the call wrote nothing back


@pytest.mark.orthanc
def test_a_secret_stored_plain_before_encryption_is_sealed_on_first_use(
        network, running_orthanc, client):
    point_pilgrim_at(running_orthanc.base_url, auth=running_orthanc.auth)  # a plain write
    assert _raw_secret() == running_orthanc.auth[1]
    client.login(ADMIN, PASSWORD)
    assert "Pilgrim Hospital PACS answered in" in _test_connection(client)
    raw = _raw_secret()
    assert raw.startswith("fernet:") and running_orthanc.auth[1] not in raw
    assert "Pilgrim Hospital PACS answered in" in _test_connection(client)


@pytest.mark.orthanc
@pytest.mark.parametrize("app_config", [{"PACS_SECRET_KEY": Fernet.generate_key().decode()}])
def test_a_dedicated_key_seals_the_secret_and_another_key_cannot_open_it(
        network, running_orthanc, client, app, caplog):
    client.login(ADMIN, PASSWORD)
    _save(client, running_orthanc, running_orthanc.auth[1])
    stored = _raw_secret()[len("fernet:"):]
    key = app.config["PACS_SECRET_KEY"]
    assert Fernet(key).decrypt(stored.encode()).decode() == running_orthanc.auth[1]
    app.config["PACS_SECRET_KEY"] = Fernet.generate_key().decode()  # the key was changed
    page = _test_connection(client)
    assert "Pilgrim Hospital PACS test failed: Pilgrim Hospital PACS refused the credentials" \
        in page
    assert "cannot be decrypted with this server's key" in caplog.text
    assert running_orthanc.auth[1] not in caplog.text


def test_a_malformed_pacs_key_stops_the_app_at_start_up(tmp_path):
    from config import ConfigError, load_config

    with pytest.raises(ConfigError, match="GOLDENHOUR_PACS_KEY must be a Fernet key"):
        load_config({"GOLDENHOUR_PACS_KEY": "not-a-key"}, tmp_path)
    key = Fernet.generate_key().decode()
    assert load_config({"GOLDENHOUR_PACS_KEY": key}, tmp_path)["PACS_SECRET_KEY"] == key
    assert load_config({}, tmp_path)["PACS_SECRET_KEY"] == ""
