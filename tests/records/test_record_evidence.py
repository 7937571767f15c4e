"""What ties a decision record to the evidence: the PDF names its signer and the
event-chain head it was signed at; the referral page and the API list each version
with its hashes and the anchor root that later covered it ("not yet anchored" before)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from extensions import db
from models import DecisionRecord, ReferralEvent
from tests.paging.helpers import raise_stroke
from tests.records.test_decision_record import SPECIALIST, decided, pdf_text
from tests.tampering import tamper
from tests.workflow.helpers import REFERRER, SIGNED, bearer, user
from workflow.audit import anchors, records
from workflow.audit.integrity import verify_all
from workflow.referrals import actions as referrals

pytestmark = pytest.mark.clock()


@pytest.fixture
def app_config(tmp_path) -> dict:
    key_file = tmp_path / "anchor-key.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return {"ANCHOR_KEY_FILE": str(key_file), "ANCHOR_LOG": str(tmp_path / "anchors.jsonl")}


def anchor(app) -> dict:
    return anchors.anchor(app.config["ANCHOR_KEY_FILE"], app.config["ANCHOR_LOG"])


def head_hash(referral_id: int) -> tuple[int, str]:
    """(seq, hash) of the referral's last event now."""
    row = db.session.execute(select(ReferralEvent.seq, ReferralEvent.hash)
                             .where(ReferralEvent.referral_id == referral_id)
                             .order_by(ReferralEvent.seq.desc()).limit(1)).one()
    return row.seq, row.hash


def flat(text: str) -> str:
    return " ".join(text.split())


def test_each_pdf_names_its_signer_and_the_chain_head_it_was_signed_at(network):
    referral_id = decided()
    decided_at = head_hash(referral_id)
    referrals.post_message(referral_id, user(SPECIALIST), {"text": "Crew on the way."})
    referrals.add_addendum(referral_id, user(SPECIALIST),
                           {"text": "Give aspirin on arrival.", **SIGNED})
    amended_at = head_hash(referral_id)
    referrals.post_message(referral_id, user(SPECIALIST), {"text": "Arrived."})
    assert records.render_pending() == 2
    db.session.expire_all()
    v1, v2 = db.session.scalars(select(DecisionRecord).order_by(DecisionRecord.version))
    first, second = flat(pdf_text(v1.pdf)), flat(pdf_text(v2.pdf))
    assert "Version 1 signed by Stroke Registrar (nights)" in first
    assert "Version 2 signed by Stroke Registrar (nights)" in second
    # The hash is printed in a narrow monospaced span: compare without line breaks.
    assert f"event seq {decided_at[0]}" in first
    assert decided_at[1] in first.replace(" ", "")
    assert f"event seq {amended_at[0]}" in second
    assert amended_at[1] in second.replace(" ", "")
    assert amended_at[1] not in first.replace(" ", "")  # each version its own head
    assert head_hash(referral_id) not in (decided_at, amended_at)  # not "the latest"


def test_the_page_says_not_yet_anchored_until_an_anchor_covers_the_record(
        app, network, client):
    referral_id = decided()
    records.render_pending()
    client.login(REFERRER, "goldenhour-demo")
    before = flat(client.get(f"/referrals/{referral_id}").get_data(as_text=True))
    v1 = records.latest(referral_id)
    assert f"SHA-256 <code>{v1.content_sha256}</code>" in before
    assert f"<code>{v1.content['event_hash']}</code>" in before
    assert "not yet anchored" in before
    root = anchor(app)["tree_head"]["root"]
    referrals.add_addendum(referral_id, user(SPECIALIST),
                           {"text": "Give aspirin on arrival.", **SIGNED})
    after = flat(client.get(f"/referrals/{referral_id}").get_data(as_text=True))
    assert after.count(f"in root <code>{root}</code>") == 1  # v1, anchored
    assert after.count("not yet anchored") == 1  # v2, made after the anchor
    second_root = anchor(app)["tree_head"]["root"]
    latest = flat(client.get(f"/referrals/{referral_id}").get_data(as_text=True))
    assert f"in root <code>{root}</code>" in latest  # the first anchor stays v1's
    assert f"in root <code>{second_root}</code>" in latest
    assert "not yet anchored" not in latest
    assert verify_all().problems == []


