"""The day's signed tree head reaches every active audit lead by email, once a day, as
the anchors file has it, and names no patient (workflow/audit/root_email.py)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from extensions import db
from integrations import anchor_log
from models import RootEmail, User
from tests.clock import SUITE_NIGHT
from tests.paging.helpers import raise_stroke
from workflow.accounts.accounts import create_user
from workflow.audit import anchors, root_email

AUDIT_LEAD = "audit@em.demo.nhs.uk"
pytestmark = pytest.mark.clock(at=SUITE_NIGHT)


@pytest.fixture
def app_config(tmp_path, smtp_server) -> dict:
    key_file = tmp_path / "anchor-key.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return {**smtp_server.app_config(), "ANCHOR_KEY_FILE": str(key_file),
            "ANCHOR_LOG": str(tmp_path / "anchors.jsonl")}


def email_root(app, at=SUITE_NIGHT, worker="scheduler-a") -> int:
    return root_email.email_daily_root(app.extensions["goldenhour.channels"],
                                       app.config["ANCHOR_LOG"], at, worker)


def anchor(app) -> dict:
    return anchors.anchor(app.config["ANCHOR_KEY_FILE"], app.config["ANCHOR_LOG"])


def test_the_audit_leads_get_the_root_that_is_in_the_anchors_file(app, network, mailbox):
    create_user(email="second.audit@test.nhs.uk", name="Second Audit", password="x" * 12,
                roles=["audit_lead"], hospital_code="QMC", specialties=[])
    raise_stroke()
    anchor(app)
    raise_stroke()
    anchor(app)  # the later one is the day's latest
    written = anchor_log.read_all(app.config["ANCHOR_LOG"])[-1]
    assert email_root(app) == 2
    assert sorted(r for m in mailbox.messages for r in m.rcpt_tos) == [
        AUDIT_LEAD, "second.audit@test.nhs.uk"]
    mail = mailbox.messages[0].message
    body = mail.get_content()
    assert mail["Subject"] == "goldenhour evidence root of 2026-11-29"
    head = written["tree_head"]
    assert f"Root (SHA-256):   {head['root']}" in body
    assert f"Signed at:        {head['at']}" in body
    assert f"Tree size:        3 leaves (2 referrals and the access log at seq " \
           f"{head['access_log_seq']})" in body
    assert written["signature"] in body and written["public_key"] in body
    assert root_email.fingerprint(written["public_key"]) in body
    assert f"tools/verify_proof.py proof.json --public-key {written['public_key']}" in body
    kept = db.session.get(RootEmail, SUITE_NIGHT.date())
    assert (kept.root, kept.sent_at, kept.claimed_by) == (head["root"], SUITE_NIGHT,
                                                         "scheduler-a")
    assert kept.result == f"sent to {AUDIT_LEAD}; sent to second.audit@test.nhs.uk"


def test_a_second_run_the_same_day_sends_nothing_and_the_next_day_sends_again(
        app, network, mailbox):
    raise_stroke()
    anchor(app)
    assert email_root(app) == 1
    assert email_root(app, at=SUITE_NIGHT + timedelta(hours=20), worker="scheduler-b") == 0
    assert len(mailbox.messages) == 1
    assert email_root(app, at=SUITE_NIGHT + timedelta(days=1)) == 1
    assert len(mailbox.messages) == 2


def test_two_schedulers_at_the_same_moment_send_it_once(app, network, mailbox):
    raise_stroke()
    anchor(app)
    start, sent = threading.Barrier(2), {}

    def run(worker: str) -> None:
        with app.app_context():
            start.wait()
            sent[worker] = email_root(app, worker=worker)
            db.session.remove()

    threads = [threading.Thread(target=run, args=(w,)) for w in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(sent.values()) == [0, 1]
    assert len(mailbox.messages) == 1


def test_the_email_names_no_patient(app, network, mailbox):
    referral = raise_stroke()
    anchor(app)
    email_root(app)
    body = mailbox.messages[0].message.get_content()
    for value in (referral.nhs_number, referral.family_name, referral.given_name,
                  referral.birth_date.isoformat(), referral.reference):
        assert value and value not in body, value
    assert f"referral {referral.id}" not in body


def test_an_inactive_audit_lead_gets_none_and_nothing_anchored_sends_nothing(
        app, network, mailbox):
    assert email_root(app) == 0  # no anchor yet: the day is not claimed
    assert db.session.get(RootEmail, SUITE_NIGHT.date()) is None
    db.session.execute(update(User).where(User.email == AUDIT_LEAD).values(active=False))
    db.session.commit()
    anchor(app)
    assert email_root(app) == 0
    assert mailbox.messages == []
    assert db.session.get(RootEmail, SUITE_NIGHT.date()).result == \
        "nobody to tell: no active audit lead"


def test_the_scheduler_emails_the_root_daily_when_anchoring_is_configured(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    from workflow.scheduler import _add_job

    scheduler = BackgroundScheduler()
    _add_job(scheduler, app)
    assert str(scheduler.get_job("root_email").trigger) == \
        "cron[hour='23', minute='50']"
    app.config["ANCHOR_LOG"] = ""
    without = BackgroundScheduler()
    _add_job(without, app)
    assert without.get_job("root_email") is None


def email_missed(app, at, worker="scheduler-a") -> int:
    return root_email.email_missed_root(app.extensions["goldenhour.channels"],
                                        app.config["ANCHOR_LOG"], at, worker)


def test_a_day_whose_email_never_went_out_gets_it_late_once(app, network, mailbox):
    raise_stroke()
    anchor(app)  # anchored on the night, but no scheduler ran at 23:50
    next_morning = SUITE_NIGHT + timedelta(days=1)
    assert email_missed(app, next_morning) == 1
    assert email_missed(app, next_morning + timedelta(hours=1), worker="scheduler-b") == 0
    body = mailbox.messages[0].message.get_content()
    missed = SUITE_NIGHT.date().isoformat()
    assert f"Sent late: no email went out for {missed}" in body
    assert anchor_log.read_last(app.config["ANCHOR_LOG"])["tree_head"]["root"] in body
    row = db.session.get(RootEmail, SUITE_NIGHT.date())
    assert row.sent_at == next_morning and row.result == f"sent to {AUDIT_LEAD}"
    assert len(mailbox.messages) == 1


def test_a_day_that_had_its_email_gets_no_late_one(app, network, mailbox):
    raise_stroke()
    anchor(app)
    assert email_root(app) == 1
    assert email_missed(app, SUITE_NIGHT + timedelta(days=1)) == 0
    assert len(mailbox.messages) == 1
    assert "Sent late" not in mailbox.messages[0].message.get_content()


def test_nothing_is_sent_late_for_a_day_before_anything_was_anchored(app, network, mailbox):
    assert email_missed(app, SUITE_NIGHT) == 0  # nothing anchored at all
    raise_stroke()
    anchor(app)  # the server's first anchor is today: yesterday had nothing to send
    assert email_missed(app, SUITE_NIGHT) == 0
    assert db.session.get(RootEmail, SUITE_NIGHT.date() - timedelta(days=1)) is None
    assert mailbox.messages == []


def test_the_scheduler_looks_for_a_missed_day_every_hour(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    from workflow.scheduler import _add_job

    scheduler = BackgroundScheduler()
    _add_job(scheduler, app)
    job = scheduler.get_job("root_email_missed")
    assert str(job.trigger) == "interval[1:00:00]" and job.args[1] is True
