"""The on-call rota: who holds the pager for a hub service now, and CSV import."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from extensions import db
from models import Hospital, HubService, Role, RotaShift, Specialty, User
from workflow.times import parse_local

CSV_COLUMNS = ("email", "hub", "specialty", "tier", "start", "end")


@dataclass(frozen=True)
class BadRow:
    line: int
    message: str


class RotaImportError(Exception):
    """The CSV had bad rows; none were imported. ``bad_rows`` lists each with its line."""

    def __init__(self, bad_rows: list[BadRow]):
        self.bad_rows = bad_rows
        super().__init__(f"{len(bad_rows)} bad row(s); nothing imported")


def on_call(hub_service: HubService, tier: int, at: datetime) -> list[User]:
    """Active users holding ``tier`` for ``hub_service`` at the instant ``at``."""
    return list(
        db.session.scalars(
            select(User)
            .join(RotaShift, RotaShift.user_id == User.id)
            .where(
                RotaShift.hub_service_id == hub_service.id,
                RotaShift.tier == tier,
                RotaShift.starts_at <= at,
                RotaShift.ends_at > at,
                User.active.is_(True),
            )
            .order_by(RotaShift.starts_at, User.id)
        )
    )


def find_hub_service(hospital_code: str, specialty_code: str) -> HubService | None:
    return db.session.scalar(
        select(HubService)
        .join(Hospital, HubService.hospital_id == Hospital.id)
        .join(Specialty, HubService.specialty_id == Specialty.id)
        .where(Hospital.code == hospital_code, Specialty.code == specialty_code)
    )


def _parse_row(row: dict[str, str]) -> tuple[RotaShift | None, str]:
    email = (row.get("email") or "").strip().lower()
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        return None, f"no user has the email {email!r}"
    if not user.has_role(Role.SPECIALIST):
        return None, f"{email} is not a specialist"
    hub, specialty = (row.get("hub") or "").strip(), (row.get("specialty") or "").strip()
    service = find_hub_service(hub, specialty)
    if service is None:
        return None, f"{hub!r} is not a hub for {specialty!r}"
    if specialty not in user.specialty_codes:
        return None, f"{email} does not have the specialty {specialty}"
    try:
        tier = int((row.get("tier") or "").strip())
    except ValueError:
        return None, f"tier must be 1, 2 or 3, not {row.get('tier')!r}"
    if tier not in (1, 2, 3):
        return None, f"tier must be 1, 2 or 3, not {tier}"
    try:
        starts, ends = parse_local(row.get("start") or ""), parse_local(row.get("end") or "")
    except ValueError as exc:
        return None, f"start/end: {exc}"
    if ends <= starts:
        return None, "end must be after start"
    shift = RotaShift(user=user, hub_service=service, tier=tier, starts_at=starts, ends_at=ends)
    return shift, ""


def import_csv(text: str) -> int:
    """Import rota shifts from CSV text: every row, or none.

    Columns: email, hub (hospital code), specialty, tier, start, end (local time).
    A shift already present (same user, service, tier and start) is left as it is.
    Returns the number of new shifts. Raises RotaImportError listing every bad row.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise RotaImportError([BadRow(1, f"missing column(s): {', '.join(missing)}")])
    reader.fieldnames = header
    shifts, bad = [], []
    for row in reader:
        shift, problem = _parse_row(row)
        if problem:
            bad.append(BadRow(reader.line_num, problem))
        else:
            shifts.append(shift)
    if not shifts and not bad:
        bad.append(BadRow(2, "the file has no rows"))
    if bad:
        db.session.rollback()
        raise RotaImportError(bad)
    added, seen = 0, set()
    with db.session.no_autoflush:
        for shift in shifts:
            # A shift listed twice in one file: the pending first copy is not flushed, so
            # the query below cannot see it.
            key = (shift.user.id, shift.hub_service.id, shift.tier, shift.starts_at)
            if key in seen:
                continue
            seen.add(key)
            exists = db.session.scalar(
                select(RotaShift.id).where(
                    RotaShift.user_id == shift.user.id,
                    RotaShift.hub_service_id == shift.hub_service.id,
                    RotaShift.tier == shift.tier,
                    RotaShift.starts_at == shift.starts_at,
                )
            )
            if exists:
                continue
            db.session.add(shift)
            added += 1
    db.session.commit()
    return added
