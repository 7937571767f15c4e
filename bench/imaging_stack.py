"""Images for the benches: an Orthanc holding the 28-slice head CT (and, when asked, a
longer copy of it), Pilgrim's PACS pointed at it, and referrals linked to its studies.

The set-up runs in the bench's own app (`Production.app_context`): its caches are not
the server's, so linking a study here leaves the server cold; linking through the API
(`link_over_http`, the referral page's form) lets the server prefetch, as a referrer's
link does in production.
"""

from __future__ import annotations

import io

import pydicom
import requests
from pydicom.uid import generate_uid

from bench.production import Production
from tests.images.conftest import PATIENT_ID, SAMPLE_FAMILY_NAME, SAMPLE_STUDY, point_pilgrim_at
from tests.services.orthanc import HEAD_CT_DIR, start_orthanc

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
REFERRER = "referrer@pil.demo.nhs.uk"
__all__ = ["HEAD_CT_DIR", "REFERRER", "SAMPLE_STUDY", "SPECIALIST", "instances", "link_over_http",
           "long_series", "new_referral", "start_pacs", "store_long_series"]


def start_pacs(prod: Production):
    """A new Orthanc with the head CT, Pilgrim's PACS pointed at it, its storage in the
    bench's work folder (removed with it). Stop it before leaving `prod`."""
    orthanc = start_orthanc(prod.workdir / "orthanc")
    orthanc.load_samples()
    with prod.app_context():
        point_pilgrim_at(orthanc.base_url, auth=orthanc.auth, timeout=30.0)
    return orthanc


def long_series(slices: int, description: str = "bench copy") -> tuple[str, str,
                                                                     list[tuple[str, bytes]]]:
    """A ``slices``-slice CT head series, not yet stored: the sample's slices cycled, each
    copy with new UIDs and its own instance number and slice position. (Study UID,
    series UID, [(SOP Instance UID, file)] in slice order.)"""
    study, series = generate_uid(), generate_uid()
    sources = [pydicom.dcmread(p) for p in sorted(HEAD_CT_DIR.glob("*.dcm"))]
    files = []
    for number in range(1, slices + 1):
        ds = sources[(number - 1) % len(sources)]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                                   number * 0.5]
        ds.StudyDescription = f"CT head ({slices}-slice {description})"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append((str(ds.SOPInstanceUID), out.getvalue()))
    return study, series, files


def store_long_series(orthanc, slices: int, description: str = "bench copy") -> str:
    """`long_series` stored in the Orthanc, one file after another. Its study UID."""
    study, _, files = long_series(slices, description)
    for _, data in files:
        requests.post(f"{orthanc.rest_url}/instances", data=data, auth=orthanc.auth,
                      timeout=30).raise_for_status()
    return study


def new_referral(prod: Production, study_uid: str | None = SAMPLE_STUDY) -> int:
    """A stroke referral from Pilgrim for the sample's patient, raised (and, with a
    ``study_uid``, linked) in the set-up app, so that the server's caches stay cold."""
    from tests.paging.helpers import raise_stroke, stroke_payload, user
    from workflow.imaging import frames, studies

    with prod.app_context():
        patient = dict(stroke_payload()["patient"], local_number=PATIENT_ID,
                       family_name=SAMPLE_FAMILY_NAME)
        referral = raise_stroke(patient=patient)
        if study_uid:
            studies.link(referral.id, user(REFERRER), "PIL", [study_uid])
            frames.wait_for_prefetch(120)  # any warm-up linking starts here is this app's
        return referral.id


def link_over_http(prod: Production, referrer: requests.Session, referral_id: int,
                   study_uid: str) -> None:
    """Link as the referrer does on the referral's page (the form ticking a study): the
    server then prefetches the study. Raises requests.HTTPError when the link is
    refused, RuntimeError when the page says it was not linked."""
    answer = referrer.post(prod.url(f"/referrals/{referral_id}/studies"), timeout=60, data={
        "csrf_token": csrf_token(prod, referrer), "study": f"PIL|{study_uid}"})
    answer.raise_for_status()
    if "Not linked" in answer.text:
        raise RuntimeError(f"the study was not linked to referral {referral_id}")


def csrf_token(prod: Production, session: requests.Session) -> str:
    from bench.production import _csrf

    return _csrf(session.get(prod.url("/"), timeout=10).text)


def instances(prod: Production, referral_id: int, study_uid: str = SAMPLE_STUDY) -> list[dict]:
    """The linked study's first series' instances ({"sop_uid", ...}), in slice order,
    and its series UID on each."""
    from sqlalchemy import select

    from extensions import db
    from models import LinkedStudy

    with prod.app_context():
        study = db.session.scalar(select(LinkedStudy).where(
            LinkedStudy.referral_id == referral_id, LinkedStudy.study_uid == study_uid))
        series = study.snapshot["series"][0]
        db.session.commit()
        return [dict(i, series_uid=series["series_uid"]) for i in series["instances"]]
