"""`make run`'s PACS: a local Orthanc under instance/orthanc holding the sample head CT.

Started only when Orthanc and its DICOMweb plugin are installed; otherwise the demo
says so and runs without images. The demo hospitals' PACS endpoints are pointed at it
only where an admin has not set one.
"""

from __future__ import annotations

import atexit
import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from tools import orthanc_local

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "dicom" / "series" / \
    "ge_hispeed_head_ct"
PORT = 8042


def start(app: Flask, port: int = PORT) -> orthanc_local.OrthancServer | None:
    """Start the demo PACS and seed the endpoints; None (and a printed reason) if not."""
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
    try:
        server = orthanc_local.start_orthanc(workdir, port=port, samples=SAMPLES,
                                             name="goldenhour-demo",
                                             password=password_file.read_text().strip())
    except RuntimeError as exc:
        print(f"  Images: the demo PACS did not start ({exc}); running without images.")
        return None
    atexit.register(server.stop)
    if server.instance_count() == 0:
        server.load_samples()
    with app.app_context():
        seeded = _seed_endpoints(server)
    print(f"  Images: demo PACS (Orthanc) at {server.base_url} holding the sample head CT"
          f" (patient id QMNx85rKkkg){'; endpoints set for ' + seeded if seeded else ''}.")
    return server


def _seed_endpoints(server: orthanc_local.OrthancServer) -> str:
    from extensions import db
    from models import Hospital, PacsEndpoint
    from workflow.imaging import sealing

    seeded = []
    for hospital in db.session.scalars(select(Hospital).order_by(Hospital.code)):
        endpoint = hospital.pacs
        if endpoint is not None and endpoint.base_url:
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
