"""The decision record: a PDF made outside the request, stored once, verifiable."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from extensions import db
from models import DecisionRecord
from tests.paging.helpers import raise_stroke, user
from tests.tampering import tamper
from tests.workflow.helpers import SIGNED
from workflow.audit import records
from workflow.referrals import actions as referrals

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def decided(question="Thrombectomy?", rationale="M1 occlusion on CTA; within 6 h."):
    referral = raise_stroke(question=question)
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.perform("decide", referral.id, user(SPECIALIST), {
        "outcome": "transfer", "destination_hospital": "QMC", "rationale": rationale,
        **SIGNED})
    return referral.id


def test_a_decision_makes_a_pending_record_then_a_pdf_with_reference_signer_and_hash(
        network, client):
    referral_id = decided()
    record = records.latest(referral_id)
    assert record.status == "pending" and record.version == 1
    client.login("referrer@pil.demo.nhs.uk", "goldenhour-demo")
    page = client.get(f"/referrals/{referral_id}").get_data(as_text=True)
    assert "being prepared" in page
    assert records.render_pending() == 1
    db.session.expire_all()
    record = records.latest(referral_id)
    assert record.status == "ready"
    words = pdf_text(record.pdf)
    reference = record.content["reference"]
    assert reference in words
    assert "TRANSFER" in words and "Queen's Medical Centre" in words
    assert "Stroke Registrar (nights)" in words
    assert "password" in words
    assert record.content_sha256 in words.replace("\n", "")
    assert "M1 occlusion on CTA" in words


def test_the_record_names_the_clinical_fields_as_the_form_does(network):
    """The PDF's clinical summary reads like the form (one schema for both), not like
    the stored keys ("pre stroke mrs", "thrombolysis given False")."""
    referral_id = decided()
    records.render_pending()
    db.session.expire_all()
    words = pdf_text(records.latest(referral_id).pdf)
    for label, value in (("NIHSS", "14"), ("Pre-stroke mRS", "1"),
                         ("Thrombolysis given?", "No"), ("Imaging done", "CT, CTA")):
        assert f"{label} {value}" in words, label
    assert "pre stroke mrs" not in words and "False" not in words


def test_the_stored_bytes_are_served_as_they_are_and_every_download_is_logged(network, client):
    from models import AccessLog

    referral_id = decided()
    records.render_pending()
    db.session.expire_all()
    stored = records.latest(referral_id).pdf
    client.login("referrer@pil.demo.nhs.uk", "goldenhour-demo")
    first = client.get(f"/referrals/{referral_id}/records/1.pdf")
    second = client.get(f"/referrals/{referral_id}/records/1.pdf")
    assert first.status_code == 200 and first.mimetype == "application/pdf"
    assert first.data == second.data == stored
    assert records.render_pending() == 0  # never rendered again
    rows = db.session.scalars(select(AccessLog).where(AccessLog.action == "record.download"))
    assert [r.outcome for r in rows] == ["ok", "ok"]


def test_another_hospital_cannot_download_the_record(network, client, make_user):
    referral_id = decided()
    records.render_pending()
    make_user(roles=["referrer"], hospital="LCH", email="other@lch.nhs.uk")
    client.login("other@lch.nhs.uk")
    assert client.get(f"/referrals/{referral_id}/records/1.pdf").status_code == 403


def test_an_addendum_makes_version_two_pointing_at_version_one(network):
    referral_id = decided()
    referrals.add_addendum(referral_id, user(SPECIALIST),
                           {"text": "Also give aspirin.", **SIGNED})
    records.render_pending()
    db.session.expire_all()
    v1, v2 = db.session.scalars(select(DecisionRecord).order_by(DecisionRecord.version))
    assert v2.previous_id == v1.id
    assert v2.content["previous_record_sha256"] == v1.content_sha256
    assert v2.content["decision"] == v1.content["decision"]  # the decision never changes
    assert "Also give aspirin." in pdf_text(v2.pdf)


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_hostile_text_is_inert_in_the_pdf_and_nothing_is_fetched(network, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET FILE")
    hostile = (f'<img src="http://127.0.0.1:{port}/pixel.png">'
               f'<link rel=stylesheet href="http://127.0.0.1:{port}/x.css">'
               f'<iframe src="file://{secret}"></iframe> file://{secret}')
    referral_id = decided(question=hostile, rationale=hostile)
    records.render_pending()
    server.shutdown()
    server.server_close()
    db.session.expire_all()
    record = records.latest(referral_id)
    assert record.status == "ready"
    assert _Recorder.hits == []
    words = pdf_text(record.pdf)
    assert "TOP SECRET FILE" not in words
    assert "<img src=" in words  # shown as text, not obeyed


def test_the_renderer_refuses_every_url_but_our_own_assets(app, tmp_path):
    from integrations.pdf import render_pdf

    html = ('<img src="http://127.0.0.1:9/a.png"><img src="file:///etc/hostname">'
            '<link rel=stylesheet href="goldenhour-asset:css/app.css"><p>ok</p>')
    pdf, refused = render_pdf(html, __import__("pathlib").Path(app.static_folder))
    assert pdf.startswith(b"%PDF")
    assert sorted(refused) == ["file:///etc/hostname", "http://127.0.0.1:9/a.png"]


@pytest.mark.parametrize("sql, words", [
    ("UPDATE decision_records SET pdf = :other", "bytes were changed"),
    ("UPDATE decision_records SET content_sha256 = :hash", "content was changed"),
])
def test_audit_verify_names_a_tampered_record(network, runner, sql, words):
    decided()
    records.render_pending()
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    tamper(sql, other=b"%PDF-1.7 forged", hash="0" * 64)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert words in result.output


def test_a_transfer_names_its_destination_in_the_record_on_the_page_and_to_the_referrer(
        network, client):
    """The destination is read by the ambulance crew and the receiving team from the
    record, the referral page and the referrer's SMS: each names the hospital (not the
    hub, not a code) and the unit."""
    from models import Page

    referral = raise_stroke()
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.perform("decide", referral.id, user(SPECIALIST), {
        "outcome": "transfer", "destination_hospital": "NCH", "destination_unit": "HASU",
        "rationale": "Thrombolysis at the HASU", **SIGNED})
    records.render_pending()
    db.session.expire_all()
    words = pdf_text(records.latest(referral.id).pdf)
    assert "TRANSFER → NOTTINGHAM CITY HOSPITAL, HASU" in words  # the outcome line, in capitals
    client.login("referrer@pil.demo.nhs.uk", "goldenhour-demo")
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "<dt>Destination</dt><dd>Nottingham City Hospital, HASU</dd>" in page
    told = db.session.scalars(select(Page.text).where(
        Page.referral_id == referral.id, Page.who == f"user:{referral.referrer_id}")).all()
    assert any("decided: transfer to Nottingham City Hospital, HASU" in text
               for text in told), told
