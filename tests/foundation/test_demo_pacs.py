"""`make run`'s PACS: it comes up when 8042 is taken, the app's endpoints point at it,
and the sample CT is found by the README's NHS number."""

import errno
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from extensions import db
from models import Hospital
from scripts import demo_pacs
from tests.images.conftest import SAMPLE_STUDY
from tests.paging.helpers import stroke_payload, user
from tests.services import missing_service, require_binary
from tools.orthanc_local import find_plugin
from workflow.imaging import studies
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PATIENT

pytestmark = pytest.mark.orthanc


@pytest.fixture
def port_8042_taken():
    require_binary("/usr/sbin/Orthanc", "Orthanc")
    if find_plugin() is None:
        missing_service("the Orthanc DICOMweb plugin is not installed; run `make test-deps`")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 8042))
        sock.listen(1)
    except OSError as exc:  # something else holds it already: taken all the same
        assert exc.errno == errno.EADDRINUSE
    yield
    sock.close()


def _endpoint_url(code: str) -> str:
    db.session.commit()
    return db.session.scalar(select(Hospital).where(Hospital.code == code)).pacs.base_url


def test_the_demo_pacs_takes_another_port_when_8042_is_taken(network, port_8042_taken,
                                                             client, capsys):
    db.session.commit()  # start() writes in its own app context (SQLite: one writer)
    server = demo_pacs.start(network)
    assert server is not None
    try:
        assert server.port != 8042 and server.is_up()
        assert "8042 was taken" in capsys.readouterr().out
        assert _endpoint_url("PIL") == server.base_url == _endpoint_url("QMC")
        found = studies.search(patient_ids=[DEMO_PATIENT["nhs_number"]])
        # every demo hospital's endpoint is this one PACS: the same study from each
        assert {f.summary.study_uid for f in found.studies} == {SAMPLE_STUDY}
    finally:
        server.stop()
    # The next run lands elsewhere again: the endpoints it set before follow it.
    db.session.commit()
    again = demo_pacs.start(network)
    try:
        assert _endpoint_url("PIL") == again.base_url
    finally:
        again.stop()


def test_find_images_finds_the_sample_ct_by_the_readme_nhs_number(network, port_8042_taken,
                                                                  client):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    number = DEMO_PATIENT["nhs_number"]
    assert f"{number[:3]} {number[3:6]} {number[6:]}" in readme
    db.session.commit()
    server = demo_pacs.start(network)
    try:
        patient = {k: DEMO_PATIENT[k] for k in ("nhs_number", "family_name", "given_name",
                                                 "birth_date", "sex")}
        referral = referrals.raise_referral(user("referrer@pil.demo.nhs.uk"),
                                            stroke_payload(patient=patient))
        db.session.commit()
        client.login("referrer@pil.demo.nhs.uk", "goldenhour-demo")
        page = client.get(f"/referrals/{referral.id}/studies/search").get_data(as_text=True)
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        assert "HEAD" in text and "28" in text, text[:2000]
        # The copies are hers: no identity warning when they are linked.
        studies.link(referral.id, user("referrer@pil.demo.nhs.uk"), "PIL",
                     [SAMPLE_STUDY])
        db.session.commit()
        shown = client.get(f"/referrals/{referral.id}/review").get_data(as_text=True)
        assert "identity-warning" not in shown
    finally:
        server.stop()
