"""The demo network: an East Midlands-like region a trust can click through.

`seed_demo()` is idempotent: it creates what is missing and leaves the rest alone,
so running `flask seed-demo` twice (or every morning, to extend the rota) is safe.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import select

from extensions import db
from models import Hospital, HubService, RotaShift, Specialty, TravelTime, Trust, User
from workflow.accounts.accounts import hash_password
from workflow.times import LONDON, now

DEMO_PASSWORD = "goldenhour-demo"
# The patient of the README's examples: `make run`'s PACS holds the sample head CT as
# hers (scripts/demo_pacs.py), so "Find images" finds it by this NHS number.
DEMO_PATIENT = {"nhs_number": "9434765919", "family_name": "Smith", "given_name": "Ann",
                "birth_date": "1950-01-01", "sex": "female"}

SPECIALTIES = {
    "stroke": "Stroke (hyperacute)",
    "major_trauma": "Major trauma",
    "spinal": "Spinal surgery",
    "vascular": "Vascular surgery",
    "neurosurgery": "Neurosurgery",
}

TRUSTS = {
    "NUH": "Nottingham University Hospitals NHS Trust",
    "ULH": "United Lincolnshire Hospitals NHS Trust",
    "SFH": "Sherwood Forest Hospitals NHS Foundation Trust",
    "UHDB": "University Hospitals of Derby and Burton NHS Foundation Trust",
    "UHL": "University Hospitals of Leicester NHS Trust",
    "NGH": "Northampton General Hospital NHS Trust",
    "KGH": "Kettering General Hospital NHS Foundation Trust",
}

# code: (name, town, trust, hub specialties)
HOSPITALS = {
    "QMC": ("Queen's Medical Centre", "Nottingham", "NUH",
            ["stroke", "major_trauma", "spinal", "neurosurgery"]),
    "NCH": ("Nottingham City Hospital", "Nottingham", "NUH", []),
    "PIL": ("Pilgrim Hospital", "Boston", "ULH", []),
    "LCH": ("Lincoln County Hospital", "Lincoln", "ULH", []),
    "GDH": ("Grantham and District Hospital", "Grantham", "ULH", []),
    "KMH": ("King's Mill Hospital", "Sutton-in-Ashfield", "SFH", []),
    "RDH": ("Royal Derby Hospital", "Derby", "UHDB", []),
    "QHB": ("Queen's Hospital Burton", "Burton upon Trent", "UHDB", []),
    "LRI": ("Leicester Royal Infirmary", "Leicester", "UHL", ["vascular"]),
    "NGH": ("Northampton General Hospital", "Northampton", "NGH", []),
    "KGH": ("Kettering General Hospital", "Kettering", "KGH", []),
}

# Blue-light road minutes to the two hubs (used both ways).
MINUTES_TO_HUB = {
    "QMC": {"NCH": 15, "PIL": 100, "LCH": 75, "GDH": 45, "KMH": 35, "RDH": 30, "QHB": 50,
            "LRI": 45, "NGH": 80, "KGH": 70},
    "LRI": {"NCH": 50, "PIL": 110, "LCH": 95, "GDH": 55, "KMH": 60, "RDH": 45, "QHB": 45,
            "NGH": 50, "KGH": 40},
}

# (email, name, roles, hospital, specialties, phone)
PEOPLE = [
    ("admin@em.demo.nhs.uk", "Alex Admin", ["admin"], "QMC", [], "+447700900001"),
    ("audit@em.demo.nhs.uk", "Aisha Audit", ["audit_lead"], "QMC", [], "+447700900002"),
    ("duty.manager@qmc.demo.nhs.uk", "Dana Duty", ["duty_manager"], "QMC", [], "+447700900003"),
    ("referrer@pil.demo.nhs.uk", "Dr Rhys Referrer", ["referrer"], "PIL", [], "+447700900010"),
    ("referrer@lch.demo.nhs.uk", "Dr Laura Lincoln", ["referrer"], "LCH", [], "+447700900011"),
    ("referrer@gdh.demo.nhs.uk", "Dr Grace Grantham", ["referrer"], "GDH", [], "+447700900012"),
    ("referrer@kgh.demo.nhs.uk", "Dr Kate Kettering", ["referrer"], "KGH", [], "+447700900013"),
]
SERVICE_STAFF = {  # specialty: (hub, short name)
    "stroke": ("QMC", "Stroke"),
    "major_trauma": ("QMC", "Trauma"),
    "spinal": ("QMC", "Spinal"),
    "neurosurgery": ("QMC", "Neuro"),
    "vascular": ("LRI", "Vascular"),
}


def _service_people() -> list[tuple]:
    people, n = [], 20
    for specialty, (hub, short) in SERVICE_STAFF.items():
        slug = specialty.replace("_", "")
        for label, who in (("day", "Registrar (days)"), ("night", "Registrar (nights)"),
                           ("consultant", "Consultant")):
            n += 1
            people.append((f"{slug}.{label}@{hub.lower()}.demo.nhs.uk", f"{short} {who}",
                           ["specialist"], hub, [specialty], f"+4477009000{n:02d}"))
    return people


def _get_or_create(model, lookup: dict, **values):
    row = db.session.scalar(select(model).filter_by(**lookup))
    if row is None:
        row = model(**lookup, **values)
        db.session.add(row)
        db.session.flush()
    return row


def _network() -> None:
    specialties = {code: _get_or_create(Specialty, {"code": code}, name=name)
                   for code, name in SPECIALTIES.items()}
    trusts = {code: _get_or_create(Trust, {"code": code}, name=name)
              for code, name in TRUSTS.items()}
    for code, (name, town, trust, hubs) in HOSPITALS.items():
        hospital = _get_or_create(Hospital, {"code": code}, name=name, town=town,
                                  trust=trusts[trust])
        for spec in hubs:
            _get_or_create(HubService, {"hospital_id": hospital.id,
                                        "specialty_id": specialties[spec].id},
                           name=f"{specialties[spec].name}, {name}")
    ids = {h.code: h.id for h in db.session.scalars(select(Hospital))}
    for hub, minutes in MINUTES_TO_HUB.items():
        for other, value in minutes.items():
            for a, b in ((hub, other), (other, hub)):
                _get_or_create(TravelTime, {"from_hospital_id": ids[a], "to_hospital_id": ids[b]},
                               minutes=value)


def _people() -> None:
    specialties = {s.code: s for s in db.session.scalars(select(Specialty))}
    hospitals = {h.code: h for h in db.session.scalars(select(Hospital))}
    password_hash = None
    for email, name, roles, hospital, specs, phone in PEOPLE + _service_people():
        if db.session.scalar(select(User.id).where(User.email == email)):
            continue
        password_hash = password_hash or hash_password(DEMO_PASSWORD)
        user = User(email=email, name=name, phone=phone, password_hash=password_hash,
                    hospital=hospitals[hospital], specialties=[specialties[s] for s in specs])
        user.roles = roles
        db.session.add(user)
    db.session.flush()


def _rota(days: int = 7) -> None:
    """Day (08-20) and night (20-08) shifts: tier 1 registrars, tier 2 consultant."""
    today = now().astimezone(LONDON).date()
    first = datetime(today.year, today.month, today.day, 8, tzinfo=LONDON) - timedelta(hours=12)
    # Blocks until the week from *now* is covered: a fixed count of blocks from this
    # morning's 08:00 would leave the last hours uncovered when the seed runs after 08:00.
    horizon = now() + timedelta(days=days)
    users = {u.email: u for u in db.session.scalars(select(User))}
    for specialty, (hub, _short) in SERVICE_STAFF.items():
        service = db.session.scalar(
            select(HubService).join(Hospital).join(Specialty)
            .where(Hospital.code == hub, Specialty.code == specialty)
        )
        slug = specialty.replace("_", "")
        domain = f"{hub.lower()}.demo.nhs.uk"
        for block in itertools.count():
            # Wall-clock 08:00/20:00 in London, whatever the clock change does.
            local_start = (first + timedelta(hours=12 * block)).replace(tzinfo=None)
            starts = local_start.replace(tzinfo=LONDON)
            if starts >= horizon:
                break
            ends = (local_start + timedelta(hours=12)).replace(tzinfo=LONDON)
            registrar = "night" if starts.hour == 20 else "day"
            for tier, label in ((1, registrar), (2, "consultant")):
                user = users[f"{slug}.{label}@{domain}"]
                _get_or_create(RotaShift, {"user_id": user.id, "hub_service_id": service.id,
                                           "tier": tier, "starts_at": starts},
                               ends_at=ends)


def extend_demo_rota(days: int = 7) -> int:
    """Keep the demo network's rota covering the next ``days`` from now (a demo left
    running for weeks must still page someone); commit. Returns the shifts added, 0
    when the demo people are not all there (a trust's own network is left alone)."""
    emails = {p[0] for p in _service_people()}
    present = set(db.session.scalars(select(User.email).where(User.email.in_(emails))))
    if present != emails:
        return 0
    before = db.session.query(RotaShift).count()
    _rota(days)
    db.session.commit()
    return db.session.query(RotaShift).count() - before


def seed_demo() -> dict[str, int]:
    """Create the demo network, users and a 7-day rota; commit; return row counts."""
    _network()
    _people()
    _rota()
    db.session.commit()
    return {
        "trusts": db.session.query(Trust).count(),
        "hospitals": db.session.query(Hospital).count(),
        "users": db.session.query(User).count(),
        "rota_shifts": db.session.query(RotaShift).count(),
    }


def demo_logins() -> list[tuple[str, str]]:
    """(email, what the account is for) for the README and `make run` banner."""
    rows = [(e, ", ".join(r) + f" at {h}") for e, _n, r, h, _s, _p in PEOPLE]
    rows += [(e, f"{s[0]} specialist at {h}") for e, _n, _r, h, s, _p in _service_people()]
    return rows


