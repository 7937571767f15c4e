"""The live streams (views/live.py): signed in by the session and checked like their
page, resumable from Last-Event-ID, bounded in length, and counting as activity for the
idle timeout. Each stream here lasts LIVE_STREAM_SECONDS (1 s) and is read whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AccessLog, LoginSession, ReferralEvent
from tests.workflow.helpers import user
from tests.workflow.test_pages import NIGHT, REFERRER, raise_stroke
from workflow.referrals import live
from workflow.times import now

pytestmark = pytest.mark.clock


@pytest.fixture
def app_config():
    return {"LIVE_STREAM_SECONDS": 1, "LIVE_POLL_MS": 50, "LIVE_HEARTBEAT_SECONDS": 1}


def events_of(response) -> list[tuple[str | None, str, dict]]:
    """(id, event, data) of every event in a whole stream (read with ``buffered=True``:
    the test client runs each request in a context of its own)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    found = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return found


def stream(client, url: str, **kwargs) -> list[tuple[str | None, str, dict]]:
    return events_of(client.get(url, buffered=True, **kwargs))


def newest_event(referral_id: int) -> int:
    return db.session.scalar(select(func.max(ReferralEvent.id))
                             .where(ReferralEvent.referral_id == referral_id))


def test_a_stream_needs_a_session_that_may_see_the_referral(login, client):
    referral = raise_stroke(login(REFERRER))
    url = f"/referrals/{referral.id}/events"
    assert client.get(url).status_code == 401  # signed out: no redirect to a login page
    assert login("referrer@lch.demo.nhs.uk").get(url).status_code == 403
    assert db.session.scalar(select(func.count(AccessLog.id)).where(
        AccessLog.action == "referral.stream", AccessLog.outcome == "denied")) == 1
    assert login(REFERRER).get(f"/referrals/{referral.id + 1000}/events").status_code == 404
    from tests.workflow.helpers import bearer

    # A bearer token is for the JSON API, not a page's stream.
    assert client.get(url, headers=bearer(REFERRER)).status_code == 401
    bad = login(REFERRER).get(url, headers={"Last-Event-ID": "12; DROP"})
    assert bad.status_code == 400 and "digits" in bad.json["error"]


def test_the_stream_says_nothing_changed_to_a_page_that_is_current(login):
    client = login(REFERRER)
    referral = raise_stroke(client)
    mark = live.referral_mark(referral.id, user(REFERRER).id, now())
    db.session.commit()
    found = stream(client, f"/referrals/{referral.id}/events?paging={mark.paging}",
                                 headers={"Last-Event-ID": str(mark.event_id)})
    kinds = [name for _, name, _ in found]
    assert "change" not in kinds
    assert kinds[0] == "heartbeat" and kinds[-1] == "end"
    assert found[0][2]["at"] == "2026-11-29T03:00:00+00:00"  # the server's (frozen) now


def test_the_stream_resumes_from_last_event_id_with_what_came_after(login):
    referrer, specialist = login(REFERRER), login(NIGHT)
    referral = raise_stroke(referrer)
    seen = live.referral_mark(referral.id, user(REFERRER).id, now())
    db.session.commit()
    assert specialist.post(f"/referrals/{referral.id}/acknowledge").status_code == 302
    assert specialist.post(f"/referrals/{referral.id}/messages",
                           data={"text": "CT angiogram please"}).status_code == 302
    newest = newest_event(referral.id)
    assert newest > seen.event_id
    db.session.commit()

    found = stream(referrer, f"/referrals/{referral.id}/events?paging={seen.paging}",
                                   headers={"Last-Event-ID": str(seen.event_id)})
    changes = [(event_id, data) for event_id, name, data in found if name == "change"]
    assert len(changes) == 1  # one change names everything since: the page is fetched once
    assert changes[0][0] == str(newest) and changes[0][1]["last"] == newest
    # ?last= does the same for the first connection (no header yet); once current, quiet.
    now_mark = live.referral_mark(referral.id, user(REFERRER).id, now())
    db.session.commit()
    again = stream(referrer, f"/referrals/{referral.id}/events?last={newest}"
                                   f"&paging={now_mark.paging}")
    assert [name for _, name, _ in again if name == "change"] == []


def test_polling_asks_once_and_hears_whether_anything_changed(login):
    client = login(REFERRER)
    referral = raise_stroke(client)
    mark = live.referral_mark(referral.id, user(REFERRER).id, now())
    db.session.commit()
    url = f"/referrals/{referral.id}/events?once=1&paging={mark.paging}"
    assert client.get(f"{url}&last={mark.event_id}").json["changed"] is False
    body = client.get(f"{url}&last={mark.event_id - 1}").json
    assert body["changed"] is True and body["last"] == mark.event_id


def test_the_list_streams_follow_the_lists_their_user_may_see(login):
    referrer = login(REFERRER)
    before = live.list_mark(db.session.merge(_user(NIGHT)), "worklist")
    db.session.commit()
    assert login(NIGHT).get("/referrals/events/mine").status_code == 403
    assert referrer.get("/referrals/events/worklist").status_code == 403
    assert referrer.get("/referrals/events/nonsense").status_code == 404
    referral = raise_stroke(referrer)
    db.session.commit()
    found = stream(login(NIGHT), f"/referrals/events/worklist?last={before.event_id}")
    assert [d["last"] for _, name, d in found if name == "change"] == [newest_event(referral.id)]
    # Another hospital's referrer hears nothing of it.
    other = stream(login("referrer@lch.demo.nhs.uk"),
        f"/referrals/events/mine?last={before.event_id}")
    assert [name for _, name, _ in other if name == "change"] == []


def test_a_stream_keeps_its_session_from_timing_out_and_ends_with_it(login):
    client = login(REFERRER)
    referral = raise_stroke(client)
    row = db.session.scalars(select(LoginSession).where(LoginSession.ended_at.is_(None))
                             .order_by(LoginSession.id.desc())).first()
    # The idle timeout counts wall-clock time (workflow/accounts/accounts.py).
    row.last_seen_at = datetime.now(UTC) - timedelta(minutes=29)
    db.session.commit()
    stream(client, f"/referrals/{referral.id}/events")
    db.session.refresh(row)
    assert datetime.now(UTC) - row.last_seen_at.replace(tzinfo=UTC) < timedelta(minutes=1)
    row.ended_at = datetime.now(UTC)  # signed out elsewhere
    db.session.commit()
    assert client.get(f"/referrals/{referral.id}/events").status_code in (401, 302)


def _user(email):
    from models import User

    return db.session.scalar(select(User).where(User.email == email))
