"""Receipts for the referral's thread (workflow/referrals/receipts.py): each message is
sent to everyone involved, delivered when a page of theirs shows it, read when their
page reports it was on the screen; the unread counts on the lists and the Pager link
follow."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AccessLog, MessageReceipt, ReferralEvent
from tests.paging.helpers import run_sweep
from tests.workflow.helpers import DUTY_MANAGER, REFERRER, user
from tests.workflow.test_pages import NIGHT, raise_stroke
from workflow.referrals import actions, live
from workflow.times import now

pytestmark = pytest.mark.clock


def receipt_of(event_id: int, email: str) -> MessageReceipt | None:
    db.session.expire_all()
    return db.session.scalar(select(MessageReceipt).where(
        MessageReceipt.event_id == event_id, MessageReceipt.user_id == user(email).id))


def newest_message(referral_id: int) -> ReferralEvent:
    return db.session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral_id, ReferralEvent.kind == "message")
        .order_by(ReferralEvent.id.desc())).first()


def receipts_line(page: str, event_id: int) -> str:
    block = page.split(f'id="msg-{event_id}"', 1)[1].split("</li>", 1)[0]
    line = block.split("data-receipts>", 1)[1].split("</p>", 1)[0]
    return re.sub(r"<[^>]+>|\s+", " ", line).strip()


def test_a_message_goes_sent_delivered_read_for_each_person_involved(login):
    referrer, specialist = login(REFERRER), login(NIGHT)
    referral = raise_stroke(referrer)
    actions.acknowledge(referral.id, user(NIGHT))
    sent = specialist.post(f"/referrals/{referral.id}/thread",
                           data={"text": "CTA shows an M1 occlusion. Send the images."})
    assert sent.status_code == 302
    message = newest_message(referral.id)
    # Sent: one receipt for each person involved but the author, none delivered yet.
    names = {r.user.email for r in db.session.scalars(
        select(MessageReceipt).where(MessageReceipt.event_id == message.id))}
    assert names == {REFERRER, DUTY_MANAGER}
    assert receipt_of(message.id, REFERRER).delivered_at is None
    assert receipt_of(message.id, NIGHT) is None
    page = specialist.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Sent to" in receipts_line(page, message.id)
    referrer_name = user(REFERRER).name

    # Delivered: the referrer's page showed it (and the mark changed, so the
    # specialist's open page is told).
    before = live.referral_mark(referral.id, user(NIGHT).id, now())
    assert referrer.get(f"/referrals/{referral.id}").status_code == 200
    assert receipt_of(message.id, REFERRER).delivered_at is not None
    assert receipt_of(message.id, REFERRER).read_at is None
    assert live.referral_mark(referral.id, user(NIGHT).id, now()).differs(before)
    page = specialist.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f"Delivered to {referrer_name}" in receipts_line(page, message.id)

    # Read: the referrer's page reports the message was on the screen.
    before = live.referral_mark(referral.id, user(NIGHT).id, now())
    read = referrer.post(f"/referrals/{referral.id}/thread/read",
                         json={"through": message.id})
    assert read.status_code == 204
    receipt = receipt_of(message.id, REFERRER)
    assert receipt.read_at is not None
    assert live.referral_mark(referral.id, user(NIGHT).id, now()).differs(before)
    page = specialist.get(f"/referrals/{referral.id}").get_data(as_text=True)
    line = receipts_line(page, message.id)
    assert re.search(rf"Read by {re.escape(referrer_name)} \d\d:\d\d", line), line
    assert "Sent to" in line  # the duty manager has not opened it
    # Each read leaves one access-log trace; reporting it again adds none.
    assert referrer.post(f"/referrals/{referral.id}/thread/read",
                         json={"through": message.id}).status_code == 204
    assert db.session.scalar(select(func.count(AccessLog.id)).where(
        AccessLog.action == "message.read", AccessLog.referral_id == referral.id,
        AccessLog.user_id == user(REFERRER).id)) == 1
    # A read is not a state change: no event on the chain.
    assert newest_message(referral.id).id == message.id
    assert db.session.scalar(select(func.max(ReferralEvent.id)).where(
        ReferralEvent.referral_id == referral.id)) == message.id


def test_unread_counts_show_on_the_lists_and_the_pager_link_until_read(login):
    referrer, specialist = login(REFERRER), login(NIGHT)
    referral = raise_stroke(referrer)
    actions.acknowledge(referral.id, user(NIGHT))
    for text in ("Is she on a DOAC?", "And her weight?"):
        assert specialist.post(f"/referrals/{referral.id}/thread",
                               data={"text": text}).status_code == 302
    mine = referrer.get("/referrals/mine").get_data(as_text=True)
    row = mine.split(f'id="r-{referral.id}"', 1)[1].split("</li>", 1)[0]
    assert 'data-unread="2"' in row and "2 unread" in row
    assert "data-unread-total>2 unread" in mine  # beside the Pager link
    # The specialist wrote them: nothing unread on their worklist, until the referrer
    # answers.
    assert "data-unread" not in specialist.get("/worklist").get_data(as_text=True)
    referrer.post(f"/referrals/{referral.id}/thread", data={"text": "Apixaban, 70 kg."})
    worklist = specialist.get("/worklist").get_data(as_text=True)
    row = worklist.split(f'id="r-{referral.id}"', 1)[1].split("</li>", 1)[0]
    assert 'data-unread="1"' in row and "data-unread-total>1 unread" in worklist

    # Reading the first leaves one.
    first = db.session.scalars(select(ReferralEvent.id).where(
        ReferralEvent.referral_id == referral.id, ReferralEvent.kind == "message")
        .order_by(ReferralEvent.id)).first()
    referrer.post(f"/referrals/{referral.id}/thread/read", json={"through": first})
    mine = referrer.get("/referrals/mine").get_data(as_text=True)
    assert 'data-unread="1"' in mine and "data-unread-total>1 unread" in mine
    referrer.post(f"/referrals/{referral.id}/thread/read",
                  json={"through": newest_message(referral.id).id})  # the referrer's own
    mine = referrer.get("/referrals/mine").get_data(as_text=True)
    assert "data-unread" not in mine


def test_a_read_report_must_name_a_message_and_stays_with_the_reader(login):
    referrer = login(REFERRER)
    referral = raise_stroke(referrer)
    bad = referrer.post(f"/referrals/{referral.id}/thread/read", json={"through": "all"})
    assert bad.status_code == 422
    assert login("referrer@lch.demo.nhs.uk").post(
        f"/referrals/{referral.id}/thread/read", json={"through": 1}).status_code == 403


CONSULTANT = "stroke.consultant@qmc.demo.nhs.uk"


def receipt_count(event_id: int) -> int:
    return db.session.scalar(select(func.count(MessageReceipt.id))
                             .where(MessageReceipt.event_id == event_id))


def unread_on_worklist(client, referral_id: int) -> str | None:
    page = client.get("/worklist").get_data(as_text=True)
    row = page.split(f'id="r-{referral_id}"', 1)[1].split("</li>", 1)[0]
    found = re.search(r'data-unread="(\d+)"', row)
    return found.group(1) if found else None


def test_the_specialist_who_accepts_later_gets_the_earlier_messages_unread(login):
    referrer = login(REFERRER)
    referral = raise_stroke(referrer)  # not yet paged: no specialist is involved
    assert referrer.post(f"/referrals/{referral.id}/thread",
                         data={"text": "She is on apixaban, last dose 08:00."}
                         ).status_code == 302
    message = newest_message(referral.id)
    assert receipt_of(message.id, NIGHT) is None
    before = receipt_count(message.id)

    actions.acknowledge(referral.id, user(NIGHT))
    receipt = receipt_of(message.id, NIGHT)
    assert receipt is not None and receipt.delivered_at is None and receipt.read_at is None
    assert receipt_count(message.id) == before + 1  # the others' receipts are not doubled
    night = login(NIGHT)
    assert unread_on_worklist(night, referral.id) == "1"
    # The referrer's page now says it was sent to the specialist; opening it delivers it.
    night.get(f"/referrals/{referral.id}")
    page = referrer.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f"Delivered to {user(NIGHT).name}" in receipts_line(page, message.id)

    # Handed over after acceptance: the colleague has the thread to read as well.
    actions.hand_over(referral.id, user(NIGHT), {"to": CONSULTANT})
    assert receipt_of(message.id, CONSULTANT).read_at is None
    assert unread_on_worklist(login(CONSULTANT), referral.id) == "1"


def test_a_further_tier_paged_after_the_messages_gets_them_unread(login, clock):
    referrer = login(REFERRER)
    referral = raise_stroke(referrer)
    run_sweep()  # tier 1 (the night registrar) is paged
    assert referrer.post(f"/referrals/{referral.id}/thread",
                         data={"text": "GCS has dropped to 11."}).status_code == 302
    message = newest_message(referral.id)
    assert receipt_of(message.id, NIGHT) is not None
    assert receipt_of(message.id, CONSULTANT) is None
    clock.shift(timedelta(minutes=6))
    run_sweep()  # nobody accepted: tier 2, the consultant, is paged
    receipt = receipt_of(message.id, CONSULTANT)
    assert receipt is not None and receipt.read_at is None
    assert unread_on_worklist(login(CONSULTANT), referral.id) == "1"
    run_sweep()  # a later sweep adds nothing twice
    assert receipt_count(message.id) == len({REFERRER, DUTY_MANAGER, NIGHT, CONSULTANT}) - 1


def test_the_api_lists_the_thread_with_each_recipients_receipt_and_marks_nothing(
        login, client):
    from tests.workflow.helpers import bearer

    referrer = login(REFERRER)
    referral = raise_stroke(referrer)
    actions.acknowledge(referral.id, user(NIGHT))
    posted = client.post(f"/api/v1/referrals/{referral.id}/messages",
                         json={"text": "Door-to-needle target: 13:40."}, headers=bearer(NIGHT))
    assert posted.status_code == 200, posted.get_data(as_text=True)
    message = newest_message(referral.id)
    referrer.get(f"/referrals/{referral.id}")  # the referrer's page shows it: delivered

    listed = client.get(f"/api/v1/referrals/{referral.id}/messages",
                        headers=bearer(DUTY_MANAGER))
    assert listed.status_code == 200
    [entry] = listed.json["messages"]
    assert (entry["id"], entry["kind"], entry["text"], entry["photo"]) == \
        (message.id, "message", "Door-to-needle target: 13:40.", None)
    assert entry["author"] == message.actor_label and entry["author_id"] == user(NIGHT).id
    assert {r["name"]: r["status"] for r in entry["receipts"]} == {
        user(REFERRER).name: "delivered", user(DUTY_MANAGER).name: "sent"}
    # Reading the thread through the API is not a page showing it.
    assert receipt_of(message.id, DUTY_MANAGER).delivered_at is None
