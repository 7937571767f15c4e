"""The test NHS CIS2: oidc-provider (a certified OpenID Provider), behind a recording proxy.

tools/oidc/provider.mjs runs node-oidc-provider on 127.0.0.1 with two clients
(goldenhour, and another app at the same provider) and test accounts whose emails match
the demo network's people, plus one person goldenhour does not know. The issuer is the
proxy's address: the app discovers, fetches keys and exchanges codes through it, and a
test can change what the token endpoint answers (the way a network attacker or a broken
provider would) to prove the app refuses it.

Fixtures:
  ``oidc_server`` (session) the IdentityProvider; faults persist across tests.
  ``idp``         (function) the same, reset before and after the test.

Faults, on the token endpoint's answer only, until ``reset()``:
  idp.tamper_signature()     change one character of the ID token's signature
  idp.swap_id_token(token)   answer with this ID token instead of the one issued
  idp.stall(seconds)         wait before answering
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services import (
    free_port,
    missing_service,
    require_binary,
    stop_process_group,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "tools" / "oidc" / "provider.mjs"
PACKAGE = ROOT / "tools" / "oidc" / "node_modules" / "oidc-provider" / "package.json"
# PUBLIC_BASE_URL of the `app` fixture (tests/conftest.py) + the callback's path.
REDIRECT_URI = "http://127.0.0.1:5000/login/sso/callback"
CLIENT_ID = "goldenhour"
CLIENT_SECRET = "goldenhour-test-client-secret-0123456789"
OTHER_CLIENT_ID = "another-nhs-app"
OTHER_CLIENT_SECRET = "another-app-test-client-secret-0123456789"
OTHER_REDIRECT_URI = "http://127.0.0.1:5001/callback"
STARTUP_SECONDS = 60  # a loaded 2-core CI machine; it is up in under 1 s when idle
NODE_AT_LEAST = (20, 19)  # oidc-provider 9 (Debian 12's own nodejs, 18, is too old)


@dataclass(frozen=True)
class Account:
    sub: str
    email: str
    name: str
    email_verified: bool = True


# Subjects look like CIS2's UUIDs (the person, not the smartcard).
REFERRER = Account("555000000001", "referrer@pil.demo.nhs.uk", "Dr Rhys Referrer")
ADMIN = Account("555000000002", "admin@em.demo.nhs.uk", "Alex Admin")
AUDIT = Account("555000000003", "audit@em.demo.nhs.uk", "Aisha Audit")
STRANGER = Account("555000000009", "jo@example.nhs.uk", "Jo Bloggs")
UNVERIFIED = Account("555000000010", "referrer@lch.demo.nhs.uk", "Dr Laura Lincoln",
                     email_verified=False)
ACCOUNTS = (REFERRER, ADMIN, AUDIT, STRANGER, UNVERIFIED)


@dataclass
class IdentityProvider:
    """What tests see of the test CIS2: its issuer (the proxy), the requests it got, and
    fault switches for the token endpoint's answer."""

    issuer: str
    upstream: tuple[str, int]  # where oidc-provider itself listens
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    mode: str = "pass"
    swap_with: str = ""
    stall_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app_config(self, **overrides) -> dict:
        """Settings for the `app` fixture (see `app_config` in tests/conftest.py)."""
        return {"OIDC_ISSUER": self.issuer, "OIDC_CLIENT_ID": CLIENT_ID,
                "OIDC_CLIENT_SECRET": CLIENT_SECRET, "OIDC_LABEL": "Sign in with NHS CIS2",
                "OIDC_SCOPES": "openid email profile", "OIDC_TIMEOUT_SECONDS": 5,
                **overrides}

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.mode, self.swap_with, self.stall_seconds = "pass", "", 0.0

    def tamper_signature(self) -> None:
        with self.lock:
            self.mode = "tamper"

    def swap_id_token(self, token: str) -> None:
        with self.lock:
            self.mode, self.swap_with = "swap", token

    def stall(self, seconds: float) -> None:
        with self.lock:
            self.mode, self.stall_seconds = "stall", seconds

    def token_requests(self) -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.requests if r == ("POST", "/token")]

    # -- the person at the browser ----------------------------------------------

    def sign_in(self, authorization_url: str, account: Account) -> str:
        """Play the browser at the provider: follow ``authorization_url``, sign in as
        ``account`` and return the URL the provider sends the browser back to (the
        client's redirect URI with code and state), without following it."""
        assert authorization_url.startswith(self.issuer + "/"), authorization_url
        browser = requests.Session()
        url = authorization_url
        for _ in range(6):
            answer = browser.get(url, allow_redirects=False, timeout=10)
            assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
            url = urljoin(url, answer.headers["Location"])
            if not url.startswith(self.issuer + "/"):
                return url  # back to the client
            if re.search(r"/interaction/[\w-]+$", urlsplit(url).path):
                page = browser.get(url, allow_redirects=False, timeout=10)
                assert page.status_code == 200, page.text[:500]
                answer = browser.post(url + "/login", data={"email": account.email},
                                      allow_redirects=False, timeout=10)
                assert answer.status_code in (302, 303), answer.text[:500]
                url = urljoin(url, answer.headers["Location"])
        raise AssertionError(f"the provider never sent the browser back; last at {url}")

    def id_token_for(self, account: Account, *, client_id: str = OTHER_CLIENT_ID,
                     client_secret: str = OTHER_CLIENT_SECRET,
                     redirect_uri: str = OTHER_REDIRECT_URI, nonce: str = "") -> str:
        """A genuine ID token the provider issues to another client (by default) for
        ``account``: the whole code flow with PKCE, as that client would run it."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"client_id": client_id, "response_type": "code",
                           "scope": "openid email profile", "redirect_uri": redirect_uri,
                           "state": secrets.token_urlsafe(16),
                           "nonce": nonce or secrets.token_urlsafe(16),
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        back = self.sign_in(f"{self.issuer}/auth?{query}", account)
        code = parse_qs(urlsplit(back).query)["code"][0]
        answer = requests.post(f"{self.issuer}/token", auth=(client_id, client_secret),
                               data={"grant_type": "authorization_code", "code": code,
                                     "redirect_uri": redirect_uri, "code_verifier": verifier},
                               timeout=10)
        assert answer.status_code == 200, answer.text
        with self.lock:  # the test's own exchange is not the app's
            self.requests.remove(("POST", "/token"))
        return answer.json()["id_token"]


def tampered(id_token: str) -> str:
    """The token with one character of its signature changed (mid-signature, so the
    decoded bytes differ: the last character may only carry padding bits)."""
    header, payload, signature = id_token.split(".")
    i = len(signature) // 2
    swapped = "A" if signature[i] != "A" else "B"
    return ".".join([header, payload, signature[:i] + swapped + signature[i + 1:]])


def _handler(idp: IdentityProvider):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep the test output quiet
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            with idp.lock:
                idp.requests.append((self.command, path))
                mode, swap_with, stall = idp.mode, idp.swap_with, idp.stall_seconds
            token_call = (self.command, path) == ("POST", "/token")
            if token_call and mode == "stall":
                time.sleep(stall)
            upstream = http.client.HTTPConnection(*idp.upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in {"connection", "keep-alive", "content-length"}}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            if token_call and mode in {"tamper", "swap"} and answer.status == 200:
                tokens = json.loads(content)
                tokens["id_token"] = (tampered(tokens["id_token"]) if mode == "tamper"
                                      else swap_with)
                content = json.dumps(tokens).encode()
            try:
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {"connection", "keep-alive", "content-length",
                                            "transfer-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(content)
            except OSError:  # the client gave up (a stall longer than its timeout)
                pass
            self.close_connection = True
            upstream.close()

        do_GET = do_POST = _forward

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up is normal
        pass


def _signing_jwk() -> dict:
    """A new RS256 private key as a JWK (what CIS2 signs ID tokens with)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.private_numbers()
    public = numbers.public_numbers

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": secrets.token_hex(8), "use": "sig", "alg": "RS256",
            "n": b64(public.n), "e": b64(public.e), "d": b64(numbers.d),
            "p": b64(numbers.p), "q": b64(numbers.q), "dp": b64(numbers.dmp1),
            "dq": b64(numbers.dmq1), "qi": b64(numbers.iqmp)}


