"""Photos in the referral's thread (an ECG, a wound), taken with the phone's camera and
kept as DICOM Secondary Capture instances in the referring hospital's PACS, so they
live in the patient's imaging record and show in any viewer.

A photo is checked by its bytes (JPEG or PNG magic, at most MAX_PHOTO_BYTES and
MAX_SIDE pixels a side), turned upright by its EXIF orientation, and then only its
pixels are kept: they are copied into a new image and encoded afresh as JPEG Baseline
(transfer syntax 1.2.840.10008.1.2.4.50, encapsulated, YCbCr 4:2:2, quality
JPEG_QUALITY), so no EXIF, GPS, ICC or text chunk of the original can travel with it.
A 12-megapixel photo is then a couple of megabytes in the PACS, not 36 MB
(docs/BENCHMARKS.md). It is lossy, as the phone's own JPEG already was: the instance
says so (Lossy Image Compression 01, ISO_10918_1, and its ratio).

Every photo of a referral goes into one study of its own (the same Study and Series
Instance UIDs each time, derived from the referral's reference), not into one of its
linked studies: a referral may have none, or several, and adding camera pictures to a
hospital's CT study would change a study its scanner made. The study is linked to the
referral when the first photo is posted, so the viewer lists it like any other.

`post_photo` stores the photo by STOW-RS with no transaction open, and only then records
the message event (which names the SOP Instance UID) and the link: if the PACS refuses,
no message is posted and the error says why.
"""

from __future__ import annotations

import io
import warnings
from datetime import datetime

from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid
from sqlalchemy import select

from extensions import db
from models import LinkedStudy, Referral, ReferralEvent, User
from workflow.errors import ValidationFailed
from workflow.imaging.endpoints import client, record_outcome, target_for_hospital, timed
from workflow.imaging.studies import describe
from workflow.referrals import actions
from workflow.referrals.access import get_visible
from workflow.referrals.checks import Errors, text
from workflow.times import now as utcnow

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_SIDE = 4096
JPEG_QUALITY = 90
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
_DICOM_SEX = {"female": "F", "male": "M"}


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed({"photo": message})


