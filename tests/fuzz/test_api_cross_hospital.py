"""schemathesis over the whole API as a referrer of Pilgrim (PIL) while Lincoln County
(LCH) holds referrals of its own patients, with a linked study: no answer to Pilgrim ever
carries an LCH patient's NHS number, family name, referral reference or study UID, every
request naming an LCH referral is refused (403) or finds nothing (404), and nothing of
LCH's changes. The generated requests are steered to LCH's referral ids and UIDs, and
each operation is also asked once, explicitly, for each LCH referral. A request refused
for its own input before any referral is looked up (a 422 for a NUL character in the
body) must get exactly the answer a referral that does not exist gets.
"""

from __future__ import annotations

import contextvars

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select

from extensions import db
from models import Hospital, LinkedStudy, Referral, ReferralEvent
from tests.workflow.helpers import (
    OTHER_REFERRER,
    REFERRER,
    SIGNED,
    STROKE_SPECIALISTS,
    bearer,
    stroke_payload,
    user,
)
from workflow.referrals import actions as referrals

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.clock(tick=True)]


def nhs_number(first_nine: str) -> str:
    """``first_nine`` with its modulus 11 check digit, spaced 3-3-4."""
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(first_nine)) % 11
    assert check != 10, "no valid NHS number starts so"
    digits = first_nine + str(0 if check == 11 else check)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


# Lincoln County's patients: family names no generated string will hit by chance.
LCH_PATIENTS = [(nhs_number("401023213"), "Quenbyward"), (nhs_number("402115634"), "Ashwellmoor"),
                (nhs_number("403327818"), "Thistlebarrow")]
PIL_PATIENT = (nhs_number("405512349"), "Pilgrimsonne")
LCH_STUDY, LCH_SERIES, LCH_SOP = (f"1.2.826.0.1.3680043.8.498.700{n}" for n in (1, 2, 3))


def _patient(number: str, family: str) -> dict:
    return {**stroke_payload()["patient"], "nhs_number": number, "family_name": family}


def _seed(network) -> tuple[list[int], int, list[str]]:
    """LCH's referrals (one acknowledged, one with a linked study) and one of Pilgrim's:
    (LCH ids, the Pilgrim id, what must never reach Pilgrim)."""
    lincoln = user(OTHER_REFERRER)
    ids = [referrals.raise_referral(lincoln, stroke_payload(
        referring_hospital="LCH", patient=_patient(n, f))).id for n, f in LCH_PATIENTS]
    referrals.acknowledge(ids[0], user(STROKE_SPECIALISTS[0]))
    lch = db.session.scalar(select(Hospital).where(Hospital.code == "LCH"))
    db.session.add(LinkedStudy(
        referral_id=ids[0], hospital_id=lch.id, study_uid=LCH_STUDY, description="CT head",
        study_date="20261129", modalities="CT", series_count=1, instance_count=1,
        linked_by_id=lincoln.id, snapshot={"series": [{
            "series_uid": LCH_SERIES, "modality": "CT",
            "instances": [{"sop_uid": LCH_SOP, "frames": 1}]}]}))
    own = referrals.raise_referral(user(REFERRER), stroke_payload(patient=_patient(*PIL_PATIENT)))
    db.session.commit()
    secrets = [LCH_STUDY, LCH_SERIES, LCH_SOP]
    for referral_id, (number, family) in zip(ids, LCH_PATIENTS, strict=True):
        secrets += [number, number.replace(" ", ""), family.lower(),
                    db.session.get(Referral, referral_id).reference.lower()]
    return ids, own.id, secrets


def _lch_state(ids: list[int]) -> list[tuple]:
    db.session.expire_all()
    return [(r.state, r.version, r.assigned_specialist_id,
             db.session.scalar(select(func.count()).select_from(ReferralEvent)
                               .where(ReferralEvent.referral_id == r.id)),
             db.session.scalar(select(func.count()).select_from(LinkedStudy)
                               .where(LinkedStudy.referral_id == r.id)))
            for r in (db.session.get(Referral, i) for i in ids)]


