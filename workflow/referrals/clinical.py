"""The specialty fields of a referral, written once: the form draws its controls from
``FIELDS``, ``parse`` checks a payload's ``clinical`` object against it, ``rows`` shows
a stored one on the referral page and in the decision record, and ``json_schema``
describes it in the OpenAPI document.

A field's ``noun`` is how error messages name it ("Enter the NIHSS (0–42)."); its
``label`` is how the form and the record do ("NIHSS").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflow.referrals.checks import Errors, boolean, choice, integer, text, when

ANTICOAGULANTS = ("none", "warfarin", "apixaban", "rivaroxaban", "edoxaban", "dabigatran",
                  "heparin", "other", "unknown")
IMAGING = ("CT", "CTA", "CTP", "MRI")
NO_ANTICOAGULANT = ("none", "unknown", "")
SPINAL_LEVEL = re.compile(r"[CTLS]\d{1,2}(-[CTLS]\d{1,2})?")
KINDS = ("number", "text", "textarea", "datetime", "select", "checks", "yesno")


@dataclass(frozen=True)
class Field:
    """One specialty field: ``key`` is its name under ``clinical``.

    ``needed`` makes a field's requirement depend on the values already parsed (the
    time of the last anticoagulant dose only when there is one); ``show_if`` says the
    same to static/js/show-if.js ("stroke.thrombolysis_given=yes").
    """

    key: str
    label: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = True
    hint: str = ""
    low: int | None = None
    high: int | None = None
    limit: int = 1000  # characters, for text
    noun: str = ""
    show_if: str = ""
    needed: Callable[[dict], bool] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"field {self.key}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def named(self) -> str:
        return self.noun or self.key.replace("_", " ")


FIELDS: dict[str, tuple[Field, ...]] = {
    "stroke": (
        Field("nihss", "NIHSS", "number", low=0, high=42, hint="0–42", noun="NIHSS"),
        Field("pre_stroke_mrs", "Pre-stroke mRS", "number", low=0, high=5, hint="0–5",
              noun="pre-stroke mRS"),
        Field("anticoagulant", "Anticoagulant", "select", ANTICOAGULANTS),
        Field("anticoagulant_last_dose_at", "Last anticoagulant dose", "datetime",
              show_if="stroke.anticoagulant!=,none,unknown",
              hint="Needed unless none or unknown.",
              noun="time of the last anticoagulant dose",
              needed=lambda done: done.get("anticoagulant") not in NO_ANTICOAGULANT),
        Field("thrombolysis_given", "Thrombolysis given?", "yesno"),
        Field("thrombolysis_at", "Thrombolysis time", "datetime",
              show_if="stroke.thrombolysis_given=yes", noun="thrombolysis time",
              needed=lambda done: bool(done.get("thrombolysis_given"))),
        Field("imaging", "Imaging done", "checks", IMAGING),
    ),
    "major_trauma": (
        Field("age", "Age (A)", "number", low=0, high=125, noun="age (ATMIST A)"),
        Field("time_of_injury", "Time of injury (T)", "datetime", required=False,
              noun="time of injury"),
        Field("mechanism", "Mechanism (M)", "textarea"),
        Field("injuries", "Injuries (I)", "textarea", limit=2000),
        Field("gcs", "GCS (S)", "number", low=3, high=15, hint="3–15", noun="GCS"),
        Field("heart_rate", "Heart rate", "number", low=0, high=300, required=False),
        Field("systolic_bp", "Systolic BP", "number", low=0, high=300, required=False,
              noun="systolic BP"),
        Field("resp_rate", "Respiratory rate", "number", low=0, high=80, required=False,
              noun="respiratory rate"),
        Field("spo2", "SpO2 %", "number", low=0, high=100, required=False, noun="SpO2"),
        Field("treatment", "Treatment (T)", "textarea", required=False, limit=2000),
        Field("eta_minutes", "ETA (minutes)", "number", low=0, high=600, required=False,
              noun="ETA in minutes"),
        Field("requirements", "Requirements on arrival", "text", required=False),
    ),
    "spinal": (
        Field("level", "Spinal level", "text", hint="e.g. C5, T12 or L1-L2", limit=16,
              noun="spinal level"),
        Field("neurology", "Neurology", "textarea", limit=2000),
        Field("asia_grade", "ASIA grade", "select", ("A", "B", "C", "D", "E"),
              required=False),
    ),
    "vascular": (
        Field("diagnosis", "Diagnosis", "text"),
        Field("haemodynamics", "Haemodynamics", "select", ("stable", "unstable")),
        Field("systolic_bp", "Systolic BP", "number", low=0, high=300, required=False,
              noun="systolic BP"),
    ),
    "neurosurgery": (
        Field("diagnosis", "Diagnosis", "text"),
        Field("gcs", "GCS", "number", low=3, high=15, hint="3–15", noun="GCS"),
        Field("pupils", "Pupils", "text", required=False, limit=200),
    ),
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _checks(f: Field, data: dict, path: str, errors: Errors) -> list[str]:
    chosen = data.get(f.key)
    if not isinstance(chosen, list) or not chosen:
        errors.need(not f.required and chosen in (None, "", []), path,
                    f"List the {f.named} done: {', '.join(f.options)}.")
        return []
    if any(c not in f.options for c in chosen):
        errors.need(False, path, f"{f.named.capitalize()} must be among {', '.join(f.options)}.")
    return sorted(set(c for c in chosen if c in f.options))


def _one(f: Field, data: dict, errors: Errors, now: datetime, done: dict) -> Any:
    """The checked value of one field (a message in ``errors`` when it is wrong)."""
    path = f"clinical.{f.key}"
    required = f.needed(done) if f.needed else f.required
    if f.kind == "number":
        return integer(data, f.key, path, errors, f.low, f.high, required=required,
                       label=f.named)
    if f.kind == "datetime":
        return _iso(when(data, f.key, path, errors, now, required=required, label=f.named))
    if f.kind == "select":
        return choice(data, f.key, path, errors, f.options, required=required)
    if f.kind == "yesno":
        return boolean(data, f.key, path, errors, required=required)
    if f.kind == "checks":
        return _checks(f, data, path, errors)
    return text(data, f.key, path, errors, required=required, limit=f.limit, label=f.noun or None)


def parse(specialty: str, data: dict, errors: Errors, now: datetime) -> dict:
    """The specialty's fields of ``data``, checked, in schema order; datetimes as ISO
    strings. Problems go into ``errors`` under ``clinical.<key>`` (the caller raises)."""
    done: dict[str, Any] = {}
    for f in FIELDS.get(specialty, ()):
        done[f.key] = _one(f, data, errors, now, done)
    if specialty == "spinal":
        level = done["level"]
        if level and not SPINAL_LEVEL.fullmatch(level.upper()):
            errors.need(False, "clinical.level",
                        "The spinal level must look like C5, T12 or L1-L2.")
        done["level"] = level.upper()
    return done


def display(f: Field, value: Any, show_time: Callable[[datetime], str]) -> str:
    """A stored value as a clinician reads it."""
    if f.kind == "datetime":
        return show_time(datetime.fromisoformat(value))
    if f.kind == "yesno":
        return "Yes" if value else "No"
    if f.kind == "checks":
        return ", ".join(value)
    if f.kind == "select":
        return str(value).replace("_", " ")
    return str(value)


def rows(specialty: str, clinical: dict | None,
         show_time: Callable[[datetime], str]) -> list[tuple[str, str]]:
    """(label, value) for every field that has a value, in the form's order."""
    out = []
    for f in FIELDS.get(specialty, ()):
        value = (clinical or {}).get(f.key)
        if value not in (None, "", []):
            out.append((f.label, display(f, value, show_time)))
    return out


def _property(f: Field) -> dict:
    described = {"description": f.label + (f" ({f.hint})" if f.hint else "")}
    if f.kind == "number":
        return {**described, "type": "integer", "minimum": f.low, "maximum": f.high}
    if f.kind == "datetime":
        return {**described, "type": "string", "format": "date-time"}
    if f.kind == "select":
        return {**described, "type": "string", "enum": list(f.options)}
    if f.kind == "yesno":
        return {**described, "type": "boolean"}
    if f.kind == "checks":
        return {**described, "type": "array", "items": {"type": "string",
                                                        "enum": list(f.options)}}
    return {**described, "type": "string", "maxLength": f.limit}


def json_schema(specialty: str) -> dict:
    """The JSON Schema of one specialty's ``clinical`` object (OpenAPI 3.1)."""
    fields = FIELDS[specialty]
    return {"type": "object", "title": f"{specialty} clinical fields",
            "properties": {f.key: _property(f) for f in fields},
            "required": [f.key for f in fields if f.required and f.needed is None]}
