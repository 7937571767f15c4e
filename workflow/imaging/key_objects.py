"""Key images back in the hospital's PACS: a DICOM Key Object Selection document per
study, stored by STOW-RS so the hospital's own viewer shows what the specialist flagged.

When a decision (or an addendum) is recorded, `queue` writes one pending document per
linked study with key images, its SOP Instance UID chosen then, inside the event's
transaction, so the decision record can name it. The scheduler's `send_pending` builds
and stores them later: claim (a short lease) → commit → ask the PACS → write the
outcome. A PACS that is down is tried again with a growing wait; nothing here runs in
a request or holds a transaction open while the PACS answers.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select, update

from extensions import db
from models import Hospital, KeyImage, KeyObjectDocument, LinkedStudy, Referral, ReferralEvent
from workflow.imaging.endpoints import client, record_outcome, target_for_hospital, timed
from workflow.times import now as utcnow

log = logging.getLogger(__name__)
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
LEASE = timedelta(minutes=2)  # a claimed document another scheduler leaves alone
MAX_ATTEMPTS = 20
FIRST_WAIT = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=30)


def _flagged_by_study(referral_id: int) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for key in db.session.scalars(select(KeyImage).where(KeyImage.referral_id == referral_id)
                                  .order_by(KeyImage.at, KeyImage.id)):
        found.setdefault(key.study_uid, []).append(
            {"series_uid": key.series_uid, "sop_uid": key.sop_uid, "frame": key.frame})
    return found


def queue(referral: Referral, _event: ReferralEvent | None = None) -> list[KeyObjectDocument]:
    """Inside the decide/addendum transaction: a pending document for each linked study
    whose key images are not yet what its last document names. Raises nothing."""
    added = []
    studies = {s.study_uid: s for s in referral.studies}
    for study_uid, references in _flagged_by_study(referral.id).items():
        study = studies.get(study_uid)
        if study is None:
            continue
        last = db.session.scalar(
            select(KeyObjectDocument).where(KeyObjectDocument.referral_id == referral.id,
                                            KeyObjectDocument.study_uid == study_uid)
            .order_by(KeyObjectDocument.id.desc()).limit(1))
        if last is not None and last.references == references:
            continue
        document = KeyObjectDocument(
            referral_id=referral.id, hospital_id=study.hospital_id, study_uid=study_uid,
            series_uid=generate_uid(), sop_uid=generate_uid(), references=references,
            next_try_at=utcnow())
        db.session.add(document)
        added.append(document)
    db.session.flush()
    return added


def identities(referral_id: int) -> list[dict]:
    """The documents as the decision record names them (no status: that changes)."""
    rows = db.session.execute(
        select(KeyObjectDocument, Hospital.code).join(
            Hospital, Hospital.id == KeyObjectDocument.hospital_id)
        .where(KeyObjectDocument.referral_id == referral_id).order_by(KeyObjectDocument.id))
    return [{"study_uid": d.study_uid, "sop_uid": d.sop_uid, "hospital": code,
             "images": len(d.references)} for d, code in rows]


def build(document: KeyObjectDocument, study: LinkedStudy, sop_classes: dict[str, str],
          *, title: str) -> bytes:
    """The Key Object Selection document (Part 10 file) for ``document``: the study's
    patient module as the PACS has it, and one IMAGE item per key image. ``sop_classes``
    maps each referenced SOP Instance UID to its SOP Class UID (CT Image when unknown)."""
    snap = study.snapshot or {}
    patient = snap.get("patient") or {}
    at = utcnow()
    ds = Dataset()
    ds.SOPClassUID = KEY_OBJECT_SELECTION
    ds.SOPInstanceUID = document.sop_uid
    ds.StudyInstanceUID = document.study_uid
    ds.SeriesInstanceUID = document.series_uid
    ds.PatientID = snap.get("patient_id", "")
    ds.PatientName = patient.get("name", "")
    ds.PatientBirthDate = patient.get("birth_date", "")
    ds.PatientSex = patient.get("sex", "")
    ds.StudyDate = snap.get("study_date", "")
    ds.StudyTime = snap.get("study_time", "")
    ds.AccessionNumber = snap.get("accession_number", "")
    ds.StudyID = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "KO"
    ds.SeriesNumber = 999
    ds.SeriesDescription = "Key images (goldenhour)"
    ds.InstanceNumber = 1
    ds.Manufacturer = "goldenhour"
    ds.ContentDate = at.strftime("%Y%m%d")
    ds.ContentTime = at.strftime("%H%M%S")
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("113000", "DCM", "Of Interest")])
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([template])

    by_series: dict[str, list[dict]] = {}
    for ref in document.references:
        by_series.setdefault(ref["series_uid"], []).append(ref)
    evidence = Dataset()
    evidence.StudyInstanceUID = document.study_uid
    evidence.ReferencedSeriesSequence = Sequence()
    for series_uid, refs in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = Sequence([_sop(r, sop_classes, frames=False)
                                                 for r in refs])
        evidence.ReferencedSeriesSequence.append(series)
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])

    items = []
    note = Dataset()
    note.RelationshipType = "CONTAINS"
    note.ValueType = "TEXT"
    note.ConceptNameCodeSequence = Sequence([_code("113012", "DCM", "Key Object Description")])
    note.TextValue = title[:1024]
    items.append(note)
    for ref in document.references:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "IMAGE"
        item.ReferencedSOPSequence = Sequence([_sop(ref, sop_classes, frames=True)])
        items.append(item)
    ds.ContentSequence = Sequence(items)

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _sop(ref: dict, sop_classes: dict[str, str], *, frames: bool) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_classes.get(ref["sop_uid"], "1.2.840.10008.5.1.4.1.1.2")
    item.ReferencedSOPInstanceUID = ref["sop_uid"]
    if frames and int(ref.get("frame") or 1) > 1:
        item.ReferencedFrameNumber = int(ref["frame"])
    return item


def _claim(limit: int) -> list[int]:
    """Due pending documents, each leased to this process (committed)."""
    now = utcnow()
    due = list(db.session.execute(
        select(KeyObjectDocument.id, KeyObjectDocument.next_try_at)
        .where(KeyObjectDocument.status == "pending", KeyObjectDocument.next_try_at <= now)
        .order_by(KeyObjectDocument.next_try_at).limit(limit)))
    claimed = []
    for doc_id, seen in due:
        won = db.session.execute(
            update(KeyObjectDocument)
            .where(KeyObjectDocument.id == doc_id, KeyObjectDocument.status == "pending",
                   KeyObjectDocument.next_try_at == seen)
            .values(next_try_at=now + LEASE))
        if won.rowcount:
            claimed.append(doc_id)
    db.session.commit()
    return claimed


def _wait(attempts: int) -> timedelta:
    return min(FIRST_WAIT * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


def send_pending(limit: int = 5) -> int:
    """Store up to ``limit`` due documents in their hospitals' PACS; returns how many
    were stored. A failure is written on the document and tried again later (after
    MAX_ATTEMPTS it is marked failed). Call outside any transaction (the scheduler)."""
    stored = 0
    for doc_id in _claim(limit):
        document = db.session.get(KeyObjectDocument, doc_id)
        referral = db.session.get(Referral, document.referral_id)
        study = db.session.scalar(select(LinkedStudy).where(
            LinkedStudy.referral_id == document.referral_id,
            LinkedStudy.study_uid == document.study_uid))
        target = target_for_hospital(document.hospital_id)
        title = (f"Key images flagged for {referral.specialty.name} referral "
                 f"{referral.reference}")
        db.session.commit()  # nothing held open while the PACS answers
        if study is None or target is None:
            _finish(doc_id, ok=False, error="the study is no longer linked, or its hospital "
                                            "has no PACS endpoint", give_up=True)
            continue
        pacs = client(target)

        def store(document=document, study=study, pacs=pacs, title=title):
            classes = {}
            for series_uid in {r["series_uid"] for r in document.references}:
                for ref in pacs.instances(document.study_uid, series_uid):
                    if ref.sop_class:
                        classes[ref.sop_uid] = ref.sop_class
            data = build(document, study, classes, title=title)
            return pacs.store([("key objects", data)])

        results, outcome = timed(target, store)
        record_outcome(outcome)
        if not outcome.ok:
            _finish(doc_id, ok=False, error=outcome.error)
        elif results and results[0].stored:
            _finish(doc_id, ok=True)
            stored += 1
        else:
            _finish(doc_id, ok=False, error=results[0].reason if results else "not stored")
    return stored


def _finish(doc_id: int, *, ok: bool, error: str = "", give_up: bool = False) -> None:
    document = db.session.get(KeyObjectDocument, doc_id)
    if ok:
        document.status, document.stored_at, document.error = "stored", utcnow(), ""
    else:
        document.attempts += 1
        document.error = error[:500]
        if give_up or document.attempts >= MAX_ATTEMPTS:
            document.status = "failed"
            log.warning("key object document %s for referral %s not stored: %s",
                        document.sop_uid, document.referral_id, error)
        else:
            document.next_try_at = utcnow() + _wait(document.attempts)
    db.session.commit()
