"""Uploading DICOM files (or zips of them) that are in no PACS yet: each file is
checked, the good ones are stored in the referring hospital's PACS by STOW-RS, and
their studies are linked to the referral like any found study.

A zip is opened one member at a time and never trusted: before a member is read its
declared sizes are checked against the archive itself, the per-file limit, a
compression-ratio limit and the upload's budget of expanded bytes; while it is read
the same limits are enforced on the bytes that actually come out (a declared size can
lie). A zip inside a zip is refused. Checked files go to the PACS in batches, so an
upload is never held in memory expanded all at once.
"""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from extensions import db
from integrations import imaging
from models import User
from workflow.errors import ValidationFailed
from workflow.imaging import identity
from workflow.imaging.endpoints import (
    ImagesUnavailable,
    PacsTarget,
    client,
    record_outcome,
    target_for_hospital,
    timed,
)
from workflow.imaging.studies import check_may_link, link
from workflow.referrals.access import get_visible

MAX_ZIP_MEMBERS = 2000
MAX_UPLOAD_FILES = 2000
MAX_EXPANDED_BYTES = 2 * 1024**3  # what all the zips of one upload may expand to
MAX_RATIO = 100  # expanded : compressed, per zip member
# A member smaller than this may compress better (a blank frame does); the budget still
# bounds how many of them an upload can expand.
RATIO_FROM_BYTES = 1024 * 1024
STOW_BATCH_BYTES = 64 * 1024 * 1024  # files sent to the PACS in one STOW-RS request
_CHUNK = 1024 * 1024
_ZIP = b"PK\x03\x04"
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


class _Refused(Exception):
    """A zip member that breaks a limit; the message is the reason given for it."""


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10e6 else f"{size / 1e6:.0f} MB"


def _expansion(expanded: int, compressed: int) -> str | None:
    """Why a member expanding to ``expanded`` bytes from ``compressed`` is refused."""
    if expanded >= RATIO_FROM_BYTES and expanded > MAX_RATIO * max(compressed, 1):
        ratio = expanded // max(compressed, 1)
        return (f"expands {_mb(expanded)} from {_mb(compressed)} (ratio {ratio}:1, limit "
                f"{MAX_RATIO}:1)")
    return None


