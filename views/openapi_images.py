"""The image routes' part of the OpenAPI document (merged in views/openapi.py)."""

from __future__ import annotations

from integrations.dicom_uid import MAX_UID_LENGTH, UID_PATTERN


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_REFERRAL_ID = {"name": "referral_id", "in": "path", "required": True,
                "schema": {"type": "integer"}}


def _uid(name: str) -> dict:
    """A DICOM UID in the path (study, series or SOP instance)."""
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": UID_PATTERN, "maxLength": MAX_UID_LENGTH}}


_COMMON = {
    "400": _error("malformed request (e.g. missing CSRF token on a cookie session)"),
    "401": _error("not signed in: send Authorization: Bearer <token>"),
    "403": _error("your role or hospital does not allow this"),
}
_UNAVAILABLE = _error("images unavailable from <hospital>: the PACS is down, slow or failing")
_STUDY = {
    "type": "object",
    "properties": {
        "hospital": {"type": "string"}, "hospital_name": {"type": "string"},
        "study_uid": {"type": "string"}, "study_date": {"type": ["string", "null"]},
        "study_time": {"type": "string"}, "description": {"type": "string"},
        "modalities": {"type": "array", "items": {"type": "string"}},
        "series_count": {"type": ["integer", "null"]},
        "instance_count": {"type": ["integer", "null"]},
        "patient_id": {"type": "string"}, "accession_number": {"type": "string"},
        "today": {"type": "boolean", "description": "taken today (pre-selected in the form)"},
    },
}
_LINKED = {"type": "object", "required": ["studies"], "properties": {"studies": {
    "type": "array", "items": {"type": "object", "properties": {
        "study_uid": {"type": "string"}, "hospital": {"type": "string"},
        "viewer_url": {"type": "string"},
        "series": {"type": "array", "items": {"type": "object", "properties": {
            "series_uid": {"type": "string"}, "default_preset": {"type": "string"},
            "instances": {"type": "array", "items": {"type": "object", "properties": {
                "sop_uid": {"type": "string"}, "frames": {"type": "integer"}}}}}}}}}}}}


_MISMATCH = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"},
    "patient_mismatch": {"type": "array", "items": {"type": "object", "properties": {
        "study_uid": {"type": "string"}, "hospital": {"type": "string"},
        "description": {"type": "string"},
        "message": {"type": "string", "description": "whom the study is for and whom the "
                                                     "referral is for"},
        "fields": {"type": "array", "items": {"type": "string", "enum": [
            "patient_id", "family_name", "birth_date", "sex"]}},
        "disagreements": {"type": "array", "items": {"type": "string"}}}}},
    "confirm_with": {"type": "object"}}}


