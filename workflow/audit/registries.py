"""Registry exports an audit lead submits without retyping: stroke referrals as SSNAP
columns and codes, major-trauma referrals with NMTR-style timestamps.

docs/EXPORTS.md describes every column (its source here, format, codes and what
goldenhour cannot know); tests/audit/test_registry_exports.py reads the column lists
from that document, so the two cannot drift. SSNAP questions goldenhour never knows are
left out of the file rather than sent empty, so an upload cannot blank an answer the
stroke team entered in the SSNAP webtool.

Times are UK local wall-clock time, ``DD/MM/YYYY HH:MM``, as the registries take them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import select

from extensions import db
from models import Decision, Hospital, HubService, LinkedStudy, Referral, Specialty
from workflow.audit.stats import Filters, _referral_conditions
from workflow.times import local

REGISTRY_TIME = "%d/%m/%Y %H:%M"

SSNAP_COLUMNS = (
    "S1NHSNumber", "S1OnsetDateTime", "S1OnsetTimeType", "S1FirstArrivalDateTime",
    "S1PatientClockStartDateTime", "S2RankinBeforeStroke", "S2NihssArrival",
    "S2BrainImagingDateTime", "S2Thrombolysis", "S2ThrombolysisDateTime",
    "TransferToDateTime",
)
# goldenhour's onset certainty -> SSNAP S1OnsetTimeType. A stroke found on waking is
# recorded from the time last known well, which SSNAP takes as a best estimate.
ONSET_TIME_TYPE = {"precise": "P", "estimated": "BE", "during_sleep": "BE", "unknown": "NK"}
YES_NO = {True: "Y", False: "N"}

NMTR_COLUMNS = (
    "Reference", "NHSNumber", "ReferringHospital", "ReceivingHospital", "IncidentDateTime",
    "ArrivalDateTime", "CTDateTime", "ReferralDateTime", "ConsultantAcknowledgedDateTime",
    "ImagesViewedDateTime", "DecisionDateTime", "Decision", "DestinationHospital",
    "DepartureDateTime", "ArrivalAtMTCDateTime", "GCS", "Age",
)
BRAIN_IMAGING = ("CT", "MR")


def registry_time(value: datetime | None) -> str | None:
    """An instant as UK wall-clock ``DD/MM/YYYY HH:MM`` (None stays None)."""
    return local(value).strftime(REGISTRY_TIME) if value is not None else None


def _iso_time(text: object) -> str | None:
    """A stored ISO 8601 time (the clinical fields keep them so) as registry time."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    # The clinical fields store aware UTC; a naive one (older rows) is UTC too.
    return registry_time(value if value.tzinfo else value.replace(tzinfo=UTC))


def dicom_time(study_date: str, study_time: str) -> str | None:
    """A study's DICOM StudyDate and StudyTime as registry time, None when either is
    missing or malformed. DICOM times are the scanner's local wall clock: passed through
    as they are, no zone conversion."""
    d, t = (study_date or "").strip(), (study_time or "").strip()
    if len(d) != 8 or len(t) < 4 or not (d + t[:4]).isdigit():
        return None
    try:
        when = datetime(int(d[:4]), int(d[4:6]), int(d[6:]), int(t[:2]), int(t[2:4]))
    except ValueError:
        return None
    return when.strftime(REGISTRY_TIME)


def _first_images(referral_ids: list[int], modalities: tuple[str, ...]) -> dict[int, str]:
    """Referral id -> registry time of its earliest linked study of ``modalities``."""
    first: dict[int, tuple[str, str]] = {}
    rows = db.session.execute(select(LinkedStudy.referral_id, LinkedStudy.study_date,
                                     LinkedStudy.modalities, LinkedStudy.snapshot)
                              .where(LinkedStudy.referral_id.in_(referral_ids)))
    for referral_id, study_date, mods, snapshot in rows:
        if not set((mods or "").replace("\\", ",").replace(" ", ",").split(",")) \
                & set(modalities):
            continue
        day = (snapshot or {}).get("study_date") or study_date
        key = (day or "", (snapshot or {}).get("study_time") or "")
        if dicom_time(*key) and (referral_id not in first or key < first[referral_id]):
            first[referral_id] = key
    return {rid: dicom_time(*key) for rid, key in first.items()}


def _referrals(f: Filters, specialty: str, batch: int) -> Iterator[list[Referral]]:
    query = select(Referral).join(Specialty, Specialty.id == Referral.specialty_id) \
        .where(Specialty.code == specialty, *_referral_conditions(f)) \
        .order_by(Referral.created_at, Referral.id)
    chunk: list[Referral] = []
    for referral in db.session.scalars(query.execution_options(yield_per=batch)):
        chunk.append(referral)
        if len(chunk) == batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ssnap_rows(f: Filters, batch: int = 500) -> Iterator[tuple]:
    """One row of SSNAP_COLUMNS per stroke referral matching ``f``, oldest first."""
    for chunk in _referrals(f, "stroke", batch):
        imaging = _first_images([r.id for r in chunk], BRAIN_IMAGING)
        for r in chunk:
            clinical = r.clinical or {}
            given = clinical.get("thrombolysis_given")
            yield (
                r.nhs_number,
                registry_time(r.onset_at) if r.onset_certainty != "unknown" else None,
                ONSET_TIME_TYPE.get(r.onset_certainty),
                registry_time(r.arrived_at),
                registry_time(r.arrived_at),  # clock start: arrival at the first hospital
                clinical.get("pre_stroke_mrs"),
                clinical.get("nihss"),
                imaging.get(r.id),
                YES_NO.get(given) if isinstance(given, bool) else None,
                _iso_time(clinical.get("thrombolysis_at")) if given is True else None,
                registry_time(r.departed_at) if r.outcome == "transfer" else None,
            )


def nmtr_rows(f: Filters, batch: int = 500) -> Iterator[tuple]:
    """One row of NMTR_COLUMNS per major-trauma referral matching ``f``, oldest first."""
    codes = dict(db.session.execute(select(Hospital.id, Hospital.code)).all())
    hub_of = dict(db.session.execute(select(HubService.id, HubService.hospital_id)).all())
    for chunk in _referrals(f, "major_trauma", batch):
        ct = _first_images([r.id for r in chunk], ("CT",))
        destinations = dict(db.session.execute(
            select(Decision.referral_id, Hospital.code)
            .join(Hospital, Hospital.id == Decision.destination_hospital_id)
            .where(Decision.referral_id.in_([r.id for r in chunk]))).all())
        for r in chunk:
            clinical = r.clinical or {}
            yield (
                r.reference, r.nhs_number, codes.get(r.referring_hospital_id),
                codes.get(hub_of.get(r.hub_service_id)),
                _iso_time(clinical.get("time_of_injury")), registry_time(r.arrived_at),
                ct.get(r.id), registry_time(r.created_at), registry_time(r.acknowledged_at),
                registry_time(r.first_image_viewed_at), registry_time(r.decided_at),
                r.outcome, destinations.get(r.id), registry_time(r.departed_at),
                registry_time(r.arrived_at_hub), clinical.get("gcs"), clinical.get("age"),
            )
