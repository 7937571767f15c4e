"""New scans announced: a study of the patient that reaches the referring hospital's
PACS after the referral (the CTA taken ten minutes later) is found without anyone
searching, checked against the referral's patient, offered on the referral page for a
one-tap link, and the assigned specialist is told in-app.

The scheduler calls `poll` (every 30 s at most per referral): for each open referral
it asks the PACS by QIDO-RS for the patient's studies since the referral's day, each
referral claimed first (its last-look time moved on and committed) so that two
schedulers never ask twice, and no transaction is open while the PACS answers. The
first time such a study is found is the referral's ``images_arrived_at`` milestone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from integrations.dicom_uid import is_uid
from models import Hospital, LinkedStudy, OfferedStudy, Referral, User
from workflow.errors import NotFound, ValidationFailed
from workflow.imaging import identity, studies
from workflow.imaging.endpoints import client, record_outcome, target_for_hospital, timed
from workflow.paging import escalation
from workflow.referrals.access import get_visible
from workflow.referrals.states import FINAL
from workflow.times import LONDON
from workflow.times import now as utcnow

log = logging.getLogger(__name__)
EVERY = timedelta(seconds=30)  # the most often one referral's PACS is asked
MAX_PER_POLL = 50
NOTICE_KEY = 1_000_000  # + the offer's id: the in-app notice's attempt number


def _taken_at(study_date, study_time: str) -> datetime | None:
    """A QIDO StudyDate/StudyTime (UK wall clock) as a UTC instant; None without a time."""
    if study_date is None or not study_time:
        return None
    digits = study_time.split(".")[0]
    try:
        hour, minute = int(digits[0:2]), int(digits[2:4] or 0)
        second = int(digits[4:6] or 0)
        local = datetime(study_date.year, study_date.month, study_date.day, hour, minute,
                         second, tzinfo=LONDON)
    except (ValueError, IndexError):
        return None
    return local.astimezone(utcnow().tzinfo)


def _due(now: datetime) -> list[int]:
    """Open referrals whose referring hospital's PACS was not asked in the last EVERY."""
    return list(db.session.scalars(
        select(Referral.id).where(Referral.state.not_in([str(s) for s in FINAL]),
                                  or_(Referral.images_checked_at.is_(None),
                                      Referral.images_checked_at <= now - EVERY))
        .order_by(Referral.images_checked_at.is_not(None), Referral.images_checked_at)
        .limit(MAX_PER_POLL)))


def _claim(referral_id: int, now: datetime) -> bool:
    referral = db.session.get(Referral, referral_id)
    seen = referral.images_checked_at
    won = db.session.execute(
        update(Referral).where(Referral.id == referral_id,
                               Referral.images_checked_at.is_(None) if seen is None
                               else Referral.images_checked_at == seen)
        .values(images_checked_at=now))
    db.session.commit()
    return bool(won.rowcount)


def poll(now: datetime | None = None) -> int:
    """Look once for new studies of every due open referral; returns studies offered.
    A PACS that fails is recorded on its endpoint and asked again next time."""
    now = now or utcnow()
    offered = 0
    due = _due(now)
    db.session.commit()
    for referral_id in due:
        if _claim(referral_id, now):
            offered += _look(referral_id, now)
    return offered


def _look(referral_id: int, now: datetime) -> int:
    referral = db.session.get(Referral, referral_id)
    target = target_for_hospital(referral.referring_hospital_id)
    if target is None:
        db.session.commit()
        return 0
    ids = studies.patient_identifiers(referral)
    since = referral.created_at.astimezone(LONDON).date()
    created = referral.created_at
    linked = {s.study_uid for s in referral.studies}
    known = linked | set(db.session.scalars(
        select(OfferedStudy.study_uid).where(OfferedStudy.referral_id == referral_id)))
    db.session.commit()  # no transaction open while the PACS answers
    counts: dict[str, int] = {}  # linked study -> images the PACS holds now

    def search():
        pacs = client(target)
        found = {}
        for patient_id in ids:
            for study in pacs.search_studies(patient_id=patient_id, since=since):
                found.setdefault(study.study_uid, study)
        new = []
        for study in found.values():
            if study.study_uid in linked and study.instance_count is not None:
                counts[study.study_uid] = study.instance_count
            taken = _taken_at(study.study_date, study.study_time)
            if study.study_uid in known or not is_uid(study.study_uid):
                continue
            if (taken is not None and taken < created) or (
                    taken is None and (study.study_date is None or study.study_date < since)):
                continue
            snapshot = studies.describe(study.study_uid, pacs.study_metadata(study.study_uid))
            new.append((study, taken, snapshot))
        return new

    found, outcome = timed(target, search)
    record_outcome(outcome)
    if not outcome.ok:
        return 0
    _count_linked(referral_id, counts, now)
    count = 0
    for study, taken, snapshot in found:
        referral = db.session.get(Referral, referral_id)
        problems = identity.disagreements(referral, snapshot)
        what = (study.description or snapshot.get("description")
                or next((s["description"] for s in snapshot["series"] if s["description"]),
                        "") or ", ".join(study.modalities) or "a study")
        offer = OfferedStudy(referral_id=referral_id, hospital_id=target.hospital_id,
                             study_uid=study.study_uid, description=what[:200],
                             taken_at=taken, found_at=now,
                             warning=("Check the patient: " + "; ".join(problems))[:500]
                             if problems else "")
        db.session.add(offer)
        try:
            db.session.flush()
        except IntegrityError:  # another scheduler offered it first
            db.session.rollback()
            continue
        db.session.execute(update(Referral).where(Referral.id == referral_id,
                                                  Referral.images_arrived_at.is_(None))
                           .values(images_arrived_at=now))
        if referral.assigned_specialist_id:
            escalation.notify_in_app(
                referral, referral.assigned_specialist_id,
                f"New images from {target.hospital_name} for {referral.specialty.name} "
                f"referral {referral.reference}: {what[:80]}. Open the referral to link them.",
                key=NOTICE_KEY + offer.id, at=now)
        db.session.commit()
        count += 1
    return count


