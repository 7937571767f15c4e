"""A hand-built set of referrals with exact milestone times, for the audit tests.

Times are in January-March 2026 (GMT, so London time equals UTC). Minutes after the
referral was raised:

| ref | site | specialty    | page | ack | decision | outcome       | door in | departed |
|-----|------|--------------|------|-----|----------|---------------|---------|----------|
| A1  | PIL  | stroke       | 1    | 5   | 20       | transfer      | -30     | dec.+25  |
| A2  | PIL  | stroke       | 2    | 10  | 40       | treat_locally | -20     |          |
| A3  | LCH  | stroke       | 3    | 20  | 50       | transfer      | -40     | dec.+35  |
| A4  | PIL  | stroke       | 1    | 45  | 70       | advice_only   | -15     |          |
| A5  | LCH  | major_trauma | 4    | 3   | 15       | transfer      | -10     | dec.+10  |

Onset: A1 -90 precise, A2 -60 estimated, A3 unknown, A4 -30 precise, A5 -60 precise.
A4 went unanswered (paging exhausted) and was answered after escalation (step 1).
Images were first viewed 8 min after A1 was raised and 12 min after A2.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import (
    AccessLog,
    Delivery,
    Hospital,
    HubService,
    Page,
    Referral,
    ReferralEvent,
    Specialty,
    User,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def make_referral(network):
    """Factory: a referral written straight to the tables, with the given milestones
    (minutes after ``created``), its first page, events and image views."""
    counter = iter(range(1, 10_000))

    def make(created: datetime, *, site="PIL", specialty="stroke", state="closed",
             page=None, ack=None, decision=None, outcome=None, door_in=None, departed=None,
             onset=None, certainty="precise", image=None, unanswered=False,
             escalated=False, reference=None):
        n = next(counter)
        minutes = lambda m: created + timedelta(minutes=m) if m is not None else None  # noqa: E731
        spec = db.session.scalar(select(Specialty).where(Specialty.code == specialty))
        hospital = db.session.scalar(select(Hospital).where(Hospital.code == site))
        service = db.session.scalar(select(HubService).where(HubService.specialty_id == spec.id))
        referrer = db.session.scalar(select(User).where(User.email == "referrer@pil.demo.nhs.uk"))
        decided_at = minutes(decision)
        referral = Referral(
            reference=reference or f"EM-2026-T{n:05d}", state=state, specialty=spec,
            hub_service=service, referring_hospital=hospital, referrer=referrer,
            nhs_number="9434765919", family_name="Test", given_name=f"Patient {n}",
            birth_date=date(1950, 1, 1), sex="female", onset_at=minutes(onset),
            onset_certainty=certainty if onset is not None else "unknown",
            arrived_at=minutes(door_in), question="Thrombectomy?", clinical={},
            created_at=created, acknowledged_at=minutes(ack), decided_at=decided_at,
            outcome=outcome,
            departed_at=decided_at + timedelta(minutes=departed) if departed else None,
            # the milestones the workflow writes as they happen (see tests/paging and
            # tests/audit/test_milestones.py for the writing)
            first_paged_at=minutes(page), escalated=escalated,
            unanswered_at=minutes(30) if unanswered else None,
            first_image_viewed_at=minutes(min(image)) if image else None,
        )
        db.session.add(referral)
        db.session.flush()
        if page is not None:
            first = Page(referral_id=referral.id, kind="escalation", step=0, who="tier1",
                         channels=["sms"], due_at=created, status="claimed",
                         claimed_at=minutes(page))
            db.session.add(first)
            db.session.flush()
            db.session.add(Delivery(page_id=first.id, referral_id=referral.id, channel="sms",
                                    status="delivered", claimed_at=minutes(page),
                                    sent_at=minutes(page)))
        if escalated:
            db.session.add(Page(referral_id=referral.id, kind="escalation", step=1,
                                who="tier2", channels=["sms"], due_at=minutes(10),
                                status="claimed", claimed_at=minutes(10)))
        if unanswered:
            db.session.add(ReferralEvent(referral_id=referral.id, seq=2,
                                         kind="escalation_exhausted", at=minutes(30),
                                         from_state="awaiting_specialist",
                                         to_state="unanswered", prev_hash="0" * 64,
                                         hash="1" * 64))
        for m in image or ():
            db.session.add(AccessLog(at=minutes(m), action="image.view", outcome="ok",
                                     referral_id=referral.id, email="x@test.nhs.uk"))
        db.session.commit()
        return referral

    return make


@pytest.fixture
def audit_set(make_referral):
    """The five referrals of the table above, by reference."""
    rows = [
        make_referral(at("2026-01-10T10:00"), reference="A1", page=1, ack=5, decision=20,
                      outcome="transfer", door_in=-30, departed=25, onset=-90, image=[8, 30]),
        make_referral(at("2026-01-20T10:00"), reference="A2", page=2, ack=10, decision=40,
                      outcome="treat_locally", door_in=-20, onset=-60, certainty="estimated",
                      image=[12]),
        make_referral(at("2026-02-05T10:00"), reference="A3", site="LCH", page=3, ack=20,
                      decision=50, outcome="transfer", door_in=-40, departed=35),
        make_referral(at("2026-02-15T10:00"), reference="A4", page=1, ack=45, decision=70,
                      outcome="advice_only", door_in=-15, onset=-30, unanswered=True,
                      escalated=True),
        make_referral(at("2026-03-01T10:00"), reference="A5", site="LCH",
                      specialty="major_trauma", page=4, ack=3, decision=15,
                      outcome="transfer", door_in=-10, departed=10, onset=-60),
    ]
    return {r.reference: r for r in rows}
