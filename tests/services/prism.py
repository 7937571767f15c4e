"""The test Twilio: Prism serving Twilio's OpenAPI description, behind a recording proxy.

Prism checks every request against Twilio's contract and answers in Twilio's format.
The proxy in front of it (ours, the one boundary we control) records every request
that reached "Twilio", can inject faults (500, 429, a stall, a Twilio error code), and
gives each created message or call a unique SID (Prism's examples reuse one SID,
which real Twilio never does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests

from tests.services import free_port, missing_service, wait_until

ROOT = Path(__file__).resolve().parents[2]
PRISM = ROOT / "tools" / "prism" / "node_modules" / ".bin" / "prism"
SPEC = ROOT / "tools" / "prism" / "twilio_api_v2010.json"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"


@dataclass
class Seen:
    method: str
    path: str
    form: dict[str, list[str]]
    at: float
    status: int = 0


@dataclass
class TwilioBoundary:
    """What tests see of the test Twilio: its URL, the requests it got, fault switches."""

    base_url: str
    prism_url: str
    requests: list[Seen] = field(default_factory=list)
    mode: str = "pass"  # pass | status | stall | twilio_error
    status: int = 500
    stall_seconds: float = 0.0
    error_code: int = 21211
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.mode, self.status, self.stall_seconds = "pass", 500, 0.0

    def fail_with(self, status: int) -> None:
        self.mode, self.status = "status", status

    def stall(self, seconds: float) -> None:
        self.mode, self.stall_seconds = "stall", seconds

    def twilio_error(self, code: int) -> None:
        self.mode, self.error_code = "twilio_error", code

    def sent(self, kind: str = "Messages") -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith(
                f"/{kind}.json")]

    def settings(self):
        from integrations.pager.twilio_client import TwilioSettings

        return TwilioSettings(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, api_base=self.base_url,
                              timeout=2.0, backoff=0.05)

    def app_config(self) -> dict:
        return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE": self.base_url,
                "TWILIO_TIMEOUT_SECONDS": 2}


def _handler(boundary: TwilioBoundary):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

        def _answer(self, status: int, body: bytes, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, method: str):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(method, self.path.split("?")[0], parse_qs(raw.decode()), time.time())
            with boundary.lock:
                boundary.requests.append(seen)
                mode = boundary.mode
            if mode == "stall":
                time.sleep(boundary.stall_seconds)
                mode = "pass"
            if mode == "status":
                seen.status = boundary.status
                body = {"code": 20500 if boundary.status >= 500 else 20429,
                        "message": "injected fault", "more_info": "", "status": boundary.status}
                return self._answer(boundary.status, json.dumps(body).encode())
            if mode == "twilio_error":
                seen.status = 400
                body = {"code": boundary.error_code, "message": "The 'To' number is not valid",
                        "more_info": f"https://www.twilio.com/docs/errors/{boundary.error_code}",
                        "status": 400}
                return self._answer(400, json.dumps(body).encode())
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in {"content-type", "accept", "authorization"}}
            upstream = requests.request(method, boundary.prism_url + self.path, data=raw,
                                        headers=headers, timeout=30)
            seen.status = upstream.status_code
            body = upstream.content
            if upstream.status_code == 201 and upstream.headers.get(
                    "content-type", "").startswith("application/json"):
                payload = upstream.json()
                if isinstance(payload.get("sid"), str) and len(payload["sid"]) == 34:
                    payload["sid"] = payload["sid"][:2] + uuid.uuid4().hex
                body = json.dumps(payload).encode()
            self._answer(upstream.status_code, body,
                         upstream.headers.get("content-type", "application/json"))

        def do_POST(self):
            self._forward("POST")

        def do_GET(self):
            self._forward("GET")

    return Handler


def start_prism() -> tuple[subprocess.Popen, TwilioBoundary, ThreadingHTTPServer]:
    """Start Prism and the recording proxy; raise FileNotFoundError if Prism is missing."""
    if not PRISM.exists() or not shutil.which("node"):
        raise FileNotFoundError(f"Prism is not installed at {PRISM}; run `make test-deps`")
    port = free_port()
    process = subprocess.Popen(
        [str(PRISM), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    prism_url = f"http://127.0.0.1:{port}"
    def answers() -> bool:
        with requests.get(prism_url + "/2010-04-01/Accounts.json", timeout=1) as response:
            return response.status_code == 401  # up, and checking credentials as Twilio does

    wait_until(answers, 60, "Prism")
    proxy_port = free_port()
    boundary = TwilioBoundary(f"http://127.0.0.1:{proxy_port}", prism_url)
    server = ThreadingHTTPServer(("127.0.0.1", proxy_port), _handler(boundary))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return process, boundary, server


@pytest.fixture(scope="session")
def _prism_session():
    try:
        process, boundary, server = start_prism()
    except FileNotFoundError as exc:
        missing_service(str(exc))
    yield boundary
    server.shutdown()
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)


@pytest.fixture
def twilio(_prism_session) -> TwilioBoundary:
    """The test Twilio, reset for this test (no recorded requests, no faults)."""
    _prism_session.reset()
    yield _prism_session
    _prism_session.reset()
