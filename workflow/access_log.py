"""Writing the access log: one row for each view, action, refusal and login.

The log is evidence, so it is hash-chained like referral events: each row stores
SHA-256(previous row's hash + its own canonical content) and a gap-free ``seq``.
The chain is global, so the previous hash is taken while the row's transaction
commits (a ``before_commit`` hook, `install()`): on PostgreSQL under a transaction
advisory lock, on SQLite after the row's INSERT has taken the write lock. Taking it
last, when the transaction needs no other lock, means a request that holds a
referral's row lock and waits for the log's lock cannot deadlock with one that holds
the log's lock: that one only commits.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from extensions import db
from models import AccessLog, HubService, Referral, Role, User
from models.types import utcnow

GENESIS = "0" * 64
# pg_advisory_xact_lock's key for the access log's chain head ("ghaccess" in ASCII).
LOCK_KEY = 0x6768616363657373
_UNSEALED = "goldenhour.unsealed_access_log"


def record(
    action: str,
    outcome: str,
    *,
    user: User | None = None,
    email: str = "",
    address: str = "",
    referral_id: int | None = None,
    detail: str = "",
    commit: bool = True,
) -> AccessLog:
    """Append one access-log row (committed unless ``commit`` is False; it is sealed
    into the chain when its transaction commits).

    ``outcome`` is ok, denied or failure. Never raises for the caller's data: long
    text is cut to the column size rather than failing the action being logged.
    """
    if outcome not in {"ok", "denied", "failure"}:
        raise ValueError(f"unknown outcome {outcome!r}")
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    row = AccessLog(
        user_id=user.id if authenticated else None,
        email=(user.email if authenticated else email)[:254],
        role=",".join(sorted(user.roles)) if authenticated else "",
        address=(address or "")[:64],
        action=action[:64],
        outcome=outcome,
        referral_id=referral_id,
        detail=detail[:500],
        at=utcnow(),
    )
    db.session.add(row)
    db.session.info.setdefault(_UNSEALED, []).append(row)
    if action == "image.view" and outcome == "ok" and referral_id is not None \
            and authenticated and user.hospital_id is not None \
            and user.roles & {Role.SPECIALIST, Role.DUTY_MANAGER}:
        # The audit milestone "first image viewed", kept on the referral: the images
        # reached the hub, so only a view by the hub's clinicians counts (not the
        # referrer looking at their own CT or a photo they posted, nor an audit lead
        # reviewing it later).
        hub_hospital = (select(HubService.hospital_id)
                        .where(HubService.id == Referral.hub_service_id).scalar_subquery())
        db.session.execute(
            update(Referral)
            .where(Referral.id == referral_id, Referral.first_image_viewed_at.is_(None),
                   hub_hospital == user.hospital_id)
            .values(first_image_viewed_at=row.at)
            .execution_options(synchronize_session=False))
    if commit:
        db.session.commit()
    return row


def _at(value: datetime) -> str:
    if value.tzinfo is None:  # a plain row read back without the model's type
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row) -> str:
    """The row's sealed content as canonical JSON (``row`` an AccessLog or a plain row
    with the same columns); the same form as the event chain's."""
    return json.dumps({
        "id": row.id, "seq": row.seq, "at": _at(row.at), "user_id": row.user_id,
        "email": row.email, "role": row.role, "address": row.address,
        "action": row.action, "outcome": row.outcome, "referral_id": row.referral_id,
        "detail": row.detail,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, row) -> str:
    """SHA-256(prev_hash + canonical content), hex."""
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


def head(session: Session | None = None) -> tuple[int, str]:
    """(seq, hash) of the last sealed row, or (0, GENESIS) for an empty log."""
    session = session or db.session
    last = session.execute(
        select(AccessLog.seq, AccessLog.hash).where(AccessLog.seq.is_not(None))
        .order_by(AccessLog.seq.desc()).limit(1)).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


def _seal_pending(session: Session) -> None:
    rows = [row for row in session.info.pop(_UNSEALED, []) if row in session]
    if not rows:
        return
    # The INSERTs first: on SQLite they take the write lock, so the head read next
    # cannot be overtaken by another writer.
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    seq, prev = head(session)
    for row in sorted(rows, key=lambda r: r.id):
        seq += 1
        row.seq = seq
        row.prev_hash = prev
        row.hash = prev = row_hash(prev, row)


def _forget_pending(session: Session, previous_transaction) -> None:
    # A savepoint's rollback keeps the outer transaction's rows (those it removed are
    # no longer in the session, which _seal_pending checks).
    if not previous_transaction.nested:
        session.info.pop(_UNSEALED, None)


def install() -> None:
    """Seal access-log rows as their transaction commits (every session). Safe to
    call again."""
    if not event.contains(Session, "before_commit", _seal_pending):
        event.listen(Session, "before_commit", _seal_pending)
        event.listen(Session, "after_soft_rollback", _forget_pending)


def verify(batch: int = 5000, after: tuple[int, str] = (0, GENESIS)) -> tuple[int, list[str]]:
    """Walk the access log's chain in seq order: (rows checked, [problem, ...]).

    Names the first row whose content changed, a missing seq (a deleted row) and any
    row never sealed. A deleted last row leaves no gap: the anchors catch that.
    ``after`` (seq, hash) starts the walk after a row already checked (the nightly
    check: the row an anchor covered), whose hash the next row must follow.
    """
    problems: list[str] = []
    columns = (AccessLog.id, AccessLog.seq, AccessLog.at, AccessLog.user_id,
               AccessLog.email, AccessLog.role, AccessLog.address, AccessLog.action,
               AccessLog.outcome, AccessLog.referral_id, AccessLog.detail,
               AccessLog.prev_hash, AccessLog.hash)
    checked, expected, prev = 0, after[0] + 1, after[1]
    while True:
        rows = db.session.execute(
            select(*columns).where(AccessLog.seq >= expected)
            .order_by(AccessLog.seq).limit(batch)).all()
        if not rows:
            break
        for row in rows:
            checked += 1
            if row.seq != expected:
                problems.append(f"access log: row {row.id} (seq {row.seq}): expected seq "
                                f"{expected}: rows {expected}..{row.seq - 1} were deleted")
            elif row.prev_hash != prev:
                problems.append(f"access log: row {row.id} (seq {row.seq}): does not "
                                "follow the row before it")
            elif row_hash(prev, row) != row.hash:
                problems.append(f"access log: row {row.id} (seq {row.seq}): its content "
                                "was changed after it was written")
            if problems:
                return checked, problems
            expected, prev = row.seq + 1, row.hash
    for row_id in db.session.scalars(select(AccessLog.id).where(AccessLog.seq.is_(None))
                                     .order_by(AccessLog.id).limit(5)):
        problems.append(f"access log: row {row_id} was never sealed into the chain")
    return checked, problems
