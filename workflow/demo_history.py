"""A few weeks of past referrals for the demo, so the audit dashboard has something to
show: varied specialties, referring hospitals, times of day, answer times and outcomes.

Each one is written through the workflow itself (raise, accept, decide, depart, arrive,
close, cancel) as of the instant it happened (workflow.times.as_of), so its events,
hash chain and decision record are like any other. Idempotent: a past referral is
known by its local number ("DEMO-H01"...) and never written twice. The pages the
workflow queued for them are cancelled: the demo's pager must not ring for last month.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from extensions import db
from models import Page, Referral, User
from workflow.paging.pages import PageStatus
from workflow.referrals import actions
from workflow.seed import DEMO_PASSWORD
from workflow.times import as_of, now

# (days ago, UTC hour, specialty, referring hospital, minutes to accept, minutes to
# decide after accepting, outcome or "cancelled")
HISTORY = (
    (27, 2, "stroke", "PIL", 4, 18, "transfer"),
    (25, 14, "stroke", "LCH", 9, 25, "treat_locally"),
    (24, 22, "vascular", "KGH", 6, 30, "transfer"),
    (22, 9, "major_trauma", "GDH", 3, 12, "transfer"),
    (20, 3, "stroke", "PIL", 22, 41, "not_accepted"),
    (18, 16, "stroke", "GDH", 7, 15, "advice_only"),
    (17, 1, "vascular", "LCH", 12, 35, "advice_only"),
    (15, 11, "stroke", "KGH", 5, 20, "transfer"),
    (13, 23, "major_trauma", "PIL", 2, 9, "transfer"),
    (12, 4, "stroke", "LCH", 31, 55, "transfer"),
    (10, 19, "stroke", "PIL", 0, 0, "cancelled"),
    (9, 8, "vascular", "GDH", 8, 22, "treat_locally"),
    (7, 13, "stroke", "PIL", 6, 14, "transfer"),
    (5, 0, "major_trauma", "KGH", 4, 17, "not_accepted"),
    (4, 21, "stroke", "GDH", 11, 28, "treat_locally"),
    (2, 10, "stroke", "LCH", 3, 11, "transfer"),
)
HUB = {"stroke": ("QMC", "stroke"), "major_trauma": ("QMC", "majortrauma"),
       "vascular": ("LRI", "vascular")}
PATIENTS = (  # valid NHS numbers (modulus 11), names of no one
    ("9434765870", "Hughes", "Margaret", "1941-03-14", "female"),
    ("9434765889", "Patel", "Ravi", "1958-07-02", "male"),
    ("9434765897", "Okafor", "Grace", "1949-11-23", "female"),
    ("9434765900", "Walsh", "Peter", "1963-05-30", "male"),
)


def _clinical(specialty: str, i: int) -> dict:
    if specialty == "stroke":
        return {"nihss": 4 + (i * 5) % 20, "pre_stroke_mrs": i % 3, "anticoagulant": "none",
                "thrombolysis_given": i % 2 == 0, **(
                    {"thrombolysis_at": None} if i % 2 else {}), "imaging": ["CT", "CTA"]}
    if specialty == "major_trauma":
        return {"age": 30 + i, "mechanism": "Road traffic collision", "gcs": 9 + i % 6,
                "injuries": "Chest and pelvic injuries"}
    return {"diagnosis": "Ruptured abdominal aortic aneurysm",
            "haemodynamics": "unstable" if i % 2 else "stable"}


def _person(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def _payload(specialty: str, hospital: str, i: int, raised: datetime) -> dict:
    nhs, family, given, born, sex = PATIENTS[i % len(PATIENTS)]
    clinical = _clinical(specialty, i)
    if clinical.get("thrombolysis_given"):
        clinical["thrombolysis_at"] = (raised - timedelta(minutes=20)).isoformat()
    clinical = {k: v for k, v in clinical.items() if v is not None}
    return {
        "specialty": specialty, "referring_hospital": hospital,
        "patient": {"nhs_number": nhs, "family_name": family, "given_name": given,
                    "birth_date": born, "sex": sex, "local_number": f"DEMO-H{i + 1:02d}"},
        "onset_at": (raised - timedelta(minutes=70 + 10 * i)).isoformat(),
        "onset_certainty": "precise" if i % 3 else "estimated",
        "arrived_at": (raised - timedelta(minutes=35)).isoformat(),
        "question": "Please review for transfer.", "clinical": clinical,
    }


def _decision(outcome: str, hub: str) -> dict:
    body = {"outcome": outcome, "rationale": "Reviewed the history and the images.",
            "signature": {"password": DEMO_PASSWORD}}
    if outcome == "transfer":
        body.update(destination_hospital=hub, transfer_urgency="immediate")
    if outcome in ("treat_locally", "advice_only"):
        body["advice"] = "Continue local care; call back if the patient worsens."
    return body


def seed_history() -> int:
    """Write the past referrals that are missing; commit. Returns how many were written
    (0 when the demo people are not there: a trust's own network is left alone)."""
    written, today = [], now()
    for i, (days, hour, specialty, hospital, to_accept, to_decide, outcome) in \
            enumerate(HISTORY):
        local = f"DEMO-H{i + 1:02d}"
        if db.session.scalar(select(Referral.id).where(Referral.local_number == local)):
            continue
        referrer = _person(f"referrer@{hospital.lower()}.demo.nhs.uk")
        hub, slug = HUB[specialty]
        raised = (today - timedelta(days=days)).replace(hour=hour, minute=(7 * i) % 60,
                                                        second=0, microsecond=0)
        specialist = _person(f"{slug}.{'night' if hour >= 20 or hour < 8 else 'day'}"
                             f"@{hub.lower()}.demo.nhs.uk")
        if referrer is None or specialist is None:
            return 0
        with as_of(raised):
            referral = actions.raise_referral(referrer, _payload(specialty, hospital, i,
                                                                 raised))
        rid = referral.id
        written.append(rid)
        if outcome == "cancelled":
            with as_of(raised + timedelta(minutes=12)):
                actions.cancel(rid, referrer, {"reason": "Patient improved; not needed."})
            continue
        accepted = raised + timedelta(minutes=to_accept)
        decided = accepted + timedelta(minutes=to_decide)
        with as_of(accepted):
            actions.acknowledge(rid, specialist)
        with as_of(decided):
            actions.decide(rid, specialist, _decision(outcome, hub))
        if outcome == "transfer":
            with as_of(decided + timedelta(minutes=25)):
                actions.depart(rid, referrer)
            with as_of(decided + timedelta(minutes=25 + 70)):
                actions.arrive(rid, specialist)
        else:
            with as_of(decided + timedelta(minutes=30)):
                actions.close(rid, specialist)
    if written:
        db.session.execute(update(Page).where(Page.referral_id.in_(written),
                                              Page.status == PageStatus.DUE)
                           .values(status=PageStatus.CANCELLED))
        db.session.commit()
    return len(written)
