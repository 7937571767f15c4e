"""The OpenAPI document: valid 3.1, matches the routes, and the API keeps its promises
when schemathesis throws generated requests at it."""

from __future__ import annotations

import contextvars
import re

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.definitions import OPENAPI_31

from extensions import db
from tests.workflow.helpers import DEMO_NOW, REFERRER, STROKE_SPECIALISTS, bearer, stroke_payload
from views.openapi import openapi_document

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

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


@pytest.mark.parametrize("who", [REFERRER, STROKE_SPECIALISTS[0]])
def test_generated_requests_get_no_server_error_and_answers_match_the_document(
        network, time_machine, who):
    time_machine.move_to(DEMO_NOW, tick=True)
    headers = bearer(who)
    referrer = bearer(REFERRER)
    client = network.test_client()
    for _ in range(3):  # something to find, act on and list
        assert client.post("/api/v1/referrals", json=stroke_payload(),
                           headers=referrer).status_code == 201
    db.session.commit()
    schema = contextvars.Context().run(schemathesis.openapi.from_wsgi, "/api/v1/openapi.json",
                                       network)
    schema.validate()
    checks = [schemathesis.checks.not_a_server_error, response_schema_conformance]

    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            if "referral_id" in (case.path_parameters or {}):
                # Mostly the referrals that exist: an unknown id only ever finds the 404.
                case.path_parameters["referral_id"] = case.path_parameters["referral_id"] % 5
            # The document's bearer scheme makes schemathesis send made-up tokens: use ours.
            case.headers = {**(case.headers or {}), **headers}
            db.session.rollback()
            # A fresh context, as in a server: not the test's app context, g and session.
            response = contextvars.Context().run(case.call)
            case.validate_response(response, checks=checks)

        check()
