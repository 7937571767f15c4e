"""`make run`'s PACS: a local Orthanc under instance/orthanc holding the sample head CT.

Started only when Orthanc and its DICOMweb plugin are installed; otherwise the demo
says so and runs without images. It listens on 8042 when that port is free, else on
any free port. The demo hospitals' PACS endpoints are pointed at it only where an
admin has not set one (or where an earlier demo run set them, on another port).

The sample CT is loaded as the demo patient's (workflow.seed.DEMO_PATIENT: the README's
NHS number 943 476 5919, Ann Smith): its copies carry her NHS number as Patient ID and
the sample's own number as an other patient ID, so "Find images" finds it.
"""

from __future__ import annotations

import atexit
import io
import secrets
import socket
from pathlib import Path

import pydicom
import requests
from flask import Flask
from sqlalchemy import select

from tools import orthanc_local
from workflow.seed import DEMO_PATIENT

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "dicom" / "series" / \
    "ge_hispeed_head_ct"
PORT = 8042


def port_to_use(preferred: int = PORT) -> int:
    """``preferred`` when nothing listens on it on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return orthanc_local.free_port()
    return preferred


def demo_copy(path: Path) -> bytes:
    """One sample file as the demo patient's: her NHS number, name, birth date, sex."""
    ds = pydicom.dcmread(path)
    ds.OtherPatientIDs = str(ds.get("PatientID") or "")
    ds.PatientID = DEMO_PATIENT["nhs_number"]
    ds.PatientName = f"{DEMO_PATIENT['family_name'].upper()}^{DEMO_PATIENT['given_name'].upper()}"
    ds.PatientBirthDate = DEMO_PATIENT["birth_date"].replace("-", "")
    ds.PatientSex = {"female": "F", "male": "M"}.get(DEMO_PATIENT["sex"], "O")
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _holds_demo_patient(server: orthanc_local.OrthancServer) -> bool:
    found = requests.get(f"{server.base_url}/studies",
                         params={"PatientID": DEMO_PATIENT["nhs_number"]},
                         auth=server.auth, timeout=10)
    found.raise_for_status()
    return bool(found.json())


def load_demo_study(server: orthanc_local.OrthancServer) -> None:
    """Put the sample CT in the PACS as the demo patient's (again, when an earlier run
    stored it under the sample's own number)."""
    if _holds_demo_patient(server):
        return
    server.delete_everything()
    for path in sorted(SAMPLES.glob("*.dcm")):
        answer = requests.post(f"{server.rest_url}/instances", data=demo_copy(path),
                               auth=server.auth, timeout=10)
        answer.raise_for_status()


def start(app: Flask, port: int | None = None) -> orthanc_local.OrthancServer | None:
    """Start the demo PACS and seed the endpoints; None (and a printed reason) if not.

    ``port``: where it listens (default 8042, or a free port when 8042 is taken)."""
    missing = orthanc_local.available()
    if missing:
        print(f"  Images: {missing}; the demo runs without a PACS.")
        return None
    workdir = Path(app.instance_path) / "orthanc"
    workdir.mkdir(parents=True, exist_ok=True)
    password_file = workdir / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(18))
        password_file.chmod(0o600)
    port = port or port_to_use()
    try:
        server = orthanc_local.start_orthanc(workdir, port=port,
                                             name="goldenhour-demo",
                                             password=password_file.read_text().strip())
    except RuntimeError as exc:
        print(f"  Images: the demo PACS did not start ({exc}); running without images.")
        return None
    atexit.register(server.stop)
    try:
        load_demo_study(server)
    except requests.RequestException as exc:
        print(f"  Images: the sample CT could not be loaded ({exc}).")
    earlier_file = workdir / "base_url"
    earlier = earlier_file.read_text().strip() if earlier_file.exists() else ""
    with app.app_context():
        seeded = _seed_endpoints(server, earlier)
    earlier_file.write_text(server.base_url)
    nhs = DEMO_PATIENT["nhs_number"]
    print(f"  Images: demo PACS (Orthanc) at {server.base_url}"
          f"{' (8042 was taken)' if server.port != PORT else ''} holding the sample head CT"
          f" of {DEMO_PATIENT['given_name']} {DEMO_PATIENT['family_name']}, NHS number"
          f" {nhs[:3]} {nhs[3:6]} {nhs[6:]}"
          f"{'; endpoints set for ' + seeded if seeded else ''}.")
    return server


def _seed_endpoints(server: orthanc_local.OrthancServer, earlier: str = "") -> str:
    """Point every hospital without a PACS of its own at ``server`` (an endpoint at
    ``earlier``, the demo PACS of a previous run, counts as none)."""
    from extensions import db
    from models import Hospital, PacsEndpoint
    from workflow.imaging import sealing

    seeded = []
    for hospital in db.session.scalars(select(Hospital).order_by(Hospital.code)):
        endpoint = hospital.pacs
        if endpoint is not None and endpoint.base_url and endpoint.base_url != earlier:
            continue  # an admin's setting is never overwritten
        endpoint = endpoint or PacsEndpoint(hospital=hospital)
        endpoint.base_url = server.base_url
        endpoint.auth_type = "basic"
        endpoint.username = server.auth[0]
        endpoint.secret = sealing.seal(server.auth[1])
        endpoint.timeout_seconds = 5.0
        db.session.add(endpoint)
        seeded.append(hospital.code)
    db.session.commit()
    return ", ".join(seeded)