class _Expander:
    """The files of one upload, one at a time, each zip replaced by its members."""

    def __init__(self, report: UploadReport):
        self.report = report
        self.budget = MAX_EXPANDED_BYTES

    def files(self, files: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
        for name, data in files:
            if data.startswith(_ZIP):
                yield from self._members(name, data)
            else:
                yield name, data

    def _members(self, name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            entries = archive.infolist()
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError):
            self.report.rejected.append((name, "damaged zip file"))
            return
        members = [m for m in entries
                   if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
        if len(members) > MAX_ZIP_MEMBERS:
            self.report.rejected.append((name, f"zip holds {len(members)} files (limit "
                                               f"{MAX_ZIP_MEMBERS})"))
            return
        if len({m.header_offset for m in entries}) < len(entries):
            self.report.rejected.append((name, "two files in this zip share the same data "
                                               "(damaged or crafted zip)"))
            return
        # The bytes between a member's header and the next one's: the most its compressed
        # data can really take, whatever the zip's directory says.
        offsets = sorted({m.header_offset for m in entries} | {len(data)})
        room = {o: offsets[i + 1] - o for i, o in enumerate(offsets[:-1])}
        for member in members:
            label = f"{name}/{member.filename}"
            try:
                self._check_declared(member, room.get(member.header_offset, 0))
                content = self._read(archive, member)
            except _Refused as exc:
                self.report.rejected.append((label, str(exc)))
                continue
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError,
                    ValueError) as exc:  # ValueError: a name that is not UTF-8, say
                reason = ("its content does not match the zip's directory (damaged or "
                          "crafted zip)" if "CRC" in str(exc) else
                          "cannot be read from the zip (damaged or crafted zip)")
                self.report.rejected.append((label, reason))
                continue
            except (RuntimeError, NotImplementedError, OSError) as exc:
                # Encrypted, or a compression method zipfile lacks: its words say which.
                said = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                self.report.rejected.append((label, f"cannot be read from the zip ({said})"))
                continue
            yield label, content

    def _check_declared(self, member: zipfile.ZipInfo, room: int) -> None:
        """The zip directory's sizes against the limits, before anything is read."""
        if member.file_size > imaging.MAX_FILE_BYTES:
            raise _Refused(f"file too large: {member.file_size / 1e6:.0f} MB (limit "
                           f"{imaging.MAX_FILE_BYTES / 1e6:.0f} MB)")
        if member.compress_size > room:
            raise _Refused("the zip's directory gives it more compressed bytes than the "
                           "archive holds (damaged or crafted zip)")
        if problem := _expansion(member.file_size, member.compress_size):
            raise _Refused(problem)
        if member.file_size > self.budget:
            raise _Refused(self._over_budget())

    def _read(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
        """The member's bytes, read a chunk at a time with every limit enforced on what
        actually comes out."""
        chunks: list[bytes] = []
        size = 0
        with archive.open(member) as handle:
            while chunk := handle.read(_CHUNK):
                if not chunks and chunk.startswith(_ZIP):
                    raise _Refused("a zip inside a zip is not accepted: unzip it and "
                                   "upload its files")
                size += len(chunk)
                if size > member.file_size:
                    raise _Refused(f"holds more than the {_mb(member.file_size)} the zip's "
                                   "directory says (damaged or crafted zip)")
                if problem := _expansion(size, member.compress_size):
                    raise _Refused(problem)
                if size > self.budget:
                    raise _Refused(self._over_budget())
                chunks.append(chunk)
        self.budget -= size
        return b"".join(chunks)

    def _over_budget(self) -> str:
        return (f"the upload's zips expand to more than {_mb(MAX_EXPANDED_BYTES)} in all; "
                "upload fewer files at once")


def _check(data: bytes) -> imaging.StudyMeta:
    """Raises ImagingError: the file is refused (see imaging.inspect), or lacks a UID."""
    meta = imaging.inspect(data)
    for label, attribute in _UIDS:
        if not getattr(meta, attribute):
            raise imaging.ImagingError(f"no {label} in this file")
    return meta


def checked_files(files: Iterable[tuple[str, bytes]],
                  report: UploadReport) -> Iterator[tuple[str, bytes, imaging.StudyMeta]]:
    """The files of an upload that pass every check, zips expanded one member at a time
    (within the limits in this module's docstring), each as (name, bytes with the
    preamble blanked, what `imaging.inspect` found). Every refused file or member is
    added to ``report.rejected`` with its reason instead; nothing here raises for a bad
    file, and nothing is stored or asked of a PACS.
    """
    for count, (name, data) in enumerate(_Expander(report).files(files), start=1):
        if count > MAX_UPLOAD_FILES:
            report.rejected.append((name, f"more than {MAX_UPLOAD_FILES} files in one "
                                          "upload: this one and the rest were not read"))
            return
        try:
            meta = _check(data)
        except imaging.ImagingError as exc:
            report.rejected.append((name, exc.message))
            continue
        yield name, imaging.without_preamble(data), meta


class _Sender:
    """STOW-RS in batches of about STOW_BATCH_BYTES, so memory holds one batch."""

    def __init__(self, target: PacsTarget, report: UploadReport):
        self.target, self.report = target, report
        self.batch: list[tuple[str, bytes]] = []
        self.size = 0
        self.study_of: dict[str, str] = {}
        self.studies: dict[str, None] = {}
        self.failure = ""  # the PACS's error once a batch failed after others were stored

    def add(self, name: str, data: bytes, study_uid: str) -> None:
        if self.failure:
            self.report.rejected.append((name, f"not stored: {self.failure}"))
            return
        self.batch.append((name, data))
        self.study_of[name] = study_uid
        self.size += len(data)
        if self.size >= STOW_BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Raises ImagesUnavailable: the PACS failed before anything was stored."""
        if not self.batch:
            return
        batch, self.batch, self.size = self.batch, [], 0
        results, outcome = timed(self.target, lambda: client(self.target).store(batch))
        record_outcome(outcome)
        if not outcome.ok:
            if not self.report.stored:
                raise ImagesUnavailable(self.target.hospital_name, outcome.error)
            self.failure = outcome.error
            self.report.rejected.extend((name, f"not stored: {outcome.error}")
                                        for name, _ in batch)
            return
        for result in results:
            if result.stored:
                self.report.stored.append(result.label)
                self.studies[self.study_of[result.label]] = None
            else:
                self.report.rejected.append((result.label, result.reason))


def _patients(files: list[tuple[str, bytes]]) -> list[dict]:
    """A link snapshot's patient part (see studies.describe) for each study among the
    files, from its first good file; nothing is kept of the files themselves."""
    seen: dict[str, dict] = {}
    for _, _, meta in checked_files(files, UploadReport()):
        seen.setdefault(meta.study_uid, {
            "study_uid": meta.study_uid, "description": meta.study_description,
            "modalities": [meta.modality] if meta.modality else [],
            "patient_id": meta.patient_id,
            "patient": {"name": meta.patient_name, "birth_date": meta.patient_birth_date,
                        "sex": meta.patient_sex, "other_ids": list(meta.other_patient_ids)}})
    return list(seen.values())


def upload(referral_id: int, user: User, files: list[tuple[str, bytes]],
           confirm_reason: str | None = None) -> UploadReport:
    """Validate uploaded DICOM files (or zips of them), store the good ones in the
    referring hospital's PACS by STOW-RS and link their studies. A bad file is reported
    with its name and reason (a zip member as ``<zip>/<member>``); the others still go
    through. Zips are expanded within the limits in this module's docstring.

    The files are read once before anything is stored: a study whose patient disagrees
    with the referral stops the whole upload (PatientMismatch, nothing stored) unless
    ``confirm_reason`` says why it is the referral's patient (see studies.link).

    Raises NotFound, NotAllowed, ValidationFailed (nothing sent, no PACS configured, an
    empty ``identity_reason``), PatientMismatch or ImagesUnavailable (the PACS could not
    be reached; nothing was stored). When the PACS fails after some files were stored,
    those are linked and the rest are reported.
    """
    referral = get_visible(user, referral_id)
    check_may_link(user, referral)
    confirm_reason = identity.confirmation(confirm_reason)
    if not files:
        raise ValidationFailed({"files": "Choose DICOM files or a zip of them."})
    target = target_for_hospital(referral.referring_hospital_id)
    if target is None:
        raise ValidationFailed({"files": f"{referral.referring_hospital.name} has no PACS "
                                         "endpoint configured to store uploads."})
    found = identity.mismatches(referral, target.hospital_code, _patients(files))
    if found and confirm_reason is None:
        raise identity.PatientMismatch(found)
    db.session.commit()
    report = UploadReport()
    sender = _Sender(target, report)
    for name, data, meta in checked_files(files, report):
        sender.add(name, data, meta.study_uid)
    sender.flush()
    if sender.studies:
        linked = link(referral_id, user, target.hospital_code, list(sender.studies),
                      confirm_reason)
        report.linked = [row.study_uid for row in linked]
    return report
