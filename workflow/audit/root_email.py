"""The day's signed tree head, emailed to every active audit lead once a day.

A copy of the root outside the server: whoever rewrites the database and the anchors
file still cannot reach the audit leads' mailboxes. `email_daily_root` claims the day
(its `root_emails` row), commits, then sends outside any transaction, as the rota-gap
emails do: two schedulers, or a leader that crashed and came back, send it once.
The email names no patient: only the tree head, its signature and how to check it.

The day's email goes at 23:50 UTC. If no scheduler ran then (a restart, a long
outage), `email_missed_root` sends it late, within the hour after a scheduler is
back: the latest root then, which covers the missed day too, saying that it is late.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from integrations import anchor_log
from integrations.pager.base import PageMessage, TransportError
from models import Role, RootEmail, User

log = logging.getLogger(__name__)


def fingerprint(public_hex: str) -> str:
    """SHA-256 of the raw Ed25519 public key, hex: short enough to compare by eye."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()


def compose(entry: dict, late_for: date | None = None) -> str:
    """The email's text for one anchors-file line. Its first sentence is the subject.
    ``late_for``: the day whose 23:50 UTC email did not go out, which this one stands
    in for."""
    head = entry["tree_head"]
    late = [] if late_for is None else [
        f"Sent late: no email went out for {late_for.isoformat()} (no scheduler was "
        "running at 23:50 UTC that day). The root below was signed later and covers "
        "that day too.", ""]
    return "\n".join([
        f"goldenhour evidence root of {head['at'][:10]}. This is the latest signed tree "
        "head: every referral's event-chain head and the access log, as anchored outside "
        "the database. Keep this email; it is a copy the database cannot change.",
        "", *late,
        f"Signed at:        {head['at']}",
        f"Root (SHA-256):   {head['root']}",
        f"Tree size:        {head['tree_size']} leaves ({head['referrals']} referrals and "
        f"the access log at seq {head['access_log_seq']})",
        f"Signature:        {entry['signature']}",
        f"Public key:       {entry['public_key']}",
        f"Key fingerprint:  {fingerprint(entry['public_key'])} (SHA-256 of the public key)",
        "",
        "To check a referral against this root, months from now:",
        "  1. on the server, export its inclusion proof:",
        "       flask audit proof <referral id> > proof.json",
        "  2. anywhere, with Python and the cryptography package only:",
        f"       python tools/verify_proof.py proof.json --public-key {entry['public_key']}",
        "  3. the proof's tree_head.root must be this root (or a later day's), and the",
        "     key fingerprint the one above.",
        "`flask audit verify` checks the whole database against every anchor.",
    ]) + "\n"


def _audit_leads() -> list[str]:
    people = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.id))
    return [u.email for u in people if u.email and u.has_role(Role.AUDIT_LEAD)]


def _claim(entry: dict, day: date, at: datetime, worker: str) -> bool:
    """Insert the day's row; commit. False when another scheduler has it already."""
    head = entry["tree_head"]
    db.session.add(RootEmail(day=day, root=head["root"], tree_at=head["at"],
                             claimed_by=worker[:100], claimed_at=at))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def email_daily_root(channels: Mapping, log_file: str, at: datetime, worker: str) -> int:
    """Email the latest tree head in ``log_file`` to every active audit lead, once for
    the UTC day of ``at``; return how many emails were sent (0 when the day was
    claimed already, or nothing is anchored yet).

    Claims first and commits, then sends outside any transaction; what each send gave
    is kept on the day's row. A failed email is not retried (the row says why).
    Raises AnchorLogError (integrations.anchor_log) if the anchors file cannot be read.
    """
    entry = anchor_log.read_last(log_file)
    if entry is None:
        return 0
    return _send(channels, entry, at.date(), at, worker, late=False)


def email_missed_root(channels: Mapping, log_file: str, at: datetime, worker: str) -> int:
    """If the UTC day before ``at`` got no email although something was anchored by its
    end, email the latest tree head now for that day, saying it is late; return how
    many emails were sent (0 when that day has its email, or had nothing anchored, as
    on a server's first day). Claims as `email_daily_root` does, so it goes once.
    Raises AnchorLogError if the anchors file cannot be read."""
    day = at.date() - timedelta(days=1)
    if db.session.get(RootEmail, day) is not None:
        db.session.rollback()
        return 0
    first = anchor_log.read_first(log_file)
    if first is None or first["tree_head"]["at"][:10] > day.isoformat():
        db.session.rollback()
        return 0
    return _send(channels, anchor_log.read_last(log_file), day, at, worker, late=True)


def _send(channels: Mapping, entry: dict, day: date, at: datetime, worker: str, *,
          late: bool) -> int:
    if db.session.get(RootEmail, day) is not None or not _claim(entry, day, at, worker):
        db.session.rollback()
        return 0
    recipients = _audit_leads()
    db.session.rollback()  # no transaction held while the mail server answers
    text = compose(entry, late_for=day if late else None)
    results, sent = [], 0
    for email in recipients:
        try:
            channels["email"].notify(PageMessage(to=email, text=text,
                                                 reference=f"evidence-root-{day}"))
            results.append(f"sent to {email}")
            sent += 1
        except TransportError as error:
            results.append(f"not sent to {email}: {error}")
    db.session.execute(update(RootEmail).where(RootEmail.day == day).values(
        sent_at=at if sent else None,
        result=("; ".join(results) or "nobody to tell: no active audit lead")[:500]))
    db.session.commit()
    log.info("evidence root %s of %s: %s", entry["tree_head"]["root"], day,
             "; ".join(results) or "no audit lead")
    return sent
