"""The test PACS: a real Orthanc with the DICOMweb plugin, and a proxy that can misbehave.

`start_orthanc(workdir)` runs `/usr/sbin/Orthanc <config-dir>` as an ordinary process on a
free 127.0.0.1 port with its own storage, authentication on and one registered user.
The session fixture `orthanc` gives each pytest-xdist worker its own server. The
benchmark imports `start_orthanc` too.

`PacsProxy` stands between a client and Orthanc for fault tests: it forwards, or waits
first (a PACS slow past the client's timeout), or answers a fixed status (500).
"""

from __future__ import annotations

import glob
import json
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.services import free_port, missing_service, require_binary, wait_until

DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
HEAD_CT_DIR = DATA / "series" / "ge_hispeed_head_ct"
PLUGIN_GLOB = "/usr/share/orthanc/plugins/*DicomWeb*.so"
USERNAME = "goldenhour"
PASSWORD = "test-pacs-password"


@dataclass
class OrthancServer:
    """One Orthanc process; `stop()` and `start()` can be called again and again."""

    binary: str
    plugin: str
    workdir: Path
    port: int = field(default_factory=free_port)
    username: str = USERNAME
    password: str = PASSWORD
    process: subprocess.Popen | None = None
    _samples_loaded: bool = False

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The DICOMweb root, what a hospital's PACS endpoint would be configured as."""
        return f"{self.rest_url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def _write_config(self) -> Path:
        config_dir = self.workdir / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        config = {
            "Name": f"goldenhour-test-{self.port}",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "SaveJobs": False,
            # gzip of a 0.5 MB slice costs Orthanc ~50 ms; on loopback it only slows.
            "HttpCompressionEnabled": False,
            "Plugins": [self.plugin],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "StudiesMetadata": "MainDicomTags",
                "SeriesMetadata": "MainDicomTags",
            },
        }
        (config_dir / "orthanc.json").write_text(json.dumps(config, indent=2))
        return config_dir

    def is_up(self) -> bool:
        return requests.get(f"{self.rest_url}/system", auth=self.auth, timeout=1).ok

    def start(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [self.binary, str(self._write_config())], stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir)
        log.close()
        try:
            wait_until(self.is_up, timeout, f"Orthanc on port {self.port}")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def upload(self, paths: list[Path]) -> list[str]:
        """Store files through Orthanc's own REST API (fast set-up, not under test)."""
        ids = []
        for path in paths:
            answer = requests.post(f"{self.rest_url}/instances", data=path.read_bytes(),
                                   auth=self.auth, timeout=10)
            answer.raise_for_status()
            ids.append(answer.json()["ID"])
        return ids

    def load_samples(self) -> None:
        """Put the 28-slice head CT series in the PACS, once per server."""
        if not self._samples_loaded:
            self.upload(sorted(HEAD_CT_DIR.glob("*.dcm")))
            self._samples_loaded = True

    def delete_everything(self) -> None:
        for kind in ("patients",):
            for orthanc_id in requests.get(f"{self.rest_url}/{kind}", auth=self.auth,
                                           timeout=10).json():
                requests.delete(f"{self.rest_url}/{kind}/{orthanc_id}", auth=self.auth,
                                timeout=10)
        self._samples_loaded = False


def find_plugin() -> str | None:
    found = sorted(glob.glob(PLUGIN_GLOB))
    return found[0] if found else None


def start_orthanc(workdir: Path | None = None) -> OrthancServer:
    """Start an Orthanc with DICOMweb in ``workdir`` (a new temp dir when None).

    Raises RuntimeError when the binary or the DICOMweb plugin is missing or it does
    not come up within 30 s.
    """
    binary = "/usr/sbin/Orthanc"
    plugin = find_plugin()
    if plugin is None:
        raise RuntimeError(f"the Orthanc DICOMweb plugin is not installed ({PLUGIN_GLOB})")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="orthanc-"))
    server = OrthancServer(binary=binary, plugin=plugin, workdir=workdir)
    server.start()
    return server


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
