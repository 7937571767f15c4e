"""Request bodies: an anonymous caller cannot make the server read, parse or walk a
body; bodies are capped in size (declared or streamed) and JSON in nesting depth."""

from __future__ import annotations

import io
import json
import time

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from tests.workflow.helpers import REFERRER, bearer, stroke_payload

PUBLIC = "https://goldenhour.example.nhs.uk"
TWILIO_TOKEN = "test-twilio-auth-token"
DEEP = b"[" * 1000 + b"]" * 1000
MB = 1024 * 1024


@pytest.fixture
def app_config():
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PUBLIC_BASE_URL": PUBLIC}


class CountingStream(io.BytesIO):
    """A request body that remembers whether anyone read it."""

    bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    readline = read

    def read1(self, size=-1):
        return self.read(size)


def _json_post(client, path, body: bytes, *, headers=None, length=True, **kw):
    stream = CountingStream(body)
    environ = {} if length else {"wsgi.input_terminated": True}
    response = client.post(path, input_stream=stream, content_type="application/json",
                           content_length=len(body) if length else None,
                           headers=headers or {}, environ_overrides=environ, **kw)
    return response, stream


def test_an_anonymous_20_mb_json_body_is_refused_unread_in_milliseconds(network, client):
    body = b"[" + b"1," * (10 * MB) + b"1]"
    started = time.perf_counter()
    response, stream = _json_post(client, "/api/v1/referrals", body, csrf=False)
    elapsed = time.perf_counter() - started
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    assert "at most 1 MB" in response.json["error"]
    assert stream.bytes_read == 0
    assert elapsed < 0.1, f"took {elapsed * 1000:.0f} ms"


def test_an_anonymous_json_body_under_the_limit_gets_its_401_without_being_read(
        network, client):
    body = json.dumps({"question": "x" * 900_000}).encode()
    response, stream = _json_post(client, "/api/v1/referrals", body, csrf=False)
    assert response.status_code == 401
    assert "authentication required" in response.json["error"]
    assert stream.bytes_read == 0
    # A bad token is no better than none: still unread.
    response, stream = _json_post(client, "/api/v1/referrals", DEEP, csrf=False,
                                  headers={"Authorization": "Bearer gh_not-a-token"})
    assert response.status_code == 401 and stream.bytes_read == 0


def test_an_unsigned_webhook_body_is_not_read(network, client):
    response, stream = _json_post(client, "/webhooks/twilio/sms", DEEP, csrf=False)
    assert response.status_code == 403
    assert stream.bytes_read == 0


def test_json_nested_1000_deep_is_a_400_on_the_api_a_webhook_and_the_health_check(
        network, client):
    response, _ = _json_post(client, "/api/v1/referrals", DEEP, headers=bearer(REFERRER))
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "nested more than 32 levels" in response.json["error"]
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        PUBLIC + "/webhooks/twilio/sms", {})
    response, _ = _json_post(client, "/webhooks/twilio/sms", DEEP, csrf=False,
                             headers={"X-Twilio-Signature": signature})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "nested more than 32 levels" in response.json["error"]
    response = client.get("/health", data=DEEP, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "nested more than 32 levels" in response.json["error"]


def test_json_32_deep_is_read_and_33_deep_is_refused(network, client):
    def nested(levels):
        value = {"question": "LVO?"}
        for _ in range(levels - 1):
            value = {"x": value}
        return value

    headers = bearer(REFERRER)
    ok = client.post("/api/v1/referrals", json=stroke_payload(extra=nested(31)), headers=headers)
    assert ok.status_code == 201, ok.get_data(as_text=True)[:300]
    deep = client.post("/api/v1/referrals", json=stroke_payload(extra=nested(32)),
                       headers=headers)
    assert deep.status_code == 400


def test_a_signed_in_users_2_mb_json_body_gets_a_413_naming_the_limit(network, client):
    body = json.dumps(stroke_payload(question="x" * (2 * MB))).encode()
    response, stream = _json_post(client, "/api/v1/referrals", body, headers=bearer(REFERRER))
    assert response.status_code == 413
    assert response.json["error"] == ("The request body is larger than this address "
                                      "accepts: at most 1 MB (1048576 bytes).")
    assert stream.bytes_read == 0


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(network, client):
    body = json.dumps(stroke_payload(question="x" * (2 * MB))).encode()
    response, stream = _json_post(client, "/api/v1/referrals", body, length=False,
                                  headers=bearer(REFERRER))
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    assert "at most 1 MB" in response.json["error"]
    assert stream.bytes_read <= MB + 64 * 1024


def test_the_json_limit_comes_from_the_environment(network, tmp_path, monkeypatch):
    from config import ConfigError, load_config

    assert load_config({}, tmp_path)["MAX_JSON_BYTES"] == MB
    config = load_config({"GOLDENHOUR_MAX_JSON_BYTES": "65536"}, tmp_path)
    assert config["MAX_JSON_BYTES"] == config["MAX_CONTENT_LENGTH"] == 65536
    with pytest.raises(ConfigError, match="GOLDENHOUR_MAX_JSON_BYTES must be a whole number"):
        load_config({"GOLDENHOUR_MAX_JSON_BYTES": "1MB"}, tmp_path)


def test_only_a_signed_in_user_may_send_an_upload_sized_body(network, client):
    from tests.paging.helpers import raise_stroke

    referral = raise_stroke()
    path = f"/referrals/{referral.id}/studies/upload"
    # Encoded here: the test client's own encoder spools to a file it never closes.
    boundary, body = encode_multipart(MultiDict(
        [("files", FileStorage(io.BytesIO(b"x" * (2 * MB)), filename="a.dcm"))]))
    kind = f"multipart/form-data; boundary={boundary}"
    anonymous = client.post(path, data=body, content_type=kind, csrf=False)
    assert anonymous.status_code == 413
    client.login(REFERRER, "goldenhour-demo")
    signed_in = client.post(path, data=body, content_type=kind,
                            headers={"Accept": "application/json"})
    assert signed_in.status_code == 422, signed_in.get_data(as_text=True)[:300]
    assert "no PACS endpoint configured" in signed_in.json["errors"]["files"]
