"""Decision records: a frozen snapshot at decision time, rendered to PDF by the scheduler.

The snapshot (and its SHA-256) is written in the same transaction as the decision or
addendum, so the record says exactly what was known when the specialist signed. The
PDF is rendered later, outside any request or transaction, and stored once; an
addendum makes a new version pointing at the previous one.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from pathlib import Path

from flask import current_app, render_template
from sqlalchemy import select

from extensions import db
from integrations.pdf import PdfError, render_pdf
from models import Decision, DecisionRecord, Delivery, Page, Referral, ReferralEvent
from workflow.imaging import key_images, key_objects
from workflow.referrals import clinical
from workflow.referrals.chain import canonical_json
from workflow.referrals.clocks import referral_clocks
from workflow.times import format_local
from workflow.times import now as utcnow

log = logging.getLogger(__name__)


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def snapshot(referral: Referral, event: ReferralEvent, decision: Decision) -> dict:
    """Everything the record shows, as plain JSON, as it stands at ``event``."""
    events = list(db.session.scalars(
        select(ReferralEvent).where(ReferralEvent.referral_id == referral.id,
                                    ReferralEvent.seq <= event.seq)
        .order_by(ReferralEvent.seq)))
    deliveries = list(db.session.scalars(
        select(Delivery).join(Page, Delivery.page_id == Page.id)
        .where(Delivery.referral_id == referral.id, Delivery.claimed_at <= event.at)
        .order_by(Delivery.id)))
    service = referral.hub_service
    clocks = referral_clocks(referral, event.at)
    return {
        "reference": referral.reference,
        "network": current_app.config.get("NETWORK_CODE", "EM"),
        "specialty": referral.specialty.name,
        "referring_hospital": {"code": referral.referring_hospital.code,
                               "name": referral.referring_hospital.name,
                               "trust": referral.referring_hospital.trust.name},
        "hub": {"code": service.hospital.code, "name": service.hospital.name,
                "service": service.name},
        "referrer": referral.referrer.name,
        "patient": {"nhs_number": referral.nhs_number, "family_name": referral.family_name,
                    "given_name": referral.given_name,
                    "birth_date": referral.birth_date.isoformat(), "sex": referral.sex,
                    "local_number": referral.local_number},
        "onset_at": _when(referral.onset_at), "onset_certainty": referral.onset_certainty,
        "arrived_at": _when(referral.arrived_at), "created_at": _when(referral.created_at),
        "acknowledged_at": _when(referral.acknowledged_at),
        # When a study taken after the referral first reached the PACS (imaging/arrivals).
        "images_arrived_at": _when(referral.images_arrived_at),
        "question": referral.question, "clinical": referral.clinical,
        "clinical_rows": clinical.rows(referral.specialty.code, referral.clinical, format_local),
        "clocks": clocks,
        "studies": [{"study_uid": s.study_uid, "hospital": s.hospital.code,
                     "description": s.description, "study_date": s.study_date,
                     "modalities": s.modalities, "instances": s.instance_count}
                    for s in referral.studies],
        "key_images": key_images.identities(referral.id),  # identities only, no pixels
        # The Key Object Selection documents written back to the PACS (key_objects.py).
        "key_objects": key_objects.identities(referral.id),
        "messages": [{"at": _when(e.at), "by": e.actor_label, "kind": e.kind, "text": e.reason}
                     for e in events if e.kind in ("message", "request_info", "provide_info")],
        "timeline": [{"seq": e.seq, "at": _when(e.at), "kind": e.kind, "by": e.actor_label,
                      "from": e.from_state, "to": e.to_state, "hash": e.hash}
                     for e in events],
        "pages": [{"at": _when(d.claimed_at), "channel": d.channel,
                   "to": d.recipient.name if d.recipient else "nobody", "status": d.status,
                   "error": d.error} for d in deliveries],
        "decision": {
            "outcome": decision.outcome,
            "destination": decision.destination_hospital.name
            if decision.destination_hospital else None,
            "destination_unit": decision.destination_unit,
            "transfer_urgency": decision.transfer_urgency, "advice": decision.advice,
            "rationale": decision.rationale, "signer": decision.decided_by.name,
            "signer_email": decision.decided_by.email, "signed_with": decision.signed_with,
            "decided_at": _when(decision.decided_at),
        },
        "addenda": [{"at": _when(e.at), "by": e.actor_label, "text": e.reason}
                    for e in events if e.kind == "addendum"],
        "event_seq": event.seq,
        "event_hash": event.hash,
    }


def write_record(referral: Referral, event: ReferralEvent) -> None:
    """Decided or amended: the next version of the decision record, pending its PDF
    (inside the event's transaction, so it says what was known when it was signed)."""
    db.session.flush()
    decision = db.session.scalar(select(Decision).where(Decision.referral_id == referral.id))
    previous = db.session.scalar(
        select(DecisionRecord).where(DecisionRecord.referral_id == referral.id)
        .order_by(DecisionRecord.version.desc()).limit(1))
    content = snapshot(referral, event, decision)
    content["version"] = previous.version + 1 if previous else 1
    content["previous_record_sha256"] = previous.content_sha256 if previous else None
    db.session.add(DecisionRecord(
        referral_id=referral.id, version=content["version"],
        previous_id=previous.id if previous else None, event_seq=event.seq, content=content,
        content_sha256=sha256(canonical_json(content)), status="pending"))


def render_record(record: DecisionRecord) -> bytes:
    """The PDF for a record (pure: same content, same document). Raises PdfError.

    Ends the session's transaction before WeasyPrint runs: on SQLite every transaction
    holds the write lock, and a render takes seconds.
    """
    record_id, content, content_sha = record.id, record.content, record.content_sha256
    # The key images' pixels are rendered now, outside any transaction; the content
    # (and its hash) holds only which images they are.
    pictures = key_images.rendered_for_record(record.referral_id,
                                              content.get("key_images") or [])
    db.session.commit()  # what the record needs is in hand: hold nothing while rendering
    html = render_template("records/decision.html", c=content, key_images=pictures,
                           sha=content_sha, local=format_local,
                           parse=datetime.fromisoformat)
    pdf, refused = render_pdf(html, Path(current_app.static_folder))
    if refused:
        log.warning("record %s: refused to fetch %d URL(s)", record_id, len(refused))
    return pdf


def render_pending(limit: int = 5) -> int:
    """Render up to ``limit`` pending records; return how many were stored."""
    done = 0
    ids = list(db.session.scalars(select(DecisionRecord.id)
                                  .where(DecisionRecord.status == "pending")
                                  .order_by(DecisionRecord.id).limit(limit)))
    db.session.commit()
    for record_id in ids:
        record = db.session.get(DecisionRecord, record_id)
        try:
            pdf = render_record(record)
        except PdfError as exc:
            claimed = db.session.execute(
                DecisionRecord.__table__.update()
                .where(DecisionRecord.id == record_id, DecisionRecord.status == "pending")
                .values(status="failed", error=str(exc)[:2000]))
        else:
            claimed = db.session.execute(
                DecisionRecord.__table__.update()
                .where(DecisionRecord.id == record_id, DecisionRecord.status == "pending")
                .values(status="ready", pdf=pdf, pdf_sha256=sha256(pdf),
                        rendered_at=utcnow()))
        # Another scheduler may have stored it first: its bytes stay, ours are dropped.
        done += claimed.rowcount
        db.session.commit()
    return done


def listing(referral_id: int) -> list[dict]:
    """The referral's decision records, oldest first, as its page and the API list them:
    version, status, error, the SHA-256 of the content and of the PDF, who signed the
    version and when, its event and the event-chain head then (all from the signed
    content), and the first anchor that covered it (root and time; None until the next
    anchor). Reads no PDF bytes."""
    rows = db.session.execute(
        select(DecisionRecord.version, DecisionRecord.status, DecisionRecord.error,
               DecisionRecord.content, DecisionRecord.content_sha256,
               DecisionRecord.pdf_sha256, DecisionRecord.event_seq,
               DecisionRecord.anchored_root, DecisionRecord.anchored_at)
        .where(DecisionRecord.referral_id == referral_id)
        .order_by(DecisionRecord.version)).all()
    listed = []
    for row in rows:
        signed = next((e for e in row.content.get("timeline", [])
                       if e.get("seq") == row.event_seq), {})
        listed.append({
            "version": row.version, "status": row.status, "error": row.error,
            "content_sha256": row.content_sha256, "pdf_sha256": row.pdf_sha256 or None,
            "signer": signed.get("by"),
            "signed_at": datetime.fromisoformat(signed["at"]) if signed.get("at") else None,
            "event_seq": row.event_seq, "chain_head": row.content.get("event_hash"),
            "anchored_root": row.anchored_root, "anchored_at": row.anchored_at,
        })
    return listed


def note_anchor(heads: list[tuple[int, int, str]], root: str, at: datetime) -> int:
    """Note ``root`` (signed at ``at``) on every record not yet anchored whose event is
    in one of ``heads`` (referral id, last seq, hash): a head at or after the record's
    event seq chains back to it. Returns how many were noted; commits. Raises only
    what the database raises."""
    last_seq = {referral_id: seq for referral_id, seq, _ in heads}
    waiting = db.session.execute(
        select(DecisionRecord.id, DecisionRecord.referral_id, DecisionRecord.event_seq)
        .where(DecisionRecord.anchored_root.is_(None))).all()
    covered = [r.id for r in waiting if last_seq.get(r.referral_id, 0) >= r.event_seq]
    noted = 0
    for start in range(0, len(covered), 500):
        noted += db.session.execute(
            DecisionRecord.__table__.update()
            .where(DecisionRecord.id.in_(covered[start:start + 500]),
                   DecisionRecord.anchored_root.is_(None))
            .values(anchored_root=root, anchored_at=at)).rowcount
    db.session.commit()
    return noted


def noted_anchors(since: str = "") -> list:
    """(id, referral_id, version, event_seq, anchored_root) of every record an anchor was
    noted on (`note_anchor`), by id; with ``since`` (an ISO time), only those noted
    after it."""
    query = (select(DecisionRecord.id, DecisionRecord.referral_id, DecisionRecord.version,
                    DecisionRecord.event_seq, DecisionRecord.anchored_root)
             .where(DecisionRecord.anchored_root.is_not(None)).order_by(DecisionRecord.id))
    if since:
        query = query.where(DecisionRecord.anchored_at >= datetime.fromisoformat(since))
    return db.session.execute(query).all()


def latest(referral_id: int) -> DecisionRecord | None:
    return db.session.scalar(select(DecisionRecord).where(DecisionRecord.referral_id ==
                                                          referral_id)
                             .order_by(DecisionRecord.version.desc()).limit(1))


def verify_records(referral_ids: list[int] | None = None) -> tuple[int, list[str]]:
    """Every record's content hash, and every stored PDF's bytes hash (only the records
    of ``referral_ids`` when given)."""
    problems, count = [], 0
    query = select(DecisionRecord).order_by(DecisionRecord.id)
    if referral_ids is not None:
        query = query.where(DecisionRecord.referral_id.in_(referral_ids))
    for record in db.session.scalars(query.execution_options(yield_per=100)):
        count += 1
        if sha256(canonical_json(record.content)) != record.content_sha256:
            problems.append(f"decision record {record.id} (referral {record.referral_id} "
                            f"v{record.version}): its content was changed after signing")
        if record.status == "ready" and sha256(record.pdf or b"") != record.pdf_sha256:
            problems.append(f"decision record {record.id} (referral {record.referral_id} "
                            f"v{record.version}): the stored PDF's bytes were changed")
    return count, problems