IMAGE_PATHS = {
    "/api/v1/studies": {
        "get": {
            "summary": "A patient's studies across the network's PACS, newest first",
            "description": "Only for a referral you may see (`referral`: its NHS and local "
                           "numbers are searched) or for the patient you are raising a "
                           "referral for (`reason=raising_referral` with their "
                           "`nhs_number`, and `local_number` if known); a search by a "
                           "patient id alone is refused (422). Every search and refusal "
                           "is in the access log with its reason. Each PACS is asked in "
                           "parallel; one that is down or slow is listed under "
                           "`unavailable` instead of failing the search.",
            "operationId": "searchStudies",
            "parameters": [
                {"name": "referral", "in": "query", "schema": {"type": "integer"},
                 "description": "search for this referral's patient"},
                {"name": "reason", "in": "query",
                 "schema": {"type": "string", "enum": ["raising_referral"]},
                 "description": "without a referral: you are raising one for nhs_number"},
                {"name": "nhs_number", "in": "query", "schema": {"type": "string"},
                 "description": "with reason=raising_referral: the patient's NHS number"},
                {"name": "local_number", "in": "query", "schema": {"type": "string"},
                 "description": "with reason=raising_referral: the hospital's local number"},
                {"name": "accession", "in": "query", "schema": {"type": "string"},
                 "description": "also find this accession number"},
                {"name": "hospital", "in": "query", "schema": {"type": "string"},
                 "description": "only this hospital's PACS"},
            ],
            "responses": {"200": {"description": "studies found, and PACS that did not answer",
                                  "content": {"application/json": {"schema": {
                                      "type": "object", "required": ["studies", "unavailable"],
                                      "properties": {
                                          "studies": {"type": "array", "items": _STUDY},
                                          "unavailable": {"type": "array", "items": {
                                              "type": "object"}}}}}}},
                          **_COMMON,
                          "404": _error("no such referral"),
                          "422": _error("no referral and no reason (a free patient-id "
                                        "search), or not a valid NHS number")},
        },
    },
    "/api/v1/referrals/{referral_id}/studies": {
        "get": {
            "summary": "The linked studies with their series and instances",
            "operationId": "listLinkedStudies", "parameters": [_REFERRAL_ID],
            "responses": {"200": {"description": "linked studies", "content": {
                "application/json": {"schema": _LINKED}}}, **_COMMON,
                "404": _error("no such referral")},
        },
        "post": {
            "summary": "Link studies from a hospital's PACS to the referral",
            "description": "A study whose patient (PatientID / OtherPatientIDs, name, birth "
                           "date, sex) disagrees with the referral's is refused with 409 "
                           "and `patient_mismatch` naming both sides; nothing is linked. "
                           "Send it again with `confirm_identity: true` and an "
                           "`identity_reason` to link it: the reason, the studies and the "
                           "fields that disagreed go on the referral's chain.",
            "operationId": "linkStudies", "parameters": [_REFERRAL_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["study_uids"],
                "properties": {"hospital": {"type": "string",
                                            "description": "default: the referring hospital"},
                               "study_uids": {"type": "array",
                                              "items": {"type": "string"}},
                               "confirm_identity": {"type": "boolean", "default": False},
                               "identity_reason": {
                                   "type": "string", "maxLength": 1000,
                                   "description": "why the study is the referral's patient "
                                                  "(needed with confirm_identity)"}}}}}},
            "responses": {"201": {"description": "the referral's linked studies", "content": {
                "application/json": {"schema": _LINKED}}}, **_COMMON,
                "404": _error("no such referral"),
                "409": {"description": "images cannot be linked in this state, or a study's "
                                       "patient disagrees with the referral "
                                       "(`patient_mismatch`)",
                        "content": {"application/json": {"schema": _MISMATCH}}},
                "422": _error("no study UIDs, unknown study, no PACS for the hospital, or "
                              "confirm_identity without an identity_reason"),
                "503": _UNAVAILABLE},
        },
    },
    "/api/v1/referrals/{referral_id}/studies/{study_uid}/instances/{sop_uid}/rendered": {
        "get": {
            "summary": "One frame rendered with a window preset",
            "operationId": "renderedFrame",
            "parameters": [
                _REFERRAL_ID,
                _uid("study_uid"),
                _uid("sop_uid"),
                {"name": "frame", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "preset", "in": "query", "schema": {"type": "string"},
                 "description": "brain, stroke, subdural, bone, cta, soft_tissue, lung, file, "
                                "or window=<center>,<width>"},
                {"name": "window", "in": "query", "schema": {"type": "string"},
                 "description": "<center>,<width> instead of a preset; a negative centre "
                                "and decimals are allowed, e.g. -670.805,2061.64 (a bad "
                                "window is a 422 naming what is wrong)"},
                {"name": "format", "in": "query",
                 "schema": {"type": "string", "enum": ["png", "jpeg"]}},
            ],
            "responses": {
                "200": {"description": "the image", "content": {
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
                **_COMMON,
                "404": _error("no such referral, linked study or instance"),
                "422": _error("bad preset, frame or format, or the file cannot be rendered"),
                "503": _UNAVAILABLE,
            },
        },
    },
    "/api/v1/referrals/{referral_id}/studies/{study_uid}/series/{series_uid}/rendered": {
        "get": {
            "summary": "Consecutive slices of a series in one answer (what the viewer loads)",
            "description": "The body is the images one after another. X-Frame-Sizes gives "
                           "their byte lengths and X-Frame-Sops their SOP Instance UIDs, in "
                           "order; a size of 0 is a slice that could not be rendered (ask "
                           "for it alone to learn why). X-Series-Slices is the series' "
                           "length. One access-log row per user, series and minute.",
            "operationId": "renderedSeries",
            "parameters": [
                _REFERRAL_ID,
                _uid("study_uid"),
                _uid("series_uid"),
                {"name": "first", "in": "query", "description": "first slice, from 1",
                 "schema": {"type": "integer", "minimum": 1}},
                {"name": "count", "in": "query", "description": "how many slices",
                 "schema": {"type": "integer", "minimum": 1}},
                {"name": "preset", "in": "query", "schema": {"type": "string"},
                 "description": "as for one frame"},
                {"name": "window", "in": "query", "schema": {"type": "string"},
                 "description": "<center>,<width> (instead of preset)"},
                {"name": "format", "in": "query",
                 "schema": {"type": "string", "enum": ["png", "jpeg"]}},
            ],
            "responses": {
                "200": {"description": "the slices' images, concatenated", "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                **_COMMON,
                "404": _error("no such referral, linked study or series"),
                "422": _error("bad first, count, preset or format"),
                "503": _UNAVAILABLE,
            },
        },
    },
}