def test_the_api_lists_each_record_with_hashes_signer_anchor_and_download(
        app, network, client):
    referral_id = decided()
    records.render_pending()
    root = anchor(app)["tree_head"]["root"]
    referrals.add_addendum(referral_id, user(SPECIALIST),
                           {"text": "Give aspirin on arrival.", **SIGNED})
    body = client.get(f"/api/v1/referrals/{referral_id}", headers=bearer(REFERRER)).json
    v1, v2 = body["decision_records"]
    stored = db.session.scalars(select(DecisionRecord).order_by(DecisionRecord.version)).all()
    decide = next(e for e in body["events"] if e["kind"] == "decide")
    assert v1 == {
        "version": 1, "status": "ready", "error": "",
        "content_sha256": stored[0].content_sha256,
        "pdf_sha256": hashlib.sha256(stored[0].pdf).hexdigest(),
        "signer": "Stroke Registrar (nights)", "signed_at": decide["at"],
        "event_seq": decide["seq"], "chain_head": stored[0].content["event_hash"],
        "anchored_root": root, "anchored_at": "2026-11-29T03:00:00+00:00",
        "download_url": f"/referrals/{referral_id}/records/1.pdf",
    }
    assert (v2["version"], v2["status"], v2["pdf_sha256"], v2["download_url"],
            v2["anchored_root"]) == (2, "pending", None, None, None)
    assert v2["content_sha256"] == stored[1].content_sha256
    download = client.get(v1["download_url"], headers=bearer(REFERRER))
    assert download.status_code == 200
    assert hashlib.sha256(download.data).hexdigest() == v1["pdf_sha256"]


def test_verify_names_a_record_noted_with_a_root_no_anchor_signed(app, network):
    referral_id = decided()
    anchor(app)
    assert verify_all().problems == []
    tamper("UPDATE decision_records SET anchored_root = :r WHERE referral_id = :id",
           r="ab" * 32, id=referral_id)
    record = records.latest(referral_id)
    assert verify_all().problems == [
        f"decision record {record.id} (v1) of referral {referral_id}: noted as anchored in "
        f"root {'ab' * 32}, which no anchor in the anchors file has"]


def test_verify_names_a_record_noted_with_a_real_root_that_does_not_cover_it(
        app, network):
    other = decided()
    before = anchor(app)["tree_head"]["root"]  # covers `other`, not the next decision
    referral_id = decided()
    after = anchor(app)["tree_head"]["root"]
    record = records.latest(referral_id)
    assert (record.anchored_root, records.latest(other).anchored_root) == (after, before)
    assert verify_all().problems == []
    tamper("UPDATE decision_records SET anchored_root = :r WHERE id = :id",
           r=before, id=record.id)
    assert verify_all().problems == [
        f"decision record {record.id} (v1) of referral {referral_id}: noted as anchored in "
        f"root {before} (2026-11-29T03:00:00.000000Z), whose tree does not cover its event "
        f"seq {record.event_seq}"]


def test_verify_names_a_record_noted_with_a_root_taken_before_its_decision(app, network):
    referral_id = raise_stroke().id
    referrals.acknowledge(referral_id, user(SPECIALIST))
    early = anchor(app)["tree_head"]["root"]  # the referral's head before the decision
    referrals.perform("decide", referral_id, user(SPECIALIST), {
        "outcome": "advice_only", "advice": "Aspirin.", "rationale": "Small infarct.",
        **SIGNED})
    anchor(app)
    record = records.latest(referral_id)
    tamper("UPDATE decision_records SET anchored_root = :r WHERE id = :id",
           r=early, id=record.id)
    assert verify_all().problems == [
        f"decision record {record.id} (v1) of referral {referral_id}: noted as anchored in "
        f"root {early} (2026-11-29T03:00:00.000000Z), whose tree does not cover its event "
        f"seq {record.event_seq}"]
