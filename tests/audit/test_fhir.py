"""FHIR R4 Bundle of a referral, checked against the R4 (4.0.1) resource models of
fhir.resources 6.1 (pydantic models generated from the R4 specification)."""

from __future__ import annotations

import pytest
from fhir.resources import __fhir_version__ as FHIR_VERSION
from fhir.resources.bundle import Bundle
from pydantic import ValidationError
from sqlalchemy import select

from extensions import db
from models import AccessLog, Decision, LinkedStudy, User
from tests.audit.conftest import at
from workflow.referrals import fhir
from workflow.referrals.states import State

DEMO_PASSWORD = "goldenhour-demo"
# The models check structure, cardinality and types but not code values: the R4
# required value set for Task.status (http://hl7.org/fhir/task-status) is checked here.
R4_TASK_STATUS = {"draft", "requested", "received", "accepted", "rejected", "ready",
                  "cancelled", "in-progress", "on-hold", "failed", "completed",
                  "entered-in-error"}


def validate_r4(body: dict) -> Bundle:
    assert FHIR_VERSION == "4.0.1"
    return Bundle.parse_obj(body)


def resources(body: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for entry in body["entry"]:
        found.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return found


@pytest.fixture
def decided(make_referral):
    referral = make_referral(at("2026-01-10T10:00"), state="decided", page=1, ack=5,
                             decision=20, outcome="transfer", door_in=-30, onset=-90)
    specialist = db.session.scalar(select(User).where(
        User.email == "stroke.night@qmc.demo.nhs.uk"))
    db.session.add(Decision(referral_id=referral.id, outcome="transfer",
                            rationale="LVO on CTA <img src=http://x>", advice="Keep NBM",
                            decided_by_id=specialist.id, decided_at=referral.decided_at))
    db.session.add(LinkedStudy(referral_id=referral.id, hospital_id=referral.referring_hospital_id,
                               study_uid="1.2.826.0.1.3680043.8.498.1", description="CT head",
                               study_date="20260110", modalities="CT,CTA", series_count=2,
                               instance_count=120))
    db.session.commit()
    return referral


def test_the_bundle_validates_as_fhir_r4_and_holds_every_resource(decided, client):
    client.login("audit@em.demo.nhs.uk", DEMO_PASSWORD)
    response = client.get(f"/api/v1/referrals/{decided.id}/fhir")
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    body = response.json
    validate_r4(body)
    assert body["type"] == "collection"
    found = resources(body)
    assert sorted(found) == ["Communication", "ImagingStudy", "Patient", "ServiceRequest", "Task"]
    assert found["Patient"][0]["identifier"] == [
        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]
    study_url = next(e["fullUrl"] for e in body["entry"]
                     if e["resource"]["resourceType"] == "ImagingStudy")
    assert found["ServiceRequest"][0]["supportingInfo"] == [{"reference": study_url}]
    assert found["ImagingStudy"][0]["identifier"][0]["value"] == \
        "urn:oid:1.2.826.0.1.3680043.8.498.1"
    assert found["Task"][0]["status"] == "completed"
    assert "Rationale: LVO on CTA <img src=http://x>" in [
        p["contentString"] for p in found["Communication"][0]["payload"]]


@pytest.mark.parametrize("breakage", ["no intent", "unknown element", "bad date"])
def test_a_broken_resource_fails_the_r4_check(decided, app, breakage):
    body = fhir.referral_bundle(decided, "http://127.0.0.1:5000", at("2026-01-10T11:00"))
    task = resources(body)["Task"][0]
    if breakage == "no intent":
        del task["intent"]
    elif breakage == "unknown element":
        task["decision"] = "transfer"
    else:
        task["authoredOn"] = "yesterday"
    with pytest.raises(ValidationError):
        validate_r4(body)


@pytest.mark.parametrize(("state", "task_status"), [
    (State.SUBMITTED, "requested"), (State.AWAITING_SPECIALIST, "requested"),
    (State.UNDER_REVIEW, "in-progress"), (State.INFO_REQUESTED, "on-hold"),
    (State.DECIDED, "completed"), (State.IN_TRANSFER, "completed"),
    (State.CLOSED, "completed"), (State.CANCELLED, "cancelled"),
    (State.UNANSWERED, "failed"),
])
def test_each_state_maps_to_a_task_status_and_stays_in_business_status(
        make_referral, state, task_status):
    referral = make_referral(at("2026-01-10T10:00"), state=state)
    body = fhir.referral_bundle(referral, "http://127.0.0.1:5000", at("2026-01-10T11:00"))
    validate_r4(body)
    task = resources(body)["Task"][0]
    assert (task["status"], task["businessStatus"]["text"]) == (task_status, state)
    assert task["status"] in R4_TASK_STATUS


def test_the_bundle_is_refused_to_a_referrer_of_another_hospital_and_logged(decided, client):
    client.login("referrer@lch.demo.nhs.uk", DEMO_PASSWORD)
    response = client.get(f"/api/v1/referrals/{decided.id}/fhir")
    assert response.status_code == 403
    db.session.expire_all()
    logged = db.session.scalars(select(AccessLog).where(
        AccessLog.referral_id == decided.id, AccessLog.action == "referral.view")).all()
    assert [(r.email, r.outcome, r.detail) for r in logged] == [
        ("referrer@lch.demo.nhs.uk", "denied", "fhir")]


def test_the_referring_hospitals_referrer_gets_the_bundle_and_the_view_is_logged(decided,
                                                                                client):
    client.login("referrer@pil.demo.nhs.uk", DEMO_PASSWORD)
    assert client.get(f"/api/v1/referrals/{decided.id}/fhir").status_code == 200
    db.session.expire_all()
    logged = db.session.scalars(select(AccessLog).where(
        AccessLog.referral_id == decided.id, AccessLog.action == "referral.view")).all()
    assert [(r.outcome, r.detail) for r in logged] == [("ok", "fhir")]
