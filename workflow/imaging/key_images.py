"""Key images: frames a clinician flags while reviewing; they go into the decision record.

The record's snapshot (and so its hash) holds each key image's identity — UIDs, frame,
preset, who flagged it and when — never its pixels. The pixels are rendered from the
cache or the PACS when the PDF is made, outside any transaction.
"""

from __future__ import annotations

import base64
import logging

from sqlalchemy import select

from extensions import db
from integrations.dicom_uid import InvalidUid, check_uid
from models import KeyImage, Referral, User
from workflow.errors import NotAllowed, ValidationFailed
from workflow.imaging import frames
from workflow.referrals.access import actor_kinds, get_visible
from workflow.times import now as utcnow

log = logging.getLogger(__name__)
MAX_PER_REFERRAL = 24


def _label(referral: Referral, study_uid: str, sop_uid: str, frame: int,
           preset: str) -> tuple[str, str]:
    """(series UID, label) of a frame of a linked study, from the link snapshot."""
    for study in referral.studies:
        if study.study_uid != study_uid:
            continue
        for series in (study.snapshot or {}).get("series", []):
            sops = [i["sop_uid"] for i in series.get("instances", [])]
            if sop_uid in sops:
                name = series.get("description") or series.get("modality") or "Series"
                slice_text = f"slice {sops.index(sop_uid) + 1}/{len(sops)}"
                frame_text = f", frame {frame}" if frame > 1 else ""
                return series["series_uid"], (
                    f"{study.description or 'Study'} {study.study_date} — {name}, "
                    f"{slice_text}{frame_text}, {preset.replace('_', ' ')}")[:200]
    raise ValidationFailed({"sop_uid": "That image is not in a study linked to this referral."})


def toggle(referral_id: int, user: User, *, study_uid: str, sop_uid: str,
           frame: int = 1, preset: str = "brain") -> bool:
    """Flag the frame as key, or unflag it if it already is; commit. Returns flagged.

    Raises NotFound, NotAllowed (not a clinician on this referral), ValidationFailed
    (a UID that is not a DICOM UID, a frame or preset out of range, the image is not in
    a linked study, or too many key images).
    """
    referral = get_visible(user, referral_id)
    if not actor_kinds(user, referral):  # who may, before what they sent
        raise NotAllowed("only the clinicians on this referral can flag key images")
    try:
        check_uid(study_uid, "study_uid")
        check_uid(sop_uid, "sop_uid")
    except InvalidUid as exc:
        raise ValidationFailed({exc.field: exc.message}) from None
    spec = frames.frame_spec(study_uid, sop_uid, frame=frame, preset=preset)  # 422 if bad
    existing = db.session.scalar(select(KeyImage).where(
        KeyImage.referral_id == referral_id, KeyImage.sop_uid == sop_uid,
        KeyImage.frame == frame))
    if existing is not None:
        db.session.delete(existing)
        db.session.commit()
        return False
    preset = spec.preset
    series_uid, label = _label(referral, study_uid, sop_uid, frame, preset)
    count = len(list(db.session.scalars(select(KeyImage.id)
                                        .where(KeyImage.referral_id == referral_id))))
    if count >= MAX_PER_REFERRAL:
        raise ValidationFailed({"sop_uid": f"At most {MAX_PER_REFERRAL} key images."})
    db.session.add(KeyImage(referral_id=referral_id, study_uid=study_uid,
                            series_uid=series_uid, sop_uid=sop_uid, frame=frame,
                            preset=preset, label=label, flagged_by_id=user.id, at=utcnow()))
    db.session.commit()
    return True


def for_referral(referral_id: int) -> list[KeyImage]:
    return list(db.session.scalars(select(KeyImage).where(KeyImage.referral_id == referral_id)
                                   .order_by(KeyImage.at, KeyImage.id)))


def identities(referral_id: int) -> list[dict]:
    """The key images as the decision record's snapshot holds them (no pixels)."""
    return [{"label": k.label, "study_uid": k.study_uid, "series_uid": k.series_uid,
             "sop_uid": k.sop_uid, "frame": k.frame, "preset": k.preset,
             "flagged_by": k.flagged_by.name, "at": k.at.isoformat()}
            for k in for_referral(referral_id)]


def rendered_for_record(referral_id: int, items: list[dict]) -> list[dict]:
    """``items`` (identities from a record) with a PNG ``data_uri`` each, or an empty one
    and a note when the image cannot be had now. Call outside any transaction."""
    out = []
    for item in items:
        entry = {"label": item.get("label", ""), "data_uri": "", "note": ""}
        try:
            spec = frames.frame_spec(item["study_uid"], item["sop_uid"],
                                     frame=item.get("frame", 1),
                                     preset=item.get("preset", "brain"), fmt="png")
            study = frames.linked_study(referral_id, spec.study_uid)
            image = frames.render_frame(study, spec).image
            entry["data_uri"] = "data:image/png;base64," + base64.b64encode(image).decode()
        except Exception as exc:  # noqa: BLE001 - a missing picture must not stop the record
            log.warning("key image %s for referral %s: %s", item.get("sop_uid"), referral_id,
                        exc)
            entry["note"] = f"image not available when the record was made ({exc})"[:300]
        out.append(entry)
    return out
