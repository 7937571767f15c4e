"""Uploading DICOM files (or zips of them) that are in no PACS yet: each file is
checked, the good ones are stored in the referring hospital's PACS by STOW-RS, and
their studies are linked to the referral like any found study."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from extensions import db
from integrations import imaging
from models import User
from workflow.errors import ValidationFailed
from workflow.imaging.endpoints import (
    ImagesUnavailable,
    client,
    record_outcome,
    target_for_hospital,
    timed,
)
from workflow.imaging.studies import check_may_link, link
from workflow.referrals.access import get_visible

MAX_ZIP_MEMBERS = 2000
MAX_UPLOAD_FILES = 2000
_UIDS = (("Study Instance UID", "study_uid"), ("Series Instance UID", "series_uid"),
         ("SOP Instance UID", "sop_uid"))


@dataclass
class UploadReport:
    stored: list[str] = field(default_factory=list)            # file names
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    linked: list[str] = field(default_factory=list)            # study UIDs

    def as_json(self) -> dict:
        return {"stored": self.stored, "linked": self.linked,
                "rejected": [{"file": n, "reason": r} for n, r in self.rejected]}


def _expand(files: list[tuple[str, bytes]], report: UploadReport) -> list[tuple[str, bytes]]:
    """Files, with each zip replaced by its members (bounded in count and size)."""
    out = []
    for name, data in files:
        if not data.startswith(b"PK\x03\x04"):
            out.append((name, data))
            continue
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = [m for m in archive.infolist() if not m.is_dir()
                       and not m.filename.startswith("__MACOSX/")]
        except zipfile.BadZipFile:
            report.rejected.append((name, "damaged zip file"))
            continue
        if len(members) > MAX_ZIP_MEMBERS:
            report.rejected.append((name, f"zip holds {len(members)} files (limit "
                                          f"{MAX_ZIP_MEMBERS})"))
            continue
        for member in members:
            label = f"{name}/{member.filename}"
            if member.file_size > imaging.MAX_FILE_BYTES:
                report.rejected.append((label, f"file too large: {member.file_size / 1e6:.0f} "
                                               f"MB (limit {imaging.MAX_FILE_BYTES / 1e6:.0f} MB)"))
                continue
            try:
                with archive.open(member) as handle:
                    # Read one byte past the limit: a member lying about its size is caught.
                    content = handle.read(imaging.MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                report.rejected.append((label, f"cannot be read from the zip ({exc})"))
                continue
            out.append((label, content))
    return out


def _check(data: bytes) -> imaging.StudyMeta:
    """Raises ImagingError: the file is refused (see imaging.inspect), or lacks a UID."""
    meta = imaging.inspect(data)
    for label, attribute in _UIDS:
        if not getattr(meta, attribute):
            raise imaging.ImagingError(f"no {label} in this file")
    return meta


def upload(referral_id: int, user: User, files: list[tuple[str, bytes]]) -> UploadReport:
    """Validate uploaded DICOM files (or zips of them), store the good ones in the
    referring hospital's PACS by STOW-RS and link their studies. A bad file is reported
    with its name and reason; the others still go through.

    Raises NotFound, NotAllowed, ValidationFailed (nothing sent, no PACS configured) or
    ImagesUnavailable (the PACS could not be reached; nothing was stored).
    """
    referral = get_visible(user, referral_id)
    check_may_link(user, referral)
    if not files:
        raise ValidationFailed({"files": "Choose DICOM files or a zip of them."})
    target = target_for_hospital(referral.referring_hospital_id)
    if target is None:
        raise ValidationFailed({"files": f"{referral.referring_hospital.name} has no PACS "
                                         "endpoint configured to store uploads."})
    db.session.commit()
    report = UploadReport()
    good: list[tuple[str, bytes]] = []
    study_of: dict[str, str] = {}
    for name, data in _expand(files, report)[:MAX_UPLOAD_FILES]:
        try:
            meta = _check(data)
        except imaging.ImagingError as exc:
            report.rejected.append((name, exc.message))
            continue
        good.append((name, imaging.without_preamble(data)))
        study_of[name] = meta.study_uid
    if not good:
        return report
    results, outcome = timed(target, lambda: client(target).store(good))
    record_outcome(outcome)
    if not outcome.ok:
        raise ImagesUnavailable(target.hospital_name, outcome.error)
    stored_studies: dict[str, None] = {}
    for result in results:
        if result.stored:
            report.stored.append(result.label)
            stored_studies[study_of[result.label]] = None
        else:
            report.rejected.append((result.label, result.reason))
    if stored_studies:
        linked = link(referral_id, user, target.hospital_code, list(stored_studies))
        report.linked = [row.study_uid for row in linked]
    return report
