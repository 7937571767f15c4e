"""A push service (RFC 8030) on 127.0.0.1 that does what a browser vendor's does, and
what the browser does with what arrives: checks the VAPID token (RFC 8292) against the
key in its ``k=``, then decrypts the aes128gcm body (RFC 8291) with the browser's own
private key, and keeps the plaintext.

A test makes a ``Browser`` as a real one would subscribe: a fresh P-256 key pair and a
16-byte auth secret, and an endpoint URL on this server. ``browser.answer(410)`` makes
the service refuse that browser's pushes the way a push service does for a browser
that unsubscribed.

Fixtures:
  ``push_server`` (session) the PushService: ``browser()``, ``received`` (a list of
      Received), ``clear()``, ``app_config()`` (our VAPID key for the `app` fixture).
  ``push_service`` (function) the same, emptied for this test.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.services import free_port

SUBJECT = "mailto:pager-admin@gh.test"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One subscribed browser: what PushSubscription.toJSON() gives, and its secrets."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    status: int = 201  # what the push service answers this browser's pushes

    @property
    def p256dh(self) -> str:
        return b64url(self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def subscription(self) -> dict:
        return {"endpoint": self.endpoint,
                "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)}}

    def answer(self, status: int) -> None:
        self.status = status


@dataclass
class Received:
    endpoint: str
    headers: dict
    payload: dict  # the decrypted JSON
    plaintext: bytes
    vapid_claims: dict


@dataclass
class PushService:
    host: str
    port: int
    vapid: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    browsers: dict[str, Browser] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # endpoint, status, why
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def browser(self) -> Browser:
        token = secrets.token_urlsafe(24)
        made = Browser(f"{self.origin}/push/{token}", ec.generate_private_key(ec.SECP256R1()),
                       secrets.token_bytes(16))
        with self.lock:
            self.browsers[made.endpoint] = made
        return made

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.refused.clear()
            self.browsers.clear()

    def app_config(self) -> dict:
        """Our VAPID key pair and subject for the `app` fixture, as config.py gives them."""
        pem = self.vapid.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()
        public = b64url(self.vapid.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        return {"VAPID_PRIVATE_KEY": pem, "VAPID_PUBLIC_KEY": public,
                "VAPID_SUBJECT": SUBJECT, "PUSH_TIMEOUT_SECONDS": 5}

    def take(self, endpoint: str, headers: dict, body: bytes) -> tuple[int, str]:
        """What the service answers one POST; keeps the decrypted plaintext."""
        browser = self.browsers.get(endpoint)
        if browser is None:
            return 404, "no such subscription"
        claims, why = self._check_vapid(headers.get("authorization", ""))
        if why:
            return 401, why
        if "ttl" not in headers:
            return 400, "TTL header missing (RFC 8030 5.2)"
        if browser.status != 201:
            return browser.status, "as the test asked"
        if headers.get("content-encoding") != "aes128gcm":
            return 400, "Content-Encoding must be aes128gcm (RFC 8291)"
        if len(body) > 4096:
            return 413, "payload too large"
        try:
            plaintext = http_ece.decrypt(body, private_key=browser.private_key,
                                         auth_secret=browser.auth, version="aes128gcm")
        except Exception as exc:  # the browser would drop a push it cannot decrypt
            return 400, f"cannot decrypt: {exc}"
        self.received.append(Received(endpoint, dict(headers), json.loads(plaintext),
                                      plaintext, claims))
        return 201, ""

    def _check_vapid(self, authorization: str) -> tuple[dict, str]:
        """The JWT's claims, or why the token is refused (RFC 8292 section 3)."""
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return {}, "Authorization must use the vapid scheme"
        values = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = values.get("t", ""), values.get("k", "")
        try:
            signer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
            head, body, signature = token.split(".")
            raw = unb64url(signature)
            signer.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                               int.from_bytes(raw[32:], "big")),
                          f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
            header, claims = json.loads(unb64url(head)), json.loads(unb64url(body))
        except (ValueError, InvalidSignature):
            return {}, "the VAPID token's signature does not verify with its k="
        if header.get("alg") != "ES256":
            return {}, "the VAPID token must be ES256"
        if claims.get("aud") != self.origin:
            return {}, f"the VAPID audience must be {self.origin}"
        if not (time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600):
            return {}, "the VAPID token has expired or lives longer than 24 h"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return {}, "the VAPID subject must be a mailto: or https: contact"
        return claims, ""


def _handler(service: PushService):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with service.lock:
                status, why = service.take(f"{service.origin}{self.path}", headers, body)
                if status != 201:
                    service.refused.append((f"{service.origin}{self.path}", status, why))
            self.send_response(status)
            if status == 201:
                self.send_header("Location", f"{service.origin}/message/{secrets.token_hex(8)}")
            self.send_header("Content-Length", str(len(why)))
            self.end_headers()
            self.wfile.write(why.encode())

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture(scope="session")
def push_server() -> PushService:
    """The push service on a free port of 127.0.0.1 for the session (per xdist worker)."""
    service = PushService("127.0.0.1", free_port())
    server = ThreadingHTTPServer((service.host, service.port), _handler(service))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield service
    server.shutdown()
    server.server_close()


@pytest.fixture
def push_service(push_server) -> PushService:
    """The push service with no browsers or pushes from earlier tests."""
    push_server.clear()
    yield push_server
    push_server.clear()