def start_provider(workdir: Path) -> tuple[subprocess.Popen, IdentityProvider, _QuietServer]:
    """Start oidc-provider and the proxy in front of it (the issuer).

    The tests make its signing key and cookie key, fresh for each start, so that the
    provider itself generates nothing while it starts.

    Raises RuntimeError (with the provider's output) if it does not come up within
    STARTUP_SECONDS.
    """
    server = _QuietServer(("127.0.0.1", 0), None)  # its handler needs the IdentityProvider
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    port = free_port()
    config = {
        "issuer": issuer, "port": port,
        "clients": [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "redirect_uris": [REDIRECT_URI]},
            {"client_id": OTHER_CLIENT_ID, "client_secret": OTHER_CLIENT_SECRET,
             "redirect_uris": [OTHER_REDIRECT_URI]},
        ],
        "accounts": [a.__dict__ for a in ACCOUNTS],
        "signing_key": _signing_jwk(),
        "cookie_key": secrets.token_hex(32),
    }
    (workdir / "provider.json").write_text(json.dumps(config))
    log_path = workdir / "provider.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["node", str(PROVIDER), str(workdir / "provider.json")], stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT / "tools" / "oidc")
    idp = IdentityProvider(issuer, ("127.0.0.1", port))
    server.RequestHandlerClass = _handler(idp)
    threading.Thread(target=server.serve_forever, name="oidc-proxy", daemon=True).start()

    def ready() -> bool:
        if process.poll() is not None:
            return True  # exited: reported below
        answer = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1)
        return answer.status_code == 200

    try:
        wait_until(ready, STARTUP_SECONDS, "oidc-provider")
        up = process.poll() is None
    except RuntimeError:
        up = False
    if not up:
        server.shutdown()
        server.server_close()
        stop_process_group(process)
        raise RuntimeError(f"oidc-provider did not start; its output:\n"
                           f"{log_path.read_text()[-2000:]}")
    idp.reset()  # the readiness checks are not the tests' requests
    return process, idp, server


