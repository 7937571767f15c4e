"""Is this study the referral's patient? A linked study's DICOM patient module
(PatientID, OtherPatientIDs, PatientName, PatientBirthDate, PatientSex) against the
referral's NHS number, local number, family name, birth date and sex.

A study filed under another patient, or whose name, birth date or sex disagree, is
shown with a warning wherever its images are (the referral page, the viewer): the PACS
search finds studies by identifier only, and one wrong character in a local number
finds somebody else's CT.
"""

from __future__ import annotations

import re
from datetime import date

from models import LinkedStudy, Referral

_DICOM_SEX = {"female": "F", "male": "M"}


def _plain(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "").upper()


def _family(person_name: str) -> str:
    """The family-name component of a DICOM PN ("SMITH^ANN" → "SMITH")."""
    return (person_name or "").split("=")[0].split("^")[0].strip().upper()


def _dicom_date(value: str) -> date | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) >= 8 \
            else None
    except ValueError:
        return None


def disagreements(referral: Referral, snapshot: dict) -> list[str]:
    """What about the study's patient disagrees with the referral, one phrase each
    ([] when nothing does). A field the study leaves empty is not a disagreement; an
    identifier that is neither of the referral's always is. Raises nothing."""
    patient = snapshot.get("patient") or {}
    ids = {_plain(snapshot.get("patient_id", ""))} | {
        _plain(i) for i in patient.get("other_ids", [])}
    ids.discard("")
    ours = {_plain(referral.nhs_number), _plain(referral.local_number or "")} - {""}
    problems = []
    if not ids & ours:
        shown = ", ".join(sorted(ids)) or "none"
        problems.append(f"its patient ID ({shown}) is neither the referral's NHS number "
                        f"nor its local number")
    family = _family(patient.get("name", ""))
    if family and family != (referral.family_name or "").strip().upper():
        problems.append(f"it is for {family}, the referral for "
                        f"{(referral.family_name or '').upper()}")
    born = _dicom_date(patient.get("birth_date", ""))
    if born and referral.birth_date and born != referral.birth_date:
        problems.append(f"born {born.isoformat()}; the referral's patient was born "
                        f"{referral.birth_date.isoformat()}")
    sex, expected = patient.get("sex", "").upper(), _DICOM_SEX.get(referral.sex or "")
    if sex in ("F", "M") and expected and sex != expected:
        problems.append(f"sex {sex}; the referral says {referral.sex}")
    return problems


def warnings(referral: Referral) -> dict[str, str]:
    """For each linked study whose patient disagrees, one sentence a clinician reads
    before looking at the images; keyed by study UID."""
    out = {}
    study: LinkedStudy
    for study in referral.studies:
        found = disagreements(referral, study.snapshot or {})
        if found:
            what = study.description or "This study"
            out[study.study_uid] = (f"Check the patient: {what} may not be this referral's "
                                    f"patient — {'; '.join(found)}.")
    return out
