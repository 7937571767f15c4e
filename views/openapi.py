"""The OpenAPI 3 document for /api/v1, built from the same constants the code uses."""

from __future__ import annotations

from functools import cache

from views.openapi_images import IMAGE_PATHS
from views.present import ACTION_PATHS
from workflow.referrals import clinical, labels
from workflow.referrals.clocks import STROKE_WINDOWS
from workflow.referrals.input import ONSET_CERTAINTY, SEXES, TRANSFER_URGENCY
from workflow.referrals.states import Outcome, State


def _named(table: dict) -> str:
    """What each value is called on the pages and in the record (workflow/labels.py)."""
    return "; ".join(f"{value}: {label}" for value, label in table.items())


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _referral(description: str) -> dict:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Referral"}}}}


NULLABLE_STRING = {"type": ["string", "null"]}
MINUTES = {"type": ["integer", "null"], "description": "whole minutes; null until it starts"}
CLOCKS = ("since_onset", "since_arrival", "since_referral", "since_acknowledge",
          "referral_to_acknowledge", "referral_to_decision", "door_in_door_out",
          "travel_minutes_to_hub")

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"},
                       "errors": {"type": "object", "additionalProperties": {"type": "string"}}},
    },
    "Patient": {
        "type": "object",
        "required": ["nhs_number", "family_name", "given_name", "birth_date", "sex"],
        "properties": {
            "nhs_number": {"type": "string", "description": "10 digits, modulus 11 check"},
            "family_name": {"type": "string", "maxLength": 100},
            "given_name": {"type": "string", "maxLength": 100},
            "birth_date": {"type": "string", "format": "date"},
            "sex": {"type": "string", "enum": list(SEXES)},
            "local_number": {"type": "string", "maxLength": 32},
        },
    },
    "ReferralInput": {
        "type": "object",
        "required": ["specialty", "referring_hospital", "patient", "onset_certainty",
                     "arrived_at", "question", "clinical"],
        "properties": {
            "specialty": {"type": "string",
                          "enum": list(clinical.FIELDS)},
            "referring_hospital": {"type": "string", "description": "hospital code"},
            "hub": {"type": "string", "description": "hub hospital code (default: nearest)"},
            "patient": {"$ref": "#/components/schemas/Patient"},
            "onset_at": {"type": "string", "format": "date-time",
                         "description": "onset or last known well; local UK time if no offset"},
            "onset_certainty": {"type": "string", "enum": list(ONSET_CERTAINTY),
                                "description": _named(labels.ONSET_CERTAINTY)},
            "arrived_at": {"type": "string", "format": "date-time"},
            "question": {"type": "string", "maxLength": 4000},
            "urgency": {"type": "string", "enum": ["emergency", "urgent"]},
            "separate_referral": {
                "type": "boolean", "default": False,
                "description": "true: raise it although the patient already has an open "
                               "referral for this specialty (otherwise that is a 409 "
                               "naming the open one)"},
            "clinical": {"description": "the specialty's own fields (one schema per "
                         "specialty; datetimes are local UK time if no offset)",
                         "anyOf": [{"$ref": f"#/components/schemas/Clinical_{code}"}
                                   for code in clinical.FIELDS]},
        },
    },
    "DuplicateReferral": {
        "type": "object", "required": ["error", "open_referrals"],
        "properties": {"error": {"type": "string"}, "open_referrals": {
            "type": "array", "items": {
                "type": "object", "required": ["id", "reference", "state", "url"],
                "properties": {"id": {"type": "integer"}, "reference": {"type": "string"},
                               "state": {"type": "string"},
                               "referring_hospital": {"type": "string"},
                               "url": {"type": "string",
                                       "description": "the open referral's page"}}}}},
    },
    "Event": {
        "type": "object",
        "required": ["seq", "kind", "at", "actor", "from_state", "to_state", "data"],
        "properties": {
            "seq": {"type": "integer"},
            "kind": {"type": "string", "description": _named(labels.EVENTS)},
            "at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"},
            "actor_id": {"type": ["integer", "null"]}, "from_state": NULLABLE_STRING,
            "to_state": {"type": "string"}, "reason": {"type": "string"},
            "data": {"type": "object"},
        },
    },
    "Window": {
        "type": "object",
        "required": ["name", "label", "hours", "note", "minutes_left", "open_now",
                     "open_on_arrival", "closes_at"],
        "properties": {
            "name": {"type": "string", "enum": list(STROKE_WINDOWS)},
            "label": {"type": "string"}, "hours": {"type": "number"}, "note": {"type": "string"},
            "minutes_left": MINUTES,
            "open_now": {"type": ["boolean", "null"]},
            "open_on_arrival": {"type": ["boolean", "null"],
                                "description": "still inside the window after the "
                                               "blue-light travel minutes to the hub"},
            "closes_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Clocks": {
        "type": "object",
        "required": ["now", "onset_certainty", "windows", *CLOCKS],
        "properties": {
            "now": {"type": "string", "format": "date-time"},
            "onset_certainty": {"type": "string", "enum": list(ONSET_CERTAINTY),
                                "description": _named(labels.ONSET_CERTAINTY)},
            **{name: MINUTES for name in CLOCKS},
            "windows": {"type": "array", "description": "stroke treatment windows; empty for "
                                                        "other specialties",
                        "items": {"$ref": "#/components/schemas/Window"}},
        },
    },
    "Decision": {
        "type": "object",
        "required": ["outcome", "destination_hospital", "destination_unit", "transfer_urgency",
                     "advice", "rationale", "decided_by", "decided_at"],
        "properties": {
            "outcome": {"type": "string", "enum": [o.value for o in Outcome],
                        "description": _named(labels.OUTCOMES)},
            "destination_hospital": NULLABLE_STRING, "destination_unit": {"type": "string"},
            "transfer_urgency": {"type": "string", "enum": ["", *TRANSFER_URGENCY]},
            "advice": {"type": "string"}, "rationale": {"type": "string"},
            "decided_by": {"type": "string"},
            "decided_at": {"type": "string", "format": "date-time"},
        },
    },
    "Study": {
        "type": "object",
        "required": ["study_uid", "hospital", "description", "study_date", "modalities",
                     "series_count", "instance_count", "linked_at"],
        "properties": {
            "study_uid": {"type": "string"}, "hospital": {"type": "string"},
            "description": {"type": "string"}, "study_date": {"type": "string"},
            "modalities": {"type": "string"}, "series_count": {"type": "integer"},
            "instance_count": {"type": "integer"},
            "linked_at": {"type": "string", "format": "date-time"},
        },
    },
    "DecisionRecord": {
        "type": "object",
        "description": "one version of the signed decision record (version 1 the decision, "
                       "each addendum the next); signer, signed_at, event_seq and chain_head "
                       "are read from the signed content",
        "required": ["version", "status", "error", "content_sha256", "pdf_sha256", "signer",
                     "signed_at", "event_seq", "chain_head", "anchored_root", "anchored_at",
                     "download_url"],
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "enum": ["pending", "ready", "failed"]},
            "error": {"type": "string", "description": "why the PDF could not be made"},
            "content_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                               "description": "SHA-256 of the canonical content, printed "
                                              "in the PDF"},
            "pdf_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
                           "description": "SHA-256 of the stored PDF's bytes (null until "
                                          "it is ready)"},
            "signer": NULLABLE_STRING, "signed_at": {"type": ["string", "null"],
                                                     "format": "date-time"},
            "event_seq": {"type": "integer"},
            "chain_head": {"type": ["string", "null"],
                           "description": "the referral's event-chain hash when this "
                                          "version was signed"},
            "anchored_root": {"type": ["string", "null"],
                              "description": "root of the first signed anchor that covered "
                                             "this version (null: not yet anchored)"},
            "anchored_at": {"type": ["string", "null"], "format": "date-time"},
            "download_url": {"type": ["string", "null"],
                             "description": "path of the PDF on this server, null until "
                                            "it is ready"},
        },
    },
    "ReferralSummary": {
        "type": "object",
        "required": ["id", "reference", "state", "specialty", "referring_hospital", "hub"],
        "properties": {
            "id": {"type": "integer"}, "reference": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in State],
                      "description": _named(labels.STATES)},
            "specialty": {"type": "string"}, "urgency": {"type": "string"},
            "referring_hospital": {"type": "string"}, "hub": {"type": "string"},
            "assigned_specialist": NULLABLE_STRING,
            "created_at": {"type": "string", "format": "date-time"},
            "outcome": {"type": ["string", "null"]},
        },
    },
    "Referral": {
        "allOf": [{"$ref": "#/components/schemas/ReferralSummary"}, {
            "type": "object",
            "required": ["patient", "events", "clocks", "decision", "decision_records",
                         "studies", "allowed_actions"],
            "properties": {
                "version": {"type": "integer"},
                "patient": {"$ref": "#/components/schemas/Patient"},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                "clocks": {"$ref": "#/components/schemas/Clocks"},
                "decision": {"oneOf": [{"$ref": "#/components/schemas/Decision"},
                                       {"type": "null"}]},
                "decision_records": {
                    "type": "array", "items": {"$ref": "#/components/schemas/DecisionRecord"}},
                "studies": {"type": "array", "items": {"$ref": "#/components/schemas/Study"}},
                "allowed_actions": {"type": "array", "items": {"type": "string"}},
            },
        }],
    },
    "ThreadMessage": {
        "type": "object",
        "required": ["id", "kind", "at", "author", "text", "photo", "receipts"],
        "properties": {
            "id": {"type": "integer", "description": "the message's event id on the chain"},
            "kind": {"type": "string", "enum": ["message", "request_info", "provide_info"]},
            "at": {"type": "string", "format": "date-time"},
            "author": NULLABLE_STRING, "author_id": {"type": ["integer", "null"]},
            "text": NULLABLE_STRING,
            "photo": {"oneOf": [{"type": "null"}, {
                "type": "object",
                "description": "the photo, a DICOM Secondary Capture instance in the "
                               "referring hospital's PACS",
                "required": ["study_uid", "series_uid", "sop_uid"],
                "properties": {
                    "hospital": {"type": "string"}, "study_uid": {"type": "string"},
                    "series_uid": {"type": "string"},
                    "sop_uid": {"type": "string", "description": "SOP Instance UID"},
                    "rows": {"type": "integer"}, "columns": {"type": "integer"}}}]},
            "receipts": {"type": "array", "items": {
                "type": "object", "required": ["name", "status", "at"],
                "description": "one per person involved but the author",
                "properties": {
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": ["sent", "delivered", "read"]},
                    "at": {"type": ["string", "null"], "format": "date-time",
                           "description": "when delivered or read"}}}},
        },
    },
    "Signature": {
        "type": "object",
        "description": "the signer's own secret, re-entered for each decision and addendum "
                       "(a session or an API token is not a signature): password, or totp "
                       "(the 6-digit code) for a user with an authenticator app",
        "properties": {"password": {"type": "string", "minLength": 1},
                       "totp": {"type": "string", "pattern": "^[0-9]{6}$"}},
        "anyOf": [{"required": ["password"]}, {"required": ["totp"]}],
    },
    "DecisionInput": {
        "type": "object",
        "required": ["outcome", "rationale", "signature"],
        "properties": {
            "outcome": {"type": "string", "enum": [o.value for o in Outcome],
                        "description": _named(labels.OUTCOMES)},
            "destination_hospital": {"type": "string", "description": "needed for transfer"},
            "destination_unit": {"type": "string"},
            "transfer_urgency": {"type": "string", "enum": list(TRANSFER_URGENCY)},
            "advice": {"type": "string",
                       "description": "needed for treat_locally and advice_only"},
            "rationale": {"type": "string"},
            "signature": {"$ref": "#/components/schemas/Signature"},
        },
    },
    "AddendumInput": {
        "type": "object",
        "required": ["text", "signature"],
        "properties": {"text": {"type": "string"},
                       "signature": {"$ref": "#/components/schemas/Signature"}},
    },
    "ActionInput": {
        "type": "object",
        "description": "request-info: question; provide-info, messages: text; cancel: "
                       "reason; hand-over: to (user id or email), note; depart/arrive/close: "
                       "note",
        "properties": {
            "question": {"type": "string"}, "text": {"type": "string"},
            "reason": {"type": "string"},
            "note": {"type": "string"}, "to": {"type": ["string", "integer"]},
        },
    },
}

