"""A local Orthanc with the DICOMweb plugin, run as an ordinary process on 127.0.0.1.

Used by the test suite (tests/services/orthanc.py), the benchmarks and `make run`
(scripts/run_demo.py), each with its own config and storage folder. Never the system
service: `/usr/sbin/Orthanc <config-dir>` with "RemoteAccessAllowed": false, and only
ever addressed as 127.0.0.1 (Orthanc 1.10 has no listen-address setting).
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

BINARY = "/usr/sbin/Orthanc"
PLUGIN_GLOB = "/usr/share/orthanc/plugins/*DicomWeb*.so"
GDCM_PLUGIN_GLOB = "/usr/share/orthanc/plugins/*Gdcm*.so"  # JPEG 2000 for Orthanc itself
USERNAME = "goldenhour"
PASSWORD = "test-pacs-password"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_plugin() -> str | None:
    found = sorted(glob.glob(PLUGIN_GLOB))
    return found[0] if found else None


def available() -> str:
    """"" when Orthanc and its DICOMweb plugin are installed, else what is missing."""
    if not os.access(BINARY, os.X_OK):
        return f"Orthanc is not installed ({BINARY})"
    if find_plugin() is None:
        return f"the Orthanc DICOMweb plugin is not installed ({PLUGIN_GLOB})"
    return ""


@dataclass
class OrthancServer:
    """One Orthanc process; `stop()` and `start()` can be called again and again.

    ``samples``: a folder of DICOM files that `load_samples()` puts in the PACS.
    """

    binary: str
    plugin: str
    workdir: Path
    port: int = field(default_factory=free_port)
    username: str = USERNAME
    password: str = PASSWORD
    samples: Path | None = None
    name: str = "goldenhour-test"
    extra_plugins: tuple[str, ...] = ()  # e.g. the GDCM plugin (see GDCM_PLUGIN_GLOB)
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
            "Name": f"{self.name}-{self.port}",
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
            "Plugins": [self.plugin, *self.extra_plugins],
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
        """Start (if not running) and wait for it. Raises RuntimeError after ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [self.binary, str(self._write_config())], stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.is_up():
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Orthanc on port {self.port} did not become ready "
                           f"(see {self.workdir / 'orthanc.log'})")

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
        """Put the ``samples`` folder's files in the PACS, once per server."""
        if not self._samples_loaded and self.samples is not None:
            self.upload(sorted(self.samples.glob("*.dcm")))
            self._samples_loaded = True

    def instance_count(self) -> int:
        return len(requests.get(f"{self.rest_url}/instances", auth=self.auth,
                                timeout=10).json())

    def delete_everything(self) -> None:
        for orthanc_id in requests.get(f"{self.rest_url}/patients", auth=self.auth,
                                       timeout=10).json():
            requests.delete(f"{self.rest_url}/patients/{orthanc_id}", auth=self.auth,
                            timeout=10)
        self._samples_loaded = False


def start_orthanc(workdir: Path | None = None, *, port: int | None = None,
                  samples: Path | None = None, name: str = "goldenhour-test",
                  password: str = PASSWORD,
                  extra_plugins: tuple[str, ...] = ()) -> OrthancServer:
    """Start an Orthanc with DICOMweb in ``workdir`` (a new temp dir when None).

    Raises RuntimeError when the binary or the DICOMweb plugin is missing or it does
    not come up within 30 s.
    """
    missing = available()
    if missing:
        raise RuntimeError(missing)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="orthanc-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = OrthancServer(binary=BINARY, plugin=find_plugin(), workdir=workdir,
                           port=port or free_port(), samples=samples, name=name,
                           password=password, extra_plugins=extra_plugins)
    server.start()
    return server
