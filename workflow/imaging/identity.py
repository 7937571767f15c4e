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
from dataclasses import dataclass
from datetime import date

from models import LinkedStudy, Referral
from workflow.errors import Conflict, ValidationFailed
from workflow.referrals.checks import storable

MAX_REASON = 1000

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


def _checked(referral: Referral, snapshot: dict) -> list[tuple[str, str]]:
    """(field, phrase) for each way the study's patient disagrees with the referral."""
    patient = snapshot.get("patient") or {}
    ids = {_plain(snapshot.get("patient_id", ""))} | {
        _plain(i) for i in patient.get("other_ids", [])}
    ids.discard("")
    ours = {_plain(referral.nhs_number), _plain(referral.local_number or "")} - {""}
    problems = []
    if not ids & ours:
        shown = ", ".join(sorted(ids)) or "none"
        problems.append(("patient_id", f"its patient ID ({shown}) is neither the referral's "
                                       f"NHS number nor its local number"))
    family = _family(patient.get("name", ""))
    if family and family != (referral.family_name or "").strip().upper():
        problems.append(("family_name", f"it is for {family}, the referral for "
                                        f"{(referral.family_name or '').upper()}"))
    born = _dicom_date(patient.get("birth_date", ""))
    if born and referral.birth_date and born != referral.birth_date:
        problems.append(("birth_date", f"born {born.isoformat()}; the referral's patient "
                                       f"was born {referral.birth_date.isoformat()}"))
    sex, expected = patient.get("sex", "").upper(), _DICOM_SEX.get(referral.sex or "")
    if sex in ("F", "M") and expected and sex != expected:
        problems.append(("sex", f"sex {sex}; the referral says {referral.sex}"))
    return problems


def disagreements(referral: Referral, snapshot: dict) -> list[str]:
    """What about the study's patient disagrees with the referral, one phrase each
    ([] when nothing does). A field the study leaves empty is not a disagreement; an
    identifier that is neither of the referral's always is. Raises nothing."""
    return [phrase for _, phrase in _checked(referral, snapshot)]


def both_sides(referral: Referral, snapshot: dict) -> str:
    """Whom the study is for and whom the referral is for, in one sentence: "this CT is
    for SMITH, born 1950-01-01, patient ID X; the referral is for SMITH, born
    1951-03-14, NHS 943 476 5919". Raises nothing."""
    patient = snapshot.get("patient") or {}
    what = "/".join(snapshot.get("modalities") or []) or "study"
    born = _dicom_date(patient.get("birth_date", ""))
    theirs = [_family(patient.get("name", "")) or "no name given",
              f"born {born.isoformat()}" if born else "no birth date given"]
    if patient.get("sex", "").upper() in ("F", "M"):
        theirs.append(f"sex {patient['sex'].upper()}")
    theirs.append(f"patient ID {snapshot.get('patient_id') or 'none'}")
    nhs = _plain(referral.nhs_number)
    ours = [(referral.family_name or "").upper(),
            f"born {referral.birth_date.isoformat()}" if referral.birth_date else
            "no birth date given"]
    if referral.sex in _DICOM_SEX:
        ours.append(f"sex {_DICOM_SEX[referral.sex]}")
    ours.append(f"NHS {nhs[:3]} {nhs[3:6]} {nhs[6:]}")
    if referral.local_number:
        ours.append(f"local number {referral.local_number}")
    return f"this {what} is for {', '.join(theirs)}; the referral is for {', '.join(ours)}"


@dataclass(frozen=True)
class Mismatch:
    """One study whose patient disagrees with the referral, as the user is told."""

    study_uid: str
    hospital: str  # the PACS's hospital code
    description: str
    sentence: str  # both_sides()
    fields: tuple[str, ...]  # patient_id, family_name, birth_date, sex
    problems: tuple[str, ...]  # disagreements()

    def as_json(self) -> dict:
        return {"study_uid": self.study_uid, "hospital": self.hospital,
                "description": self.description, "message": self.sentence,
                "fields": list(self.fields), "disagreements": list(self.problems)}


def mismatches(referral: Referral, hospital: str, snapshots: list[dict]) -> list[Mismatch]:
    """The studies (link snapshots, see studies.describe) whose patient disagrees with
    the referral; [] when every one is the referral's patient. Raises nothing."""
    found = []
    for snap in snapshots:
        checked = _checked(referral, snap)
        if checked:
            found.append(Mismatch(snap["study_uid"], hospital, snap.get("description", ""),
                                  both_sides(referral, snap),
                                  tuple(f for f, _ in checked), tuple(p for _, p in checked)))
    return found


class PatientMismatch(Conflict):
    """A study to be linked (or uploaded) is not plainly the referral's patient (HTTP
    409): nothing is linked or stored until the user confirms it, with a reason."""

    def __init__(self, found: list[Mismatch]):
        self.mismatches = found
        super().__init__(
            "; ".join(f"{m.sentence[0].upper()}{m.sentence[1:]}" for m in found) +
            ". Nothing was linked: check the patient, or confirm with a reason that "
            "this is the same patient.")

    def details(self) -> dict:
        return {"patient_mismatch": [m.as_json() for m in self.mismatches],
                "confirm_with": {"confirm_identity": True,
                                 "identity_reason": "why it is the same patient"}}


def confirmation(reason: str | None) -> str | None:
    """The user's reason for linking a mismatched study (None: not confirming). Raises
    ValidationFailed (``identity_reason``) when confirming with no reason, or one over
    MAX_REASON characters."""
    if reason is None:
        return None
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise ValidationFailed({"identity_reason": "Say why you are sure this study is the "
                                                   "referral's patient."})
    if len(reason) > MAX_REASON or not storable(reason):
        raise ValidationFailed({"identity_reason": f"At most {MAX_REASON} characters of "
                                                   "plain text."})
    return reason


def confirmations(referral: Referral) -> dict[str, list[dict]]:
    """For each study linked despite a mismatch, who confirmed it, when and why (from
    the ``studies_linked`` events on the referral's chain); keyed by study UID."""
    out: dict[str, list[dict]] = {}
    for event in referral.events:
        confirmed = (event.data or {}).get("identity_confirmed") if event.kind == \
            "studies_linked" else None
        for study in (confirmed or {}).get("studies", []):
            out.setdefault(study.get("study_uid", ""), []).append(
                {"by": event.actor_label, "at": event.at, "reason": event.reason,
                 "fields": study.get("fields", [])})
    return out


def warnings(referral: Referral) -> dict[str, str]:
    """For each linked study whose patient disagrees, one sentence a clinician reads
    before looking at the images (with who confirmed it and why, once someone has);
    keyed by study UID. The warning stays after a confirmation."""
    out = {}
    confirmed = confirmations(referral)
    study: LinkedStudy
    for study in referral.studies:
        found = disagreements(referral, study.snapshot or {})
        if found:
            what = study.description or "This study"
            text = (f"Check the patient: {what} may not be this referral's patient — "
                    f"{'; '.join(found)}.")
            for c in confirmed.get(study.study_uid, []):
                text += f" Linked after {c['by']} confirmed: “{c['reason']}”."
            out[study.study_uid] = text
    return out
