"""A patient's imaging studies: search the network's PACS and link studies to a referral
(files that are in no PACS yet arrive through workflow.imaging.uploads).

Every PACS call happens outside a database transaction (see workflow.imaging.endpoints).
A PACS that is down or slow never fails the whole search: its hospital is reported as
"images unavailable from <hospital>: <reason>" and the others still answer.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date

from pydicom.dataset import Dataset
from sqlalchemy import select

from extensions import db
from integrations.dicom_uid import InvalidUid, check_uid, is_uid
from integrations.pacs import StudySummary
from models import Hospital, LinkedStudy, Referral, User
from workflow.errors import NotAllowed, ValidationFailed
from workflow.imaging import identity
from workflow.imaging.endpoints import (
    SEARCH_BUDGET_SECONDS,
    ImagesUnavailable,
    PacsTarget,
    client,
    record_outcome,
    target_for_hospital,
    targets,
    timed,
)
from workflow.paging import escalation
from workflow.referrals import actions as referrals
from workflow.referrals import nhs_number as nhs_numbers
from workflow.referrals import states
from workflow.referrals.access import actor_kinds, get_visible
from workflow.times import LONDON
from workflow.times import now as utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundStudy:
    """A study one hospital's PACS holds for the patient, as its QIDO-RS search said."""

    summary: StudySummary
    hospital_code: str
    hospital_name: str
    today: bool  # taken today (UK date): the form ticks it for the referrer

    @property
    def choice(self) -> str:
        """Its checkbox value on a form, as link_chosen reads it: "<hospital>|<uid>"."""
        return f"{self.hospital_code}|{self.summary.study_uid}"

    def as_json(self) -> dict:
        s = self.summary
        return {"hospital": self.hospital_code, "hospital_name": self.hospital_name,
                "study_uid": s.study_uid,
                "study_date": s.study_date.isoformat() if s.study_date else None,
                "study_time": s.study_time, "description": s.description,
                "modalities": list(s.modalities), "series_count": s.series_count,
                "instance_count": s.instance_count, "patient_id": s.patient_id,
                "accession_number": s.accession_number, "today": self.today}


@dataclass
class SearchResult:
    studies: list[FoundStudy] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # (hospital, reason)

    def todays_choices(self) -> set[str]:
        """The studies a form ticks before the referrer does: those taken today."""
        return {s.choice for s in self.studies if s.today}

    def messages(self) -> list[str]:
        return [f"images unavailable from {h}: {r}" for h, r in self.unavailable]

    def as_json(self) -> dict:
        return {"studies": [s.as_json() for s in self.studies],
                "unavailable": [{"hospital": h, "reason": r, "message":
                                 f"images unavailable from {h}: {r}"}
                                for h, r in self.unavailable]}


def _search_one(target: PacsTarget, patient_ids: list[str], accession: str | None,
                seconds: float) -> list[StudySummary]:
    pacs = client(target, timeout=seconds)
    found = {}
    queries = [{"patient_id": p} for p in patient_ids]
    if accession:
        queries.append({"accession_number": accession})
    for query in queries:
        for study in pacs.search_studies(**query):
            found.setdefault(study.study_uid, study)
    return list(found.values())


def search(*, patient_ids: list[str], accession: str | None = None,
           hospital_code: str | None = None) -> SearchResult:
    """Studies of the patient in every endpoint (or one hospital's), newest first.

    Each endpoint is asked in parallel with its own timeout; the whole search answers
    within SEARCH_BUDGET_SECONDS. Raises ValidationFailed when no identifier is given.
    """
    patient_ids = [p.strip() for p in patient_ids if p and p.strip()]
    accession = (accession or "").strip() or None
    if not patient_ids and not accession:
        raise ValidationFailed({"patient_id": "Give an NHS number, a local patient id or "
                                              "an accession number."})
    found_targets = targets(hospital_code)
    db.session.commit()  # no transaction open while the PACS answer
    result = SearchResult()
    if not found_targets:
        return result
    pool = ThreadPoolExecutor(max_workers=min(8, len(found_targets)),
                              thread_name_prefix="pacs-search")
    futures = {
        pool.submit(timed, t, lambda t=t: _search_one(t, patient_ids, accession,
                                                      SEARCH_BUDGET_SECONDS)): t
        for t in found_targets}
    done, _ = wait(futures, timeout=SEARCH_BUDGET_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)
    outcomes = []
    today = utcnow().astimezone(LONDON).date()
    for future, target in futures.items():
        if future not in done:
            result.unavailable.append(
                (target.hospital_name, f"{target.hospital_name} PACS did not answer within "
                                       f"{SEARCH_BUDGET_SECONDS:g} s"))
            continue
        studies, outcome = future.result()
        outcomes.append(outcome)
        if not outcome.ok:
            result.unavailable.append((target.hospital_name, outcome.error))
            continue
        result.studies.extend(FoundStudy(s, target.hospital_code, target.hospital_name,
                                         s.study_date == today) for s in studies)
    record_outcome(*outcomes)
    result.studies.sort(key=lambda f: (f.summary.study_date or date.min, f.summary.study_time),
                        reverse=True)
    return result