NO_REFERRAL = 999_999
# Each operation gets this share of FUZZ_EXAMPLES: ten operations, two databases.
API_EXAMPLES_SHARE = 0.4
# A request that names a referral, as it would be made with a real body.
EXPLICIT_BODIES = {
    "decideReferral": {"outcome": "advice", "advice": "CT angiogram first",
                       "rationale": "small vessel", **SIGNED},
    "addAddendum": {"text": "Seen again", **SIGNED},
    "linkStudies": {"hospital": "LCH", "study_uids": [LCH_STUDY]},
    "actOnReferral": {"reason": "asked again"},
}
EXPLICIT_PATH = {"action": "acknowledge", "study_uid": LCH_STUDY, "series_uid": LCH_SERIES,
                 "sop_uid": LCH_SOP}


def _steered(operation, operation_id: str, referral_ids: list[int], send):
    """Generated requests for ``operation`` with their referral id (and, half the time,
    their UIDs) replaced by the ones that matter."""

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
           referral_id=st.sampled_from(referral_ids), uids=st.sampled_from([EXPLICIT_PATH, {}]))
    def check(case, referral_id, uids):
        if case.path_parameters and "referral_id" in case.path_parameters:
            case.path_parameters["referral_id"] = referral_id
            case.path_parameters.update(
                {k: v for k, v in uids.items() if k in case.path_parameters})
        send(case, operation_id)

    return check


def test_a_referrer_never_sees_or_changes_another_hospitals_referrals(network, fuzz_run):
    lch_ids, own_id, secrets = _seed(network)
    before = _lch_state(lch_ids)
    headers = bearer(REFERRER)
    schema = contextvars.Context().run(schemathesis.openapi.from_wsgi, "/api/v1/openapi.json",
                                       network)
    operations = [result.ok() for result in schema.get_all_operations()]

    def send(case, operation_id: str) -> None:
        # The document's bearer scheme makes schemathesis send made-up tokens: use ours.
        case.headers = {**(case.headers or {}), **headers}
        db.session.rollback()
        response = contextvars.Context().run(case.call)  # a fresh context, as in a server
        seen = (response.content or b"").decode("utf-8", "replace").lower() + "\n" + \
            "\n".join(f"{k}: {v}" for k, v in response.headers.items()).lower()
        leaked = [s for s in secrets if s in seen]
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert not leaked, f"{where} shows {leaked}"
        assert response.status_code < 500, where
        named = (case.path_parameters or {}).get("referral_id")
        if named in lch_ids:
            if response.status_code not in (403, 404):
                # Refused for its own input before any referral was looked up (a NUL in
                # the body, say): then the answer must be the one for no referral at all.
                case.path_parameters["referral_id"] = NO_REFERRAL
                unknown = contextvars.Context().run(case.call)
                case.path_parameters["referral_id"] = named
                assert (unknown.status_code, unknown.content) == \
                    (response.status_code, response.content), where
            fuzz_run.count(f"LCH referral refused {response.status_code}")
        else:
            fuzz_run.count(f"other request {response.status_code // 100}xx")
        if PIL_PATIENT[1].lower() in seen:
            fuzz_run.outcomes["own patient shown"] += 1

    explicit = 0
    for operation in operations:
        operation_id = operation.definition.raw.get("operationId", operation.label)
        parameters = {p["name"] for p in operation.definition.raw.get("parameters", [])}
        if "referral_id" in parameters:
            for referral_id in lch_ids:
                explicit += 1
                body = EXPLICIT_BODIES.get(operation_id)
                path = {"referral_id": referral_id,
                        **{k: v for k, v in EXPLICIT_PATH.items() if k in parameters}}
                send(operation.Case(path_parameters=path, **(
                    {"body": body, "media_type": "application/json"} if body else {})),
                    operation_id)

        fuzz_run.run(_steered(operation, operation_id, [*lch_ids, *lch_ids, own_id], send),
                     part=1 / len(operations), examples=API_EXAMPLES_SHARE)

    assert _lch_state(lch_ids) == before
    refused = sum(n for k, n in fuzz_run.outcomes.items() if k.startswith("LCH referral"))
    assert explicit >= len(lch_ids) * 9 and refused > explicit, fuzz_run.outcomes
    assert fuzz_run.outcomes["own patient shown"] > 0, fuzz_run.outcomes