@pytest.fixture(scope="session")
def oidc_server(tmp_path_factory) -> IdentityProvider:
    """The test identity provider for this test session (or xdist worker)."""
    node = require_binary("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    if tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < NODE_AT_LEAST:
        missing_service(f"oidc-provider 9 needs Node.js {'.'.join(map(str, NODE_AT_LEAST))} "
                        f"or newer; this machine has {version}")
    if not PACKAGE.exists():
        missing_service(f"oidc-provider is not installed in {PACKAGE.parents[2]}; "
                        "run `make test-deps`")
    try:
        process, idp, server = start_provider(tmp_path_factory.mktemp("oidc"))
    except RuntimeError as first:
        # Once more on a machine too loaded to start it in time; the second failure is
        # reported with both outputs (each names the last step the provider reached).
        try:
            process, idp, server = start_provider(tmp_path_factory.mktemp("oidc"))
        except RuntimeError as second:
            raise RuntimeError(f"{second}\n(first try) {first}") from None
    yield idp
    server.shutdown()
    server.server_close()
    stop_process_group(process)


@pytest.fixture
def idp(oidc_server) -> IdentityProvider:
    """The test identity provider, reset for this test (no recorded requests, no faults)."""
    oidc_server.reset()
    yield oidc_server
    oidc_server.reset()