def patient_identifiers(referral: Referral) -> list[str]:
    """What a PACS may file the patient under: the NHS number and the local number."""
    return [i for i in (referral.nhs_number, referral.local_number) if i]


# Why a search is made: the PACS are searched only for a referral's patient or for the
# patient a referral is being raised for, never for a free patient id.
RAISING_A_REFERRAL = "raising_referral"


def search_for_referral(referral: Referral, *, accession: str = "",
                        hospital_code: str | None = None) -> SearchResult:
    """The referral's patient's studies (its NHS and local numbers, and an accession
    number if given), newest first. The caller has checked the user may see the
    referral. Raises nothing but what search raises."""
    return search(patient_ids=patient_identifiers(referral),
                  accession=(accession or "").strip()[:64], hospital_code=hospital_code)


def search_for_new_referral(*, nhs_number: str, local_number: str = "",
                            accession: str = "",
                            hospital_code: str | None = None) -> SearchResult:
    """The new-referral form's search, before there is a referral: the studies of the
    patient being raised, by NHS number (typed with or without spaces), and the local
    and accession numbers typed beside it, newest first, across the network.

    Raises ValidationFailed (``nhs_number``) when the NHS number is missing or not a
    valid one: without it the search would be for anybody."""
    number = nhs_numbers.normalise(nhs_number or "")[:16]
    if problem := nhs_numbers.problem(number):
        raise ValidationFailed({"nhs_number": "Images are searched for the patient you are "
                                              f"raising a referral for: {problem}"})
    return search(patient_ids=[number, (local_number or "").strip()[:64]],
                  accession=(accession or "").strip()[:64], hospital_code=hospital_code)


# --- Linking ---------------------------------------------------------------------------


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value if value is not None else "").strip()


def _number(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _z(ds: Dataset) -> float | None:
    try:
        return float(ds.get("ImagePositionPatient")[2])
    except (TypeError, ValueError, IndexError):
        return None


def _orientation(ds: Dataset) -> list[float] | None:
    """Image Orientation (Patient) as six numbers, or None when absent or malformed."""
    try:
        values = [round(float(v), 6) for v in ds.get("ImageOrientationPatient") or ()]
    except (TypeError, ValueError):
        return None
    return values if len(values) == 6 else None


def _other_ids(ds: Dataset) -> list[str]:
    value = ds.get("OtherPatientIDs")
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(v).strip()[:64] for v in items if str(v).strip()][:10]


def describe(study_uid: str, datasets: list[Dataset]) -> dict:
    """The link snapshot of a study from its WADO-RS metadata: study facts and every
    series with its instances in slice order. An instance whose series or SOP Instance
    UID is not a DICOM UID is left out (and logged): the viewer would put it in a PACS
    request path."""
    series: dict[str, dict] = {}
    usable = [ds for ds in datasets
              if is_uid(_text(ds, "SeriesInstanceUID")) and is_uid(_text(ds, "SOPInstanceUID"))]
    if len(usable) < len(datasets):
        log.warning("study %s: %d instance(s) whose series or SOP Instance UID is not a "
                    "DICOM UID were left out", study_uid, len(datasets) - len(usable))
    for ds in usable:
        uid = _text(ds, "SeriesInstanceUID")
        entry = series.setdefault(uid, {
            "series_uid": uid, "number": _number(ds, "SeriesNumber"),
            "modality": _text(ds, "Modality"), "description": _text(ds, "SeriesDescription"),
            "instances": []})
        entry["instances"].append({"sop_uid": _text(ds, "SOPInstanceUID"),
                                   "number": _number(ds, "InstanceNumber"),
                                   "frames": _number(ds, "NumberOfFrames") or 1,
                                   "z": _z(ds), "orientation": _orientation(ds)})
    for entry in series.values():
        entry["instances"].sort(key=lambda i: (i["number"] is None, i["number"] or 0,
                                               i["z"] or 0))
    ordered = sorted(series.values(), key=lambda s: (s["number"] is None, s["number"] or 0))
    first = usable[0] if usable else Dataset()
    return {
        "study_uid": study_uid,
        "description": _text(first, "StudyDescription"),
        "study_date": _text(first, "StudyDate"),
        "study_time": _text(first, "StudyTime"),
        "accession_number": _text(first, "AccessionNumber"),
        "patient_id": _text(first, "PatientID"),
        # What workflow/imaging/identity.py checks against the referral.
        "patient": {"name": _text(first, "PatientName"),
                    "birth_date": _text(first, "PatientBirthDate"),
                    "sex": _text(first, "PatientSex"),
                    "other_ids": _other_ids(first)},
        "modalities": sorted({s["modality"] for s in ordered if s["modality"]}),
        "series": ordered,
    }


