"""The test PACS: a real Orthanc with the DICOMweb plugin, and a proxy that can misbehave.

`start_orthanc(workdir)` (tools/orthanc_local.py) runs `/usr/sbin/Orthanc <config-dir>` on a
free 127.0.0.1 port with its own storage, authentication on and one registered user.
The session fixture `orthanc` gives each pytest-xdist worker its own server. The
benchmark imports `start_orthanc` too.

`PacsProxy` stands between a client and Orthanc for fault tests: it forwards, or waits
first (a PACS slow past the client's timeout), or answers a fixed status (500).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.services import missing_service, require_binary

# The server itself lives in tools/orthanc_local.py (make run starts one too).
from tools.orthanc_local import PASSWORD, PLUGIN_GLOB, USERNAME, OrthancServer, find_plugin
from tools.orthanc_local import start_orthanc as _start_orthanc

DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
HEAD_CT_DIR = DATA / "series" / "ge_hispeed_head_ct"
__all__ = ["HEAD_CT_DIR", "PASSWORD", "PLUGIN_GLOB", "USERNAME", "OrthancServer",
           "PacsProxy", "find_plugin", "start_orthanc"]


def start_orthanc(workdir: Path | None = None) -> OrthancServer:
    """Start a test Orthanc holding nothing yet; `load_samples()` adds the head CT.

    Raises RuntimeError as tools.orthanc_local.start_orthanc.
    """
    return _start_orthanc(workdir, samples=HEAD_CT_DIR)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running Orthanc for this worker: `base_url`, `rest_url`, `auth`, `stop()`,
    `start()`, `load_samples()`."""
    require_binary("/usr/sbin/Orthanc", "Orthanc")
    if find_plugin() is None:
        missing_service("the Orthanc DICOMweb plugin is not installed; run `make test-deps`")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture
def running_orthanc(orthanc):
    """`orthanc`, restarted first if an earlier test stopped it."""
    orthanc.start()
    return orthanc


@pytest.fixture
def pacs_proxy(running_orthanc):
    """A `PacsProxy` in front of the worker's Orthanc, closed after the test."""
    proxy = PacsProxy(running_orthanc.rest_url)
    yield proxy
    proxy.close()


class PacsProxy:
    """A threaded HTTP server on 127.0.0.1 that forwards to Orthanc, or misbehaves.

    `delay` seconds are waited before forwarding; `fail_status` (e.g. 500) is answered
    instead of forwarding. `hits` counts the requests that arrived.
    """

    def __init__(self, target: str, *, delay: float = 0.0, fail_status: int | None = None):
        self.target = target
        self.delay = delay
        self.fail_status = fail_status
        self.hits = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.rest_url}/dicom-web"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _proxy_handler(proxy: PacsProxy):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

        def _relay(self):
            with proxy._lock:
                proxy.hits += 1
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if proxy.delay:
                time.sleep(proxy.delay)
            if proxy.fail_status:
                return self._answer(proxy.fail_status, b"injected fault", {})
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in {"host", "content-length", "connection"}}
            try:
                upstream = requests.request(self.command, proxy.target + self.path,
                                            data=body, headers=headers, timeout=30)
            except requests.RequestException:
                return self._answer(502, b"upstream unreachable", {})
            passed = {k: v for k, v in upstream.headers.items()
                      if k.lower() in {"content-type", "www-authenticate"}}
            self._answer(upstream.status_code, upstream.content, passed)

        def _answer(self, status: int, body: bytes, headers: dict):
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting, which is what the test wanted

        do_GET = do_POST = do_PUT = do_DELETE = _relay

    return Handler
