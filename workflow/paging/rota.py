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


class _Lookups:
    """Users and hub services by what a rota file names them by, each read once: a
    year's rota is thousands of rows naming a few dozen people and services."""

    def __init__(self):
        self.users: dict[str, User | None] = {}
        self.services: dict[tuple[str, str], HubService | None] = {}

    def user(self, email: str) -> User | None:
        if email not in self.users:
            self.users[email] = db.session.scalar(select(User).where(User.email == email))
        return self.users[email]

    def service(self, hub: str, specialty: str) -> HubService | None:
        if (hub, specialty) not in self.services:
            self.services[hub, specialty] = find_hub_service(hub, specialty)
        return self.services[hub, specialty]


def _parse_row(row: dict[str, str], lookups: _Lookups) -> tuple[tuple | None, str]:
    """(user, service, tier, start, end) for a good row, or (None, what is wrong)."""
    email = (row.get("email") or "").strip().lower()
    user = lookups.user(email)
    if user is None:
        return None, f"no user has the email {email!r}"
    if not user.has_role(Role.SPECIALIST):
        return None, f"{email} is not a specialist"
    hub, specialty = (row.get("hub") or "").strip(), (row.get("specialty") or "").strip()
    service = lookups.service(hub, specialty)
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
    return (user, service, tier, starts, ends), ""


@dataclass(frozen=True)
class RotaImport:
    """What an import did: ``added`` new shifts of the ``listed`` rows of the file."""

    added: int
    listed: int

    @property
    def message(self) -> str:
        """What the admin is told: why nothing (or not everything) was added, too."""
        def shifts(n: int) -> str:
            return f"{n} shift{'' if n == 1 else 's'}"

        already = self.listed - self.added
        if self.added == 0:
            every = "the" if self.listed == 1 else f"all {self.listed}"
            return (f"Imported 0 new shifts: {every} shift{'' if self.listed == 1 else 's'} "
                    f"in the file {'was' if self.listed == 1 else 'were'} already in the rota.")
        if already == 0:
            return f"Imported {shifts(self.added)}."
        return (f"Imported {shifts(self.added)}; the other {already} "
                f"{'was' if already == 1 else 'were'} already in the rota.")


def import_csv(text: str) -> int:
    """Import rota shifts from CSV text (see import_report); the number of new shifts.
    Raises RotaImportError listing every bad row."""
    return import_report(text).added


def import_report(text: str) -> RotaImport:
    """Import rota shifts from CSV text: every row, or none.

    Columns: email, hub (hospital code), specialty, tier, start, end (local time).
    A shift already present (same user, service, tier and start) is left as it is.
    Returns how many were new of how many the file lists. Raises RotaImportError
    listing every bad row.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise RotaImportError([BadRow(1, f"missing column(s): {', '.join(missing)}")])
    reader.fieldnames = header
    lookups = _Lookups()
    shifts, bad = [], []
    for row in reader:
        shift, problem = _parse_row(row, lookups)
        if problem:
            bad.append(BadRow(reader.line_num, problem))
        else:
            shifts.append(shift)
    if not shifts and not bad:
        bad.append(BadRow(2, "the file has no rows"))
    if bad:
        db.session.rollback()
        raise RotaImportError(bad)
    # A shift already present, or listed twice in the file, is added once.
    seen = _existing_keys({user.id for user, *_ in shifts}, min(s[3] for s in shifts))
    added = 0
    for user, service, tier, starts, ends in shifts:
        key = (user.id, service.id, tier, starts)
        if key in seen:
            continue
        seen.add(key)
        db.session.add(RotaShift(user_id=user.id, hub_service_id=service.id, tier=tier,
                                 starts_at=starts, ends_at=ends))
        added += 1
    db.session.commit()
    return RotaImport(added, len(shifts))


def _existing_keys(user_ids: set[int], earliest: datetime) -> set[tuple]:
    """(user, service, tier, start) of the shifts these users have from ``earliest``."""
    rows = db.session.execute(
        select(RotaShift.user_id, RotaShift.hub_service_id, RotaShift.tier,
               RotaShift.starts_at)
        .where(RotaShift.user_id.in_(user_ids), RotaShift.starts_at >= earliest))
    return {tuple(row) for row in rows}