SCHEMAS.update({f"Clinical_{code}": clinical.json_schema(code) for code in clinical.FIELDS})

COMMON = {
    "400": _error("malformed request (e.g. missing CSRF token on a cookie session)"),
    "401": _error("not signed in: send Authorization: Bearer <token>"),
    "403": _error("your role or hospital does not allow this"),
}


ACTION_REFUSALS = {
    "404": _error("no such referral"),
    "409": _error("not allowed from this state, or someone else acted first"),
}
# Actions with a route of their own, whose body must carry the signature.
SIGNED_ACTIONS = ("decide", "addendum")
OWN_ROUTES = (*SIGNED_ACTIONS, "messages")  # documented on their own paths


def _signed_action(summary: str, operation_id: str, referral_id: dict, schema: str) -> dict:
    return {"post": {
        "summary": summary, "operationId": operation_id, "parameters": [referral_id],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
        "responses": {"200": _referral("the referral after the action"), **COMMON,
                      **ACTION_REFUSALS,
                      "422": _error("every bad field, by path; signature.password when the "
                                    "signature is missing or not the signer's password")},
    }}


@cache
def openapi_document() -> dict:
    referral_id = {"name": "referral_id", "in": "path", "required": True,
                   "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "goldenhour API", "version": "1",
                 "description": "Urgent referrals between the network's hospitals."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": SCHEMAS},
        "paths": {
            "/api/v1/referrals": {
                "post": {
                    "summary": "Raise a referral", "operationId": "raiseReferral",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ReferralInput"}}}},
                    "responses": {"201": _referral("the new referral"), **COMMON,
                                  "409": {"description": "the patient already has an open "
                                                         "referral for this specialty",
                                          "content": {"application/json": {"schema": {
                                              "$ref": "#/components/schemas/"
                                                      "DuplicateReferral"}}}},
                                  "422": _error("every bad field, by path")},
                },
                "get": {
                    "summary": "Referrals you may see, newest first (at most 200)",
                    "operationId": "listReferrals",
                    "parameters": [
                        {"name": "state", "in": "query",
                         "schema": {"type": "string", "enum": [s.value for s in State]}},
                        {"name": "specialty", "in": "query", "schema": {"type": "string"}},
                        {"name": "hospital", "in": "query", "schema": {"type": "string"},
                         "description": "referring hospital code"},
                    ],
                    "responses": {"200": {"description": "referrals", "content": {
                        "application/json": {"schema": {
                            "type": "object", "required": ["referrals"],
                            "properties": {"referrals": {"type": "array", "items": {
                                "$ref": "#/components/schemas/ReferralSummary"}}}}}}},
                        **COMMON, "422": _error("an unknown filter value")},
                },
            },
            "/api/v1/referrals/{referral_id}/fhir": {
                "get": {
                    "summary": "The referral as a FHIR R4 Bundle (ServiceRequest, Task, "
                               "Patient, ImagingStudy, decision)",
                    "operationId": "getReferralFhir", "parameters": [referral_id],
                    "responses": {"200": {"description": "a FHIR R4 Bundle of type collection",
                                          "content": {"application/fhir+json": {
                                              "schema": {"type": "object",
                                                         "required": ["resourceType", "type",
                                                                      "entry"]}}}},
                                  **COMMON, "404": _error("no such referral")},
                },
            },
            "/api/v1/referrals/{referral_id}": {
                "get": {
                    "summary": "One referral with its events, clocks, decision, decision "
                               "records and studies",
                    "operationId": "getReferral", "parameters": [referral_id],
                    "responses": {"200": _referral("the referral"), **COMMON,
                                  "404": _error("no such referral")},
                },
            },
            "/api/v1/referrals/{referral_id}/messages": {
                "get": {
                    "summary": "The thread, oldest first: each message with its photo's "
                               "UIDs and each recipient's receipt (reading it here marks "
                               "nothing delivered or read)",
                    "operationId": "listMessages", "parameters": [referral_id],
                    "responses": {"200": {"description": "the thread", "content": {
                        "application/json": {"schema": {
                            "type": "object", "required": ["messages"],
                            "properties": {"messages": {"type": "array", "items": {
                                "$ref": "#/components/schemas/ThreadMessage"}}}}}}},
                        **COMMON, "404": _error("no such referral")},
                },
                "post": {
                    "summary": "Post a message (text) in the thread", "operationId":
                        "postMessage", "parameters": [referral_id],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ActionInput"}}}},
                    "responses": {"200": _referral("the referral after the message"),
                                  **COMMON, **ACTION_REFUSALS,
                                  "422": _error("every bad field, by path")},
                },
            },
            **IMAGE_PATHS,  # views/openapi_images.py
            "/api/v1/referrals/{referral_id}/decide": _signed_action(
                "Decide, signed with your own password", "decideReferral", referral_id,
                "DecisionInput"),
            "/api/v1/referrals/{referral_id}/addendum": _signed_action(
                "Add an addendum to the decision, signed with your own password",
                "addAddendum", referral_id, "AddendumInput"),
            "/api/v1/referrals/{referral_id}/{action}": {
                "post": {
                    "summary": "Act on a referral", "operationId": "actOnReferral",
                    "parameters": [referral_id, {
                        "name": "action", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": sorted(
                            set(ACTION_PATHS.values()) - set(OWN_ROUTES))},
                    }],
                    "requestBody": {"required": False, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ActionInput"}}}},
                    "responses": {"200": _referral("the referral after the action"), **COMMON,
                                  **ACTION_REFUSALS,
                                  "422": _error("every bad field, by path")},
                },
            },
        },
    }