def check_may_link(user: User, referral: Referral) -> None:
    move = states.move_for(referral.state, "studies_linked")
    if not move.permits(actor_kinds(user, referral), referral.outcome):
        raise NotAllowed("only the referrer or the assigned specialist can link images")


def link(referral_id: int, user: User, hospital_code: str | None,
         study_uids: list[str], confirm_reason: str | None = None) -> list[LinkedStudy]:
    """Link studies from a hospital's PACS (default: the referring hospital's) and
    commit a `studies_linked` event. A study linked before is refreshed. Linking after
    the first time tells the assigned specialist (an in-app and SMS notice).

    A study whose patient disagrees with the referral (workflow.imaging.identity) is
    linked only with ``confirm_reason``, the user's reason: the event then carries it
    and, under ``identity_confirmed``, which studies and fields disagreed.

    Raises NotFound, NotAllowed, IllegalTransition, ValidationFailed (no UIDs, more than
    20, one that is not a DICOM UID — named ``study_uids[i]`` —, no PACS for the
    hospital, a study the PACS does not have, or an empty ``identity_reason``),
    PatientMismatch (nothing is linked) or ImagesUnavailable (the PACS failed; nothing
    is linked).
    """
    referral = get_visible(user, referral_id)
    check_may_link(user, referral)
    confirm_reason = identity.confirmation(confirm_reason)
    if not study_uids:
        raise ValidationFailed({"study_uids": "Choose at least one study."})
    for n, uid in enumerate(study_uids):
        try:
            check_uid(uid, f"study_uids[{n}]")
        except InvalidUid as exc:
            raise ValidationFailed({exc.field: exc.message}) from None
    uids = list(dict.fromkeys(study_uids))
    if len(uids) > 20:
        raise ValidationFailed({"study_uids": "At most 20 study UIDs."})
    code = hospital_code or referral.referring_hospital.code
    hospital = db.session.scalar(select(Hospital).where(Hospital.code == code))
    target = target_for_hospital(hospital.id) if hospital else None
    if target is None:
        raise ValidationFailed({"hospital": f"{code} has no PACS endpoint configured."})
    db.session.commit()  # no transaction open while the PACS answers
    snapshots, outcomes = [], []
    for uid in uids:
        metadata, outcome = timed(target, lambda uid=uid: client(target).study_metadata(uid))
        if outcome.status == 404:  # the PACS answered: it has no such study, and is well
            outcome = replace(outcome, ok=True, error="", status=None)
        outcomes.append(outcome)
        if not outcome.ok:
            record_outcome(*outcomes)
            raise ImagesUnavailable(target.hospital_name, outcome.error)
        if not metadata:
            record_outcome(*outcomes)
            raise ValidationFailed({"study_uids": f"{target.hospital_name} PACS has no study "
                                                  f"{uid}."})
        snapshots.append(describe(uid, metadata))
    record_outcome(*outcomes)
    referral = get_visible(user, referral_id)
    found = identity.mismatches(referral, target.hospital_code, snapshots)
    if found and confirm_reason is None:
        raise identity.PatientMismatch(found)
    return _write_links(referral_id, user, target, snapshots,
                        confirmed=(confirm_reason, found) if found else None)


@dataclass
class ChosenLinks:
    """What became of the studies ticked on a form."""

    linked: list[str] = field(default_factory=list)  # study UIDs
    problems: list[tuple[str, str]] = field(default_factory=list)  # (hospital, message)
    # Studies whose patient disagrees: the form asks to confirm them.
    mismatches: list[identity.Mismatch] = field(default_factory=list)
    # What was not linked because of them (a hospital's studies link all or none), as
    # form values ("<hospital>|<uid>") to send again with the confirmation.
    unconfirmed: list[str] = field(default_factory=list)


