"""The test Twilio: Prism serving Twilio's OpenAPI description, behind a recording proxy.

Prism checks every request against Twilio's contract (with ``--errors`` a violation is
a 422) and answers with the spec's examples. The proxy in front of it is the boundary
tests look at: it records every request that reached "Twilio", can inject faults, and
gives each created message or call its own SID (Prism's examples reuse one SID, which
real Twilio never does).

Fixtures:
  ``prism``  (session) the TwilioBoundary; faults and records persist across tests.
  ``twilio`` (function) the same boundary, reset before and after the test.

Fault modes (``boundary.set_mode(...)``, or the helpers of the same meaning):
  "pass"                 forward to Prism                          reset()
  "status 500"           answer 500 (any 4xx/5xx) in Twilio's JSON  fail_with(500)
  "stall 10"             wait 10 s, then forward to Prism           stall(10)
  "twilio error 21211"   answer 400 with Twilio error 21211         twilio_error(21211)
``times=n`` limits a fault to the next n requests, then the mode is "pass" again.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests

from tests.services import (
    free_port,
    missing_service,
    require_binary,
    stop_process_group,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
PRISM = ROOT / "tools" / "prism" / "node_modules" / ".bin" / "prism"
SPEC = ROOT / "tools" / "prism" / "twilio_api_v2010.json"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"


@dataclass
class Seen:
    """One request that reached the test Twilio."""

    method: str
    path: str  # without the query string
    form: dict[str, list[str]]  # the form body, as parse_qs gives it
    at: float  # time.time() when it arrived (comparable across processes)
    status: int = 0  # what the boundary answered (0: no answer yet, e.g. stalled)

    def field(self, name: str) -> str | None:
        """The first value of form field ``name``, or None."""
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class TwilioBoundary:
    """What tests see of the test Twilio: its URL, the requests it got, fault switches."""

    base_url: str  # the proxy: point TWILIO_API_BASE here
    prism_url: str  # Prism itself, without faults or recording
    requests: list[Seen] = field(default_factory=list)
    mode: str = "pass"
    times: int | None = None  # faults left before "pass"; None: until changed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_mode(self, mode: str, times: int | None = None) -> None:
        """Switch the fault mode (see the module docstring). Raises ValueError if unknown."""
        _parse_mode(mode)
        with self.lock:
            self.mode, self.times = mode, times

    def fail_with(self, status: int, times: int | None = None) -> None:
        self.set_mode(f"status {status}", times)

    def stall(self, seconds: float, times: int | None = None) -> None:
        self.set_mode(f"stall {seconds:g}", times)

    def twilio_error(self, code: int, times: int | None = None) -> None:
        self.set_mode(f"twilio error {code}", times)

    def reset(self) -> None:
        """No faults, no recorded requests."""
        with self.lock:
            self.requests.clear()
            self.mode, self.times = "pass", None

    def sent(self, kind: str = "Messages") -> list[Seen]:
        """The create requests that reached Twilio: kind "Messages" (SMS) or "Calls"."""
        with self.lock:
            return [r for r in self.requests
                    if r.method == "POST" and r.path.endswith(f"/{kind}.json")]

    def count_by(self, key: Callable[[Seen], Hashable], kind: str = "Messages") -> Counter:
        """How many ``kind`` creates arrived per ``key(request)``; for duplicate checks,
        e.g. ``count_by(lambda r: r.field("Body"))``."""
        return Counter(key(r) for r in self.sent(kind))

    def _next_mode(self) -> str:
        with self.lock:
            mode = self.mode
            if self.times is not None and mode != "pass":
                self.times -= 1
                if self.times <= 0:
                    self.mode, self.times = "pass", None
            return mode

    def settings(self, timeout: float = 2.0, retries: int = 2, backoff: float = 0.05):
        """TwilioSettings for a channel that talks to this boundary."""
        from integrations.pager.twilio_client import TwilioSettings

        return TwilioSettings(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, api_base=self.base_url,
                              timeout=timeout, retries=retries, backoff=backoff)

    def app_config(self) -> dict:
        """Settings for the `app` fixture (see `app_config` in tests/conftest.py)."""
        return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE": self.base_url,
                "TWILIO_TIMEOUT_SECONDS": 2}


def _parse_mode(mode: str) -> tuple[str, float]:
    words = mode.split()
    try:
        if words == ["pass"]:
            return "pass", 0
        if len(words) == 2 and words[0] in ("status", "stall"):
            value = float(words[1])
            if words[0] == "status" and not 400 <= value < 600:
                raise ValueError
            return words[0], value
        if len(words) == 3 and words[:2] == ["twilio", "error"]:
            return "twilio error", int(words[2])
    except ValueError:
        pass
    raise ValueError(f"unknown fault mode {mode!r}")


def _twilio_error_body(status: int, code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "status": status,
                       "more_info": f"https://www.twilio.com/docs/errors/{code}"}).encode()


def _handler(boundary: TwilioBoundary):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

        def _answer(self, seen: Seen, status: int, body: bytes,
                    content_type: str = "application/json") -> None:
            seen.status = status
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (a stall longer than its timeout)
                self.close_connection = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path.split("?")[0], parse_qs(raw.decode()),
                        time.time())
            with boundary.lock:
                boundary.requests.append(seen)
            kind, value = _parse_mode(boundary._next_mode())
            if kind == "stall":
                time.sleep(value)  # then answer as Twilio would: the page was created
            elif kind == "status":
                status = int(value)
                code = 20429 if status == 429 else 20500 if status >= 500 else status
                return self._answer(seen, status, _twilio_error_body(
                    status, code, "Injected fault at the test Twilio"))
            elif kind == "twilio error":
                return self._answer(seen, 400, _twilio_error_body(
                    400, int(value), f"Injected Twilio error {int(value)}"))
            self._forward(seen, raw)

        def _forward(self, seen: Seen, raw: bytes) -> None:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in {"content-type", "accept", "authorization"}}
            upstream = requests.request(self.command, boundary.prism_url + self.path,
                                        data=raw, headers=headers, timeout=30)
            body = upstream.content
            content_type = upstream.headers.get("content-type", "application/json")
            if upstream.status_code == 201 and content_type.startswith("application/json"):
                payload = upstream.json()
                if isinstance(payload.get("sid"), str) and len(payload["sid"]) == 34:
                    payload["sid"] = payload["sid"][:2] + uuid.uuid4().hex
                body = json.dumps(payload).encode()
            self._answer(seen, upstream.status_code, body, content_type)

        do_GET = do_POST = do_DELETE = _handle

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # Several sweep processes, each with SEND_WORKERS loops, connect at once: the
    # default backlog of 5 refused some of them on a loaded machine.
    request_queue_size = 128

    def handle_error(self, request, client_address):  # a client that hung up is normal
        pass


def start_prism(log_path: Path) -> tuple[subprocess.Popen, TwilioBoundary, ThreadingHTTPServer]:
    """Start Prism on a free port and the recording proxy in front of it.

    Raises RuntimeError (with Prism's output) if Prism does not come up within 60 s.
    """
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(PRISM), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    prism_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            return True  # exited: no point waiting, reported below
        # Any HTTP answer will do. (Prism's own example for GET Accounts.json breaks the
        # spec, so with --errors that request is a 500, not a readiness signal.)
        requests.get(prism_url, timeout=1)
        return True

    try:
        wait_until(ready, 60, "Prism")
        up = process.poll() is None
    except RuntimeError:
        up = False
    if not up:
        stop_process_group(process)
        raise RuntimeError(f"Prism did not start; its output:\n{log_path.read_text()[-2000:]}")
    boundary = TwilioBoundary("", prism_url)
    server = _QuietServer(("127.0.0.1", 0), _handler(boundary))
    boundary.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="twilio-boundary", daemon=True).start()
    return process, boundary, server


@pytest.fixture(scope="session")
def prism(tmp_path_factory) -> TwilioBoundary:
    """Prism + the recording, fault-injecting proxy for this test session (or xdist worker)."""
    require_binary("node")
    if not PRISM.exists():
        missing_service(f"Prism is not installed at {PRISM}; run `make test-deps`")
    process, boundary, server = start_prism(tmp_path_factory.mktemp("prism") / "prism.log")
    yield boundary
    server.shutdown()
    server.server_close()
    stop_process_group(process)


@pytest.fixture
def twilio(prism) -> TwilioBoundary:
    """The test Twilio, reset for this test (no recorded requests, no faults)."""
    prism.reset()
    yield prism
    prism.reset()