def _count_linked(referral_id: int, counts: dict[str, int], now: datetime) -> None:
    """Keep how many images the PACS holds now for each linked study (committed)."""
    for study_uid, held in counts.items():
        db.session.execute(
            update(LinkedStudy)
            .where(LinkedStudy.referral_id == referral_id, LinkedStudy.study_uid == study_uid)
            .values(pacs_instance_count=held, pacs_counted_at=now))
    db.session.commit()


def still_arriving(referral: Referral) -> dict[str, str]:
    """study UID -> a warning, for each linked study the PACS held more images of at its
    last look than were linked: it was still arriving, and a decision on what was linked
    may miss the rest until it is linked again (no PACS call)."""
    return {
        s.study_uid: (f"This study was still arriving: the PACS now holds "
                      f"{s.pacs_instance_count} images, {s.instance_count} when it was "
                      "linked. Link it again to see them all before deciding.")
        for s in referral.studies
        if s.pacs_instance_count is not None and s.pacs_instance_count > s.instance_count}


@dataclass(frozen=True)
class Offer:
    id: int
    hospital_name: str
    description: str
    ago: str
    warning: str


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "time not given"
    minutes = int((now - then).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 120:
        return f"{minutes} min ago"
    return f"{minutes // 60} h ago"


def offers(referral: Referral) -> list[Offer]:
    """The studies on offer for the referral page, newest first (no PACS call)."""
    now = utcnow()
    rows = db.session.scalars(select(OfferedStudy).where(
        OfferedStudy.referral_id == referral.id, OfferedStudy.status == "offered")
        .order_by(OfferedStudy.found_at.desc()))
    return [Offer(o.id, o.hospital.name, o.description, _ago(o.taken_at or o.found_at, now),
                  o.warning) for o in rows]


def link_offered(referral_id: int, user: User, offer_id: int) -> studies.ChosenLinks:
    """Link an offered study through the same path as a study ticked on the search page
    (`studies.link_chosen`, which also prefetches it); the offer is then marked linked.

    Who may link is checked before the offer is looked up, so someone who may not link
    learns nothing about what is on offer.

    Raises NotFound (no such offer on this referral), NotAllowed (the user may not link
    images to it), IllegalTransition (its state takes no images) or ValidationFailed
    (the PACS could not link it: its words).
    """
    studies.check_may_link(user, get_visible(user, referral_id))
    offer = db.session.scalar(select(OfferedStudy).where(OfferedStudy.id == offer_id,
                                                         OfferedStudy.referral_id == referral_id))
    if offer is None or offer.status != "offered":
        raise NotFound("no such study is on offer for this referral")
    code = db.session.get(Hospital, offer.hospital_id).code
    uid = offer.study_uid
    db.session.commit()
    outcome = studies.link_chosen(referral_id, user, [f"{code}|{uid}"])
    if uid in outcome.linked or db.session.scalar(select(LinkedStudy.id).where(
            LinkedStudy.referral_id == referral_id, LinkedStudy.study_uid == uid)):
        db.session.execute(update(OfferedStudy).where(OfferedStudy.id == offer_id)
                           .values(status="linked"))
        db.session.commit()
    elif outcome.problems:
        raise ValidationFailed({"study": "; ".join(m for _, m in outcome.problems)})
    return outcome