def read_photo(data: bytes) -> Image.Image:
    """The photo's pixels, upright, as a new RGB image that carries nothing else.

    Raises ValidationFailed on ``photo``: not JPEG or PNG by its bytes (whatever its
    name), over MAX_PHOTO_BYTES, over MAX_SIDE pixels a side, or unreadable.
    """
    if not data:
        raise _refuse("Choose a photo (JPEG or PNG).")
    if len(data) > MAX_PHOTO_BYTES:
        raise _refuse(f"The photo is over {MAX_PHOTO_BYTES // 1024**2} MB; at most "
                      f"{MAX_PHOTO_BYTES // 1024**2} MB (take it at a lower resolution).")
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        raise _refuse("Only JPEG or PNG photos are accepted; this file is neither.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
            width, height = image.size  # from the header: nothing decoded yet
            if width > MAX_SIDE or height > MAX_SIDE:
                raise _refuse(f"The photo is {width}×{height} pixels; at most "
                              f"{MAX_SIDE}×{MAX_SIDE}.")
            image.load()
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _refuse(f"The photo could not be read as a {kind} image (damaged or "
                      "incomplete).") from None
    return Image.frombytes("RGB", upright.size, upright.tobytes())


def photo_study_uids(referral: Referral) -> tuple[str, str]:
    """The Study and Series Instance UIDs of the referral's photos (always the same)."""
    seed = [referral.reference or str(referral.id), "goldenhour photos"]
    return generate_uid(entropy_srcs=[*seed, "study"]), generate_uid(entropy_srcs=[*seed,
                                                                                 "series"])


def secondary_capture(referral: Referral, image: Image.Image, *, sop_uid: str,
                      number: int, at: datetime) -> Dataset:
    """The photo as a Secondary Capture instance of the referral's photo study, with
    the referral's patient identifiers (NHS number as Patient ID, the local number as
    another). Raises nothing."""
    study_uid, series_uid = photo_study_uids(referral)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = referral.nhs_number
    if referral.local_number:
        ds.OtherPatientIDs = referral.local_number
    ds.PatientName = f"{referral.family_name.upper()}^{referral.given_name}"
    ds.PatientBirthDate = referral.birth_date.strftime("%Y%m%d") if referral.birth_date else ""
    ds.PatientSex = _DICOM_SEX.get(referral.sex or "", "O")
    ds.StudyDate = referral.created_at.strftime("%Y%m%d")
    ds.StudyTime = referral.created_at.strftime("%H%M%S")
    ds.StudyDescription = f"Photos, referral {referral.reference}"
    ds.AccessionNumber = ""
    ds.StudyID = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "XC"  # external-camera photography
    ds.ConversionType = "DI"  # digital interface: a phone camera
    ds.SeriesNumber = 900
    ds.SeriesDescription = "Photos (goldenhour)"
    ds.InstanceNumber = number
    ds.ContentDate = at.strftime("%Y%m%d")
    ds.ContentTime = at.strftime("%H%M%S")
    ds.Manufacturer = "goldenhour"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"  # as JPEG Baseline keeps colour
    ds.PlanarConfiguration = 0
    ds.Columns, ds.Rows = image.size
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    compressed = jpeg_baseline(image)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.LossyImageCompressionRatio = f"{image.width * image.height * 3 / len(compressed):.2f}"
    ds.PixelData = encapsulate([compressed])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def jpeg_baseline(image: Image.Image) -> bytes:
    """The pixels of ``image`` (read_photo's: RGB, carrying nothing else) encoded afresh
    as a baseline JPEG (8-bit, YCbCr 4:2:2, JPEG_QUALITY) with no EXIF, ICC profile or
    comment, whatever ``image.info`` holds. Raises nothing."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=1, progressive=False,
               optimize=False, exif=b"", icc_profile=None, comment=b"")
    return out.getvalue()


def _part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _snapshot(existing: LinkedStudy | None, study_uid: str, ds: Dataset) -> dict:
    """The link snapshot of the photo study with this instance added."""
    new = describe(study_uid, [ds])
    if existing is None or not existing.snapshot.get("series"):
        return new
    snap = dict(existing.snapshot)
    series = [dict(s) for s in snap["series"]]
    series[0]["instances"] = [*series[0]["instances"], *new["series"][0]["instances"]]
    snap["series"] = series
    return snap


def post_photo(referral_id: int, user: User, payload: dict, data: bytes) -> Referral:
    """A message with a photo (``payload["text"]`` optional): the photo is checked,
    stored in the referring hospital's PACS by STOW-RS (no transaction open), and only
    then the message event, naming its UIDs, is committed with the photo study linked.

    Raises NotFound, NotAllowed, IllegalTransition (as post_message), ValidationFailed
    (on ``photo``: a bad file, no PACS for the referring hospital, or the PACS's reason
    for refusing it — nothing is posted; on ``text``: too long) or Conflict.

    A referral that ends, or changes under the message, while the PACS is storing the
    photo refuses the event (IllegalTransition, Conflict): the photo is then in the
    PACS's photo study without a message naming it.
    """
    get_visible(user, referral_id)
    referral = actions.check(referral_id, "message", user)
    errors = Errors()
    caption = text(payload if isinstance(payload, dict) else {}, "text", "text", errors,
                   required=False, label="message")
    try:
        image = read_photo(data)
    except ValidationFailed as exc:
        errors.update(exc.errors)  # every bad field named at once
    errors.raise_if_any()
    target = target_for_hospital(referral.referring_hospital_id)
    if target is None:
        raise _refuse(f"{referral.referring_hospital.name} has no PACS configured to keep "
                      "photos in.")
    study_uid, series_uid = photo_study_uids(referral)
    existing = db.session.scalar(select(LinkedStudy).where(
        LinkedStudy.referral_id == referral_id, LinkedStudy.study_uid == study_uid))
    number = (existing.instance_count if existing else 0) + 1
    at = utcnow()
    ds = secondary_capture(referral, image, sop_uid=generate_uid(), number=number, at=at)
    sop_uid = ds.SOPInstanceUID
    db.session.commit()  # no transaction open while the PACS answers
    results, outcome = timed(target, lambda: client(target).store(
        [(f"photo-{sop_uid}.dcm", _part10(ds))]))
    record_outcome(outcome)
    if not outcome.ok:
        raise _refuse(f"{target.hospital_name} PACS did not keep the photo: {outcome.error}")
    refused = [r for r in results if not r.stored]
    if refused or not results:
        reason = refused[0].reason if refused else "it answered without storing it"
        raise _refuse(f"{target.hospital_name} PACS refused the photo: {reason}")
    del ds.PixelData  # the snapshot needs the attributes only

    def link_photo_study(referral: Referral, event: ReferralEvent) -> None:
        row = db.session.scalar(select(LinkedStudy).where(
            LinkedStudy.referral_id == referral.id, LinkedStudy.study_uid == study_uid))
        snap = _snapshot(row, study_uid, ds)
        row = row or LinkedStudy(referral_id=referral.id, study_uid=study_uid,
                                 linked_at=event.at, linked_by_id=user.id)
        row.hospital_id = target.hospital_id
        row.description = snap["description"][:200]
        row.study_date = snap["study_date"][:16]
        row.modalities = "XC"
        row.series_count = len(snap["series"])
        row.instance_count = sum(len(s["instances"]) for s in snap["series"])
        row.snapshot = snap
        db.session.add(row)

    return actions.transition(
        referral_id, "message", user, reason=caption, before_commit=link_photo_study,
        data={"photo": {"hospital": target.hospital_code, "study_uid": study_uid,
                        "series_uid": series_uid, "sop_uid": sop_uid,
                        "rows": image.height, "columns": image.width}})
