"""Referrals as JSON-ready dicts, for the API and the pages' live updates."""

from __future__ import annotations

from datetime import datetime

from flask import url_for

from models import Referral, User
from workflow.audit import records
from workflow.referrals import receipts, states
from workflow.referrals.access import actor_kinds
from workflow.referrals.clocks import referral_clocks

# API path segment for each table event a user can trigger.
ACTION_PATHS = {
    "acknowledge": "acknowledge", "request_info": "request-info", "provide_info": "provide-info",
    "decide": "decide", "addendum": "addendum", "cancel": "cancel", "depart": "depart",
    "arrive": "arrive", "close": "close", "hand_over": "hand-over", "message": "messages",
    "page_again": "page-again",
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def allowed_actions(user: User, referral: Referral) -> list[str]:
    """The API actions ``user`` may take on ``referral`` now (table ∩ capacity)."""
    kinds = actor_kinds(user, referral)
    return [ACTION_PATHS[m.event] for m in states.MOVES
            if m.source == referral.state and m.event in ACTION_PATHS
            and m.permits(kinds, referral.outcome)]


def event_json(event) -> dict:
    return {
        "seq": event.seq, "kind": event.kind, "at": _iso(event.at),
        "actor": event.actor_label, "actor_id": event.actor_id,
        "from_state": event.from_state, "to_state": event.to_state,
        "reason": event.reason, "data": event.data,
    }


def decision_json(referral: Referral) -> dict | None:
    d = referral.decision
    if d is None:
        return None
    return {
        "outcome": d.outcome,
        "destination_hospital": d.destination_hospital.code if d.destination_hospital else None,
        "destination_unit": d.destination_unit, "transfer_urgency": d.transfer_urgency,
        "advice": d.advice, "rationale": d.rationale, "decided_by": d.decided_by.name,
        "decided_at": _iso(d.decided_at),
    }


def study_json(study) -> dict:
    return {
        "study_uid": study.study_uid, "hospital": study.hospital.code,
        "description": study.description, "study_date": study.study_date,
        "modalities": study.modalities, "series_count": study.series_count,
        "instance_count": study.instance_count, "linked_at": _iso(study.linked_at),
    }


def decision_records_json(referral_id: int) -> list[dict]:
    """The referral's decision records (records.listing) with each PDF's download path
    on this server (None until it is ready)."""
    listed = records.listing(referral_id)
    for record in listed:
        record["signed_at"] = _iso(record["signed_at"])
        record["anchored_at"] = _iso(record["anchored_at"])
        record["download_url"] = url_for("records.download", referral_id=referral_id,
                                         version=record["version"]) \
            if record["status"] == "ready" else None
    return listed


def referral_summary(referral: Referral) -> dict:
    return {
        "id": referral.id, "reference": referral.reference, "state": referral.state,
        "specialty": referral.specialty.code, "urgency": referral.urgency,
        "referring_hospital": referral.referring_hospital.code,
        "hub": referral.hub_service.hospital.code,
        "assigned_specialist": referral.assigned_specialist.name
        if referral.assigned_specialist else None,
        "created_at": _iso(referral.created_at), "outcome": referral.outcome,
    }


def referral_json(referral: Referral, user: User, now: datetime) -> dict:
    body = referral_summary(referral)
    body.update({
        "version": referral.version,
        "hub_service": referral.hub_service.name,
        "referrer": referral.referrer.name,
        "patient": {
            "nhs_number": referral.nhs_number, "family_name": referral.family_name,
            "given_name": referral.given_name, "birth_date": referral.birth_date.isoformat(),
            "sex": referral.sex, "local_number": referral.local_number,
        },
        "onset_at": _iso(referral.onset_at), "onset_certainty": referral.onset_certainty,
        "arrived_at": _iso(referral.arrived_at), "question": referral.question,
        "clinical": referral.clinical,
        "events": [event_json(e) for e in referral.events],
        "clocks": referral_clocks(referral, now),
        "decision": decision_json(referral),
        "decision_records": decision_records_json(referral.id),
        "studies": [study_json(s) for s in referral.studies],
        "allowed_actions": allowed_actions(user, referral),
    })
    return body


def thread_json(referral: Referral) -> list[dict]:
    """The referral's thread, oldest first: each message (and request/provide info)
    with its author, its text, the DICOM UIDs of its photo (or null) and each
    recipient's receipt."""
    found = receipts.for_thread(referral.id)
    messages = []
    for event in referral.events:
        if event.kind not in receipts.THREAD_EVENTS:
            continue
        photo = (event.data or {}).get("photo")
        messages.append({
            "id": event.id, "kind": event.kind, "at": _iso(event.at),
            "author": event.actor_label, "author_id": event.actor_id, "text": event.reason,
            "photo": {key: photo[key] for key in ("hospital", "study_uid", "series_uid",
                                                  "sop_uid", "rows", "columns")}
            if photo else None,
            "receipts": [{"name": r.name, "status": r.status, "at": _iso(r.at)}
                         for r in found.get(event.id, [])],
        })
    return messages
