"""Server-sent events that keep a page current: one stream per referral page and one per
list page (worklist, my referrals).

A stream is signed in by the session cookie only (no bearer tokens), checked like its
page: 401 when signed out, 403 when the user may not see the referral or the list. Each
tick it reads the page's mark (workflow/referrals/live.py: indexed ``id > last`` reads)
in a short transaction that is closed before it sleeps, so a stream never holds a
database connection while it waits; any gunicorn worker can serve any stream. It sends

- ``change`` (id: the newest referral event id) when something on the page changed: the
  browser fetches the page again and swaps its live parts;
- ``heartbeat`` every LIVE_HEARTBEAT_SECONDS (the page's "Updated hh:mm:ss");
- ``end`` after LIVE_STREAM_SECONDS, or ``signed-out`` when the session has closed.

The browser resumes with ``Last-Event-ID`` (or ``?last=``). ``?once=1`` answers one JSON
snapshot instead, for browsers where the stream fails (polling). While a stream is open
its session counts as active (the idle timeout); the page closes it when hidden.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta

from flask import Blueprint, Response, current_app, g, request, session, stream_with_context
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from extensions import db
from models import User
from views.access import client_address, visible_or_refuse
from workflow import access_log
from workflow.accounts import accounts, policy
from workflow.referrals import live, viewers
from workflow.times import now

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__)

RETRY_MS = 2000  # how long the browser waits before it reconnects
LAST_ID = re.compile(r"\d{1,12}")
PAGING = re.compile(r"[0-9a-f]{0,16}")
LISTS = {"worklist": "worklist.view", "mine": "referral.raise"}


def _refuse(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status=status,
                    mimetype="application/json")


def _signed_in_by_session() -> Response | None:
    """None when the request is signed in by its session cookie; else the 401."""
    if not current_user.is_authenticated or g.get("authenticated_by") != "session":
        return _refuse(401, "Sign in to follow this page.")
    return None


def _seen() -> live.Mark | Response:
    """The mark the browser has (Last-Event-ID or ?last=, and ?paging=); 400 if bad."""
    last = request.headers.get("Last-Event-ID") or request.args.get("last", "0")
    paging = request.args.get("paging", "")
    if not LAST_ID.fullmatch(last.strip()):
        return _refuse(400, "Last-Event-ID must be a referral event id (digits only).")
    if not PAGING.fullmatch(paging):
        return _refuse(400, "paging must be the signature the page was given.")
    return live.Mark(int(last), paging)


def _event(name: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"


def _stream(read_mark, seen: live.Mark) -> Response:
    """The response: one JSON snapshot (?once=1) or the event stream."""
    if request.args.get("once"):
        try:
            mark = read_mark()
        finally:
            db.session.rollback()
        return Response(json.dumps({"last": mark.event_id, "paging": mark.paging,
                                    "changed": bool(mark.differs(seen)),
                                    "at": now().isoformat()}),
                        mimetype="application/json", headers={"Cache-Control": "no-store"})
    config = current_app.config
    user_id, sid = current_user.id, session.get("sid")
    idle = timedelta(minutes=config["IDLE_TIMEOUT_MINUTES"])
    db.session.close()  # the request's own reads are done: give the connection back

    def events():
        nonlocal seen
        stop_at = time.monotonic() + config["LIVE_STREAM_SECONDS"]
        beat_every, pause = config["LIVE_HEARTBEAT_SECONDS"], config["LIVE_POLL_MS"] / 1000
        next_beat = 0.0
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            try:
                # The session counts as active while its page listens (idle timeout).
                open_ = accounts.touch_session(sid, user_id, idle)
                mark = read_mark() if open_ else None
            except SQLAlchemyError:
                log.exception("live stream: the database did not answer")
                return  # the browser reconnects; the page says it is out of date
            finally:
                db.session.rollback()
                db.session.close()  # never hold a connection while sleeping
            if mark is None:
                yield _event("signed-out", {"at": now().isoformat()})
                return
            if mark.differs(seen):
                seen = mark
                yield _event("change", {"last": mark.event_id, "paging": mark.paging,
                                        "at": now().isoformat()}, mark.event_id)
            tick = time.monotonic()
            if tick >= next_beat:
                next_beat = tick + beat_every
                yield _event("heartbeat", {"at": now().isoformat()})
            if tick >= stop_at:
                yield _event("end", {"at": now().isoformat()})
                return
            time.sleep(pause)

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.route("/referrals/<int:referral_id>/events")
def referral_events(referral_id: int):
    """The referral page's stream. 401 signed out; 403/404 as the page."""
    refused = _signed_in_by_session()
    if refused:
        return refused
    visible_or_refuse(referral_id, "referral.stream")
    seen = _seen()
    if isinstance(seen, Response):
        return seen
    if not request.args.get("once"):
        access_log.record("referral.stream", "ok", user=current_user,
                          address=client_address(), referral_id=referral_id)
    user_id = current_user.id

    def read_mark() -> live.Mark:
        at = now()
        viewers.note(referral_id, user_id, at)  # "also viewing now" on others' pages
        return live.referral_mark(referral_id, user_id, at)

    return _stream(read_mark, seen)


@bp.route("/referrals/events/<which>")
def list_events(which: str):
    """The stream of a list page: ``worklist`` or ``mine``. 401 signed out; 403 for a
    user who may not see that list; 404 for another name."""
    if which not in LISTS:
        return _refuse(404, "No such list.")
    refused = _signed_in_by_session()
    if refused:
        return refused
    if not policy.allowed(current_user, LISTS[which]):
        access_log.record("referrals.stream", "denied", user=current_user,
                          address=client_address(), detail=f"needs {LISTS[which]}")
        return _refuse(403, "You may not see this list.")
    seen = _seen()
    if isinstance(seen, Response):
        return seen
    user_id = current_user.id

    def read_mark() -> live.Mark:
        return live.list_mark(db.session.get(User, user_id), which, seen.event_id)

    return _stream(read_mark, seen)