def link_chosen(referral_id: int, user: User, chosen: list[str],
                confirm_reason: str | None = None) -> ChosenLinks:
    """Link the studies ticked on a form (``"<hospital code>|<study uid>"`` each), one
    hospital at a time. A hospital whose PACS fails, has no endpoint or no longer has
    the study is reported in ``problems`` and the other hospitals' studies are still
    linked. Each link is prefetched once committed (workflow.wiring: the first page
    may already be out, and its prefetch found nothing to warm).

    A ticked value whose UID is not a DICOM UID is reported in ``problems`` and never
    asked for. A hospital's studies whose patient disagrees with the referral are not
    linked and are listed in ``mismatches`` (see link: ``confirm_reason`` links them).

    Raises NotFound, NotAllowed (the user may not link images to this referral) or
    ValidationFailed (confirming with an empty reason).
    """
    by_hospital: dict[str, list[str]] = {}
    outcome = ChosenLinks()
    for value in chosen:
        code, _, uid = value.partition("|")
        if not (code.strip() and uid.strip()):
            continue
        if not is_uid(uid.strip()):
            outcome.problems.append((code.strip(), InvalidUid("study", uid.strip()).message))
            continue
        by_hospital.setdefault(code.strip(), []).append(uid.strip())
    identity.confirmation(confirm_reason)  # an empty reason: before any PACS is asked
    for code, uids in by_hospital.items():
        try:
            rows = link(referral_id, user, code, uids, confirm_reason)
        except identity.PatientMismatch as exc:
            db.session.rollback()
            outcome.mismatches.extend(exc.mismatches)
            outcome.unconfirmed.extend(f"{code}|{uid}" for uid in uids)
            continue
        except (ImagesUnavailable, ValidationFailed, states.IllegalTransition) as exc:
            db.session.rollback()
            if isinstance(exc, ImagesUnavailable):
                outcome.problems.append((exc.hospital, str(exc)))
            elif isinstance(exc, ValidationFailed):
                outcome.problems.append((code, "; ".join(exc.errors.values())))
            else:
                outcome.problems.append((code, str(exc)))
            continue
        outcome.linked.extend(row.study_uid for row in rows)
    return outcome


def _write_links(referral_id: int, user: User, target: PacsTarget, snapshots: list[dict],
                 confirmed: tuple[str, list[identity.Mismatch]] | None) -> list[LinkedStudy]:
    rows: list[LinkedStudy] = []

    def add_rows(referral: Referral, event) -> None:
        existing = {s.study_uid: s for s in db.session.scalars(
            select(LinkedStudy).where(LinkedStudy.referral_id == referral.id))}
        had_studies = bool(existing)
        for snap in snapshots:
            row = existing.get(snap["study_uid"]) or LinkedStudy(
                referral_id=referral.id, study_uid=snap["study_uid"])
            row.hospital_id = target.hospital_id
            row.description = snap["description"][:200]
            row.study_date = snap["study_date"][:16]
            row.modalities = ",".join(snap["modalities"])[:64]
            row.series_count = len(snap["series"])
            row.instance_count = sum(len(s["instances"]) for s in snap["series"])
            row.snapshot = snap
            row.linked_at = event.at
            row.linked_by_id = user.id
            db.session.add(row)
            rows.append(row)
        if had_studies and referral.assigned_specialist_id \
                and referral.assigned_specialist_id != user.id:
            what = ", ".join(s["description"] or ",".join(s["modalities"]) or "a study"
                             for s in snapshots)
            escalation.notify(
                referral, referral.assigned_specialist_id, event,
                f"New images linked to {referral.specialty.name} referral "
                f"{referral.reference}: {what[:120]}. Open goldenhour to review.")

    data = {"hospital": target.hospital_code,
            "studies": [{"study_uid": s["study_uid"], "description": s["description"],
                         "instances": sum(len(x["instances"]) for x in s["series"])}
                        for s in snapshots]}
    reason = ""
    if confirmed:
        reason, found = confirmed
        data["identity_confirmed"] = {"studies": [m.as_json() for m in found]}
    referrals.transition(referral_id, "studies_linked", user, before_commit=add_rows,
                         data=data, reason=reason)
    return rows
