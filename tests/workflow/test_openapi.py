"""The OpenAPI document: valid 3.1, matches the routes, and the API keeps its promises
when schemathesis throws generated requests at it."""

from __future__ import annotations

import contextvars
import re

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.definitions import OPENAPI_31

from extensions import db
from models import LinkedStudy, Referral
from tests.workflow.helpers import (
    REFERRER,
    SIGNED,
    STROKE_SPECIALISTS,
    bearer,
    stroke_payload,
    user,
)
from views.openapi import openapi_document
from workflow.referrals import actions as referrals

# The suite's night, with the clock running.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.clock(tick=True)]

METHODS = {"get", "post", "put", "patch", "delete"}


def test_the_document_is_valid_openapi_3_1(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1.")
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_a_broken_document_would_fail_the_check():
    broken = {**openapi_document(), "paths": {"/x": {"get": {"responses": "none"}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(OPENAPI_31).validate(broken)


def _route_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        found |= {(path, m.lower()) for m in rule.methods if m.lower() in METHODS}
    return found


def test_every_api_route_is_in_the_document_and_nothing_else(app):
    document = openapi_document()
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method in METHODS}
    assert _route_operations(app) == documented


def _validator(name: str) -> jsonschema.Draft202012Validator:
    document = openapi_document()
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_a_decided_referral_with_a_study_matches_the_documented_schema(network, client,
                                                                      clock):
    """Generated requests seldom reach a decision: this one does, with a linked study."""
    rid = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    specialist = user(STROKE_SPECIALISTS[0])
    referrals.acknowledge(rid, specialist)
    referral = db.session.get(Referral, rid)
    db.session.add(LinkedStudy(referral_id=rid, hospital_id=referral.referring_hospital_id,
                               study_uid="1.2.826.0.1.3680043.8.498.1", description="CT head",
                               study_date="20261129", modalities="CT", series_count=2,
                               instance_count=300, linked_by_id=specialist.id))
    db.session.commit()
    referrals.decide(rid, specialist, {"outcome": "transfer", "destination_hospital": "QMC",
                                       "destination_unit": "HASU", "rationale": "M1 occlusion",
                                       **SIGNED})
    body = client.get(f"/api/v1/referrals/{rid}", headers=bearer(REFERRER)).json
    _validator("Referral").validate(body)
    assert body["decision"]["transfer_urgency"] == "immediate"
    assert body["studies"][0]["modalities"] == "CT"
    broken = {**body, "clocks": {**body["clocks"], "since_onset": "two hours"}}
    with pytest.raises(jsonschema.ValidationError):
        _validator("Referral").validate(broken)


def _seed_referrals(network) -> None:
    referrer = bearer(REFERRER)
    client = network.test_client()
    for _ in range(3):  # something to find, act on and list
        assert client.post("/api/v1/referrals", json=stroke_payload(separate_referral=True),
                           headers=referrer).status_code == 201
    db.session.commit()


def _existing_id(case) -> None:
    """Mostly the referrals that exist: an unknown id only ever finds the 404."""
    value = (case.path_parameters or {}).get("referral_id")
    if isinstance(value, int) and not isinstance(value, bool):
        case.path_parameters["referral_id"] = value % 5


def _run_generated(network, who, mode, checks) -> None:
    """Send every operation ``mode`` requests as ``who`` and run ``checks`` on each."""
    headers = bearer(who)
    _seed_referrals(network)
    schema = contextvars.Context().run(schemathesis.openapi.from_wsgi, "/api/v1/openapi.json",
                                       network)
    schema.validate()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            _existing_id(case)
            # The document's bearer scheme makes schemathesis send made-up tokens: use ours.
            case.headers = {**(case.headers or {}), **headers}
            db.session.rollback()
            # A fresh context, as in a server: not the test's app context, g and session.
            response = contextvars.Context().run(case.call)
            case.validate_response(response, checks=checks)

        check()


# Each generated test runs each actor once, on crossed databases: between the two tests
# every actor meets both databases (the document's checks do not depend on the pair).
CROSSED = (("sqlite", REFERRER),
           pytest.param("postgres", STROKE_SPECIALISTS[0], marks=pytest.mark.postgres))
UNCROSSED = (("sqlite", STROKE_SPECIALISTS[0]),
             pytest.param("postgres", REFERRER, marks=pytest.mark.postgres))


@pytest.mark.parametrize("database_url,who", CROSSED, indirect=["database_url"])
def test_requests_that_break_the_document_get_a_refusal_not_a_server_error(
        network, who):
    """Negative mode: wrong types, missing required fields, values outside the enums."""
    _run_generated(network, who, GenerationMode.NEGATIVE,
                   [schemathesis.checks.not_a_server_error])


@pytest.mark.parametrize("database_url,who", UNCROSSED, indirect=["database_url"])
def test_generated_requests_get_no_server_error_and_answers_match_the_document(
        network, who):
    _run_generated(network, who, GenerationMode.POSITIVE,
                   [schemathesis.checks.not_a_server_error, response_schema_conformance])
