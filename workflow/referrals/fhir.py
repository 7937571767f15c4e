"""A referral as FHIR R4 (4.0.1) JSON: a Bundle of type collection holding

- Patient (NHS number under https://fhir.nhs.uk/Id/nhs-number),
- ServiceRequest (the referral: question, specialty, hubs, supporting images),
- Task (where the referral is, mapped from our states by TASK_STATUS; our own state
  is kept verbatim in Task.businessStatus),
- ImagingStudy for each linked study (the DICOM Study Instance UID as identifier),
- Communication carrying the decision (outcome, advice, rationale), once decided,
- DocumentReference for each rendered decision record PDF (newest replaces older).

Entries are linked by urn:uuid full URLs derived from the referral id, so the same
referral always gives the same identities.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import select

from extensions import db
from models import DecisionRecord, Referral
from workflow.referrals.states import State

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
DICOM_UID_SYSTEM = "urn:dicom:uid"
DICOM_MODALITY_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"

# The Task is the request for a specialist decision. It is done once decided: the
# transfer that may follow is visible in businessStatus (in_transfer, closed).
# Unanswered means paging ran out with nobody accepting: "failed", although a late
# acknowledge can still move it on (to in-progress).
TASK_STATUS: dict[str, str] = {
    State.SUBMITTED: "requested",
    State.AWAITING_SPECIALIST: "requested",
    State.UNDER_REVIEW: "in-progress",
    State.INFO_REQUESTED: "on-hold",
    State.DECIDED: "completed",
    State.IN_TRANSFER: "completed",
    State.CLOSED: "completed",
    State.CANCELLED: "cancelled",
    State.UNANSWERED: "failed",
}

SERVICE_REQUEST_STATUS: dict[str, str] = {
    State.CANCELLED: "revoked",
    State.DECIDED: "completed",
    State.IN_TRANSFER: "completed",
    State.CLOSED: "completed",
}

GENDER = {"female": "female", "male": "male", "other": "other"}

_NAMESPACE = uuid.UUID("6f1c7a52-3a59-4c5e-9a0e-2d7d3a1f6b10")


def _urn(referral: Referral, kind: str, key: object = "") -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{referral.id}/{kind}/{key}')}"


def _instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _study_date(text: str) -> str | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])).isoformat()
    except (ValueError, IndexError):
        return None


def _entry(full_url: str, resource: dict) -> dict:
    resource["id"] = full_url.removeprefix("urn:uuid:")
    return {"fullUrl": full_url, "resource": _compact(resource)}


def _compact(value):
    """Drop empty values: FHIR forbids empty strings, lists and objects."""
    if isinstance(value, dict):
        pairs = ((k, _compact(v)) for k, v in value.items())
        return {k: v for k, v in pairs if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (_compact(v) for v in value) if v not in (None, "", [], {})]
    return value


def referral_bundle(referral: Referral, base_url: str, now: datetime) -> dict:
    """The FHIR R4 Bundle for ``referral``; ``base_url`` is the app's public address
    (for the identifier system and the PDF links). Raises nothing."""
    base_url = base_url.rstrip("/")
    patient_url = _urn(referral, "patient")
    request_url = _urn(referral, "service-request")
    patient = {"reference": patient_url}
    entries = [_entry(patient_url, {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": referral.nhs_number}],
        "name": [{"use": "official", "family": referral.family_name,
                  "given": [referral.given_name]}],
        "gender": GENDER.get(referral.sex, "unknown"),
        "birthDate": referral.birth_date.isoformat(),
    })]
    study_urls = []
    for study in referral.studies:
        url = _urn(referral, "study", study.study_uid)
        study_urls.append(url)
        entries.append(_entry(url, {
            "resourceType": "ImagingStudy",
            "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study.study_uid}"}],
            "status": "available",
            "subject": patient,
            "started": _study_date(study.study_date),
            "modality": [{"system": DICOM_MODALITY_SYSTEM, "code": m}
                         for m in study.modalities.replace("\\", ",").split(",") if m.strip()],
            "numberOfSeries": study.series_count,
            "numberOfInstances": study.instance_count,
            "description": study.description,
            "basedOn": [{"reference": request_url}],
        }))
    hub = referral.hub_service
    entries.append(_entry(request_url, {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": f"{base_url}/referrals", "value": referral.reference}],
        "status": SERVICE_REQUEST_STATUS.get(referral.state, "active"),
        "intent": "order",
        "priority": "stat" if referral.urgency == "emergency" else "urgent",
        "category": [{"text": referral.specialty.name}],
        "code": {"text": f"{referral.specialty.name} opinion"},
        "subject": patient,
        "authoredOn": _instant(referral.created_at),
        "requester": {"display": f"{referral.referrer.name}, "
                                 f"{referral.referring_hospital.name}"},
        "performer": [{"display": hub.name}],
        "reasonCode": [{"text": referral.question}],
        "supportingInfo": [{"reference": url} for url in study_urls],
        "note": [{"text": f"Onset {_instant(referral.onset_at) or 'unknown'} "
                          f"({referral.onset_certainty}); arrived "
                          f"{_instant(referral.arrived_at) or 'unknown'}"}],
    }))
    entries.append(_entry(_urn(referral, "task"), {
        "resourceType": "Task",
        "status": TASK_STATUS[referral.state],
        "businessStatus": {"text": referral.state},
        "intent": "order",
        "focus": {"reference": request_url},
        "for": patient,
        "authoredOn": _instant(referral.created_at),
        "lastModified": _instant(referral.decided_at or referral.acknowledged_at
                                 or referral.created_at),
        "executionPeriod": {"start": _instant(referral.created_at),
                            "end": _instant(referral.decided_at or referral.ended_at)},
        "owner": {"display": referral.assigned_specialist.name}
        if referral.assigned_specialist else None,
    }))
    decision = referral.decision
    if decision is not None:
        entries.append(_entry(_urn(referral, "decision"), {
            "resourceType": "Communication",
            "status": "completed",
            "basedOn": [{"reference": request_url}],
            "subject": patient,
            "sent": _instant(decision.decided_at),
            "sender": {"display": decision.decided_by.name},
            "topic": {"text": f"Decision: {decision.outcome.replace('_', ' ')}"},
            "payload": [{"contentString": f"Outcome: {decision.outcome.replace('_', ' ')}"},
                        {"contentString": f"Advice: {decision.advice}"}
                        if decision.advice else None,
                        {"contentString": f"Rationale: {decision.rationale}"}],
        }))
    entries += _records(referral, base_url, patient)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NAMESPACE, f"{referral.id}/bundle/{_instant(now)}")),
        "type": "collection",
        "timestamp": _instant(now),
        "entry": entries,
    }


def _records(referral: Referral, base_url: str, patient: dict) -> list[dict]:
    records = db.session.scalars(select(DecisionRecord).where(
        DecisionRecord.referral_id == referral.id, DecisionRecord.status == "ready")
        .order_by(DecisionRecord.version)).all()
    entries = []
    for record in records:
        newest = record is records[-1]
        previous = next((r for r in records if r.id == record.previous_id), None)
        entries.append(_entry(_urn(referral, "record", record.version), {
            "resourceType": "DocumentReference",
            "status": "current" if newest else "superseded",
            "docStatus": "final",
            "type": {"text": "Specialist decision record"},
            "subject": patient,
            "date": _instant(record.rendered_at or record.created_at),
            "description": f"Version {record.version}; content SHA-256 "
                           f"{record.content_sha256}",
            "relatesTo": [{"code": "replaces",
                           "target": {"reference": _urn(referral, "record", previous.version)}}]
            if previous is not None else None,
            "content": [{"attachment": {
                "contentType": "application/pdf",
                "url": f"{base_url}/referrals/{referral.id}/records/{record.version}.pdf",
                "size": len(record.pdf or b""),
                "title": f"Decision record {referral.reference} v{record.version}",
            }}],
        }))
    return entries
