"""The referral pages as people use them: the form, the lists, the referral page and its
actions, who may see what, and the access log each view leaves."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AccessLog, Referral
from tests.workflow.helpers import stroke_form
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD

# The suite's night, 03:00 GMT in November: UK time is UTC.
pytestmark = pytest.mark.clock
REFERRER = "referrer@pil.demo.nhs.uk"
NIGHT = "stroke.night@qmc.demo.nhs.uk"
DAY = "stroke.day@qmc.demo.nhs.uk"


def field_error(page: str, name: str) -> str | None:
    """The error shown inside the field's own wrapper (before the next field starts)."""
    fid = name.replace(".", "-")
    start = page.find(f'id="w-{fid}"')
    assert start != -1, f"no field {name} on the page"
    end = page.find('id="w-', start + 1)
    block = page[start:end if end != -1 else len(page)]
    match = re.search(rf'<p class="error" id="e-{re.escape(fid)}" role="alert">(.*?)</p>', block,
                      re.S)
    return html.unescape(match.group(1)) if match else None


def referral_count() -> int:
    return db.session.scalar(select(func.count(Referral.id)))


def raise_stroke(client, **over) -> Referral:
    response = client.post("/referrals/new", data=stroke_form(**over))
    assert response.status_code == 302, response.get_data(as_text=True)
    return db.session.scalars(select(Referral).order_by(Referral.id.desc())).first()


def views_logged(referral_id: int, outcome: str = "ok", email: str | None = None) -> int:
    query = select(func.count(AccessLog.id)).where(
        AccessLog.action == "referral.view", AccessLog.outcome == outcome,
        AccessLog.referral_id == referral_id)
    if email:
        query = query.where(AccessLog.email == email)
    return db.session.scalar(query)


# --- The new-referral form ----------------------------------------------------------------


def test_the_form_defaults_to_the_referrers_hospital_and_arrival_now(login):
    page = login(REFERRER).get("/referrals/new").get_data(as_text=True)
    assert re.search(r'<option value="PIL" selected>Pilgrim Hospital</option>', page)
    assert 'name="arrived_at" id="f-arrived_at" value="2026-11-29T03:00"' in page
    assert re.search(r'name="onset_certainty" value="estimated"[^>]* checked', page)
    # Without JavaScript every specialty's fields are on the page.
    for name in ("stroke.nihss", "major_trauma.gcs", "spinal.level", "vascular.haemodynamics"):
        assert f'id="w-{name.replace(".", "-")}"' in page
    assert "js/show-if.js" in page


def test_a_referrer_raises_a_stroke_referral_through_the_form(login):
    client = login(REFERRER)
    response = client.post("/referrals/new", data=stroke_form())
    assert response.status_code == 302
    referral = db.session.scalars(select(Referral)).one()
    assert response.headers["Location"] == f"/referrals/{referral.id}"
    assert referral.state == "submitted"
    assert referral.specialty.code == "stroke"
    assert referral.referring_hospital.code == "PIL"
    assert referral.hub_service.hospital.code == "QMC"
    assert (referral.nhs_number, referral.family_name, referral.given_name) == \
        ("9434765919", "Smith", "Ann")
    assert referral.local_number == "PIL123"
    assert referral.onset_at.isoformat() == "2026-11-29T01:00:00+00:00"
    assert referral.arrived_at.isoformat() == "2026-11-29T01:40:00+00:00"
    assert referral.clinical["nihss"] == 14
    assert referral.clinical["thrombolysis_given"] is False
    assert referral.clinical["imaging"] == ["CT", "CTA"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Referral {referral.reference} raised" in page


@pytest.mark.clock("2026-07-01T03:00:00+00:00")  # 04:00 BST
def test_summer_time_is_read_as_uk_local_time(login, clock):
    referral = raise_stroke(login(REFERRER), onset_at="2026-07-01T03:30",
                            arrived_at="2026-07-01T03:50")
    assert referral.onset_at.isoformat() == "2026-07-01T02:30:00+00:00"


BAD_FIELDS = [
    ("patient.nhs_number", {"patient.nhs_number": "943 476 5918"},
     "This NHS number's check digit is wrong; check it against the patient's record."),
    ("patient.family_name", {"patient.family_name": "  "}, "Enter the family name."),
    ("patient.birth_date", {"patient.birth_date": "2030-01-01"},
     "The date of birth is in the future."),
    ("patient.sex", {"patient.sex": None}, "Choose the sex: female, male, other, unknown."),
    ("onset_at", {"onset_at": "2026-11-29T04:00"},
     "The onset / last known well time is in the future."),
    ("onset_at", {"onset_at": "2026-11-29T02:30"}, "The onset time is after the arrival time."),
    ("arrived_at", {"arrived_at": ""}, "Enter the arrival time at this hospital."),
    ("question", {"question": "x" * 4001},
     "The clinical question is 4001 characters; the most is 4000."),
    ("referring_hospital", {"referring_hospital": "XXX"}, "No hospital has the code 'XXX'."),
    ("specialty", {"specialty": None},
     "Choose the specialty: major_trauma, neurosurgery, spinal, stroke, vascular."),
    ("stroke.nihss", {"stroke.nihss": "43"}, "The NIHSS must be from 0 to 42, not 43."),
    ("stroke.anticoagulant_last_dose_at", {"stroke.anticoagulant": "apixaban"},
     "Enter the time of the last anticoagulant dose."),
    ("stroke.thrombolysis_at", {"stroke.thrombolysis_given": "yes"},
     "Enter the thrombolysis time."),
    ("stroke.imaging", {"stroke.imaging": None}, "List the imaging done: CT, CTA, CTP, MRI."),
]


@pytest.mark.parametrize(("field", "change", "message"), BAD_FIELDS,
                         ids=[f"{f}:{m[:24]}" for f, _c, m in BAD_FIELDS])
def test_each_bad_field_is_named_next_to_it_and_nothing_is_stored(login, field,
                                                                   change, message):
    client = login(REFERRER)
    response = client.post("/referrals/new", data=stroke_form(**change))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, field) == message
    assert referral_count() == 0
    # The entered values are kept.
    assert 'value="Ann"' in page
    assert re.search(r'name="stroke.imaging" value="CTA"[^>]* checked', page) or \
        "stroke.imaging" in change


def test_a_referral_from_another_hospital_than_ones_own_is_refused(login):
    response = login(REFERRER).post("/referrals/new", data=stroke_form(referring_hospital="LCH"))
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "referring_hospital") == \
        "You can only refer from your own hospital (PIL)."
    assert referral_count() == 0


def test_every_bad_field_at_once_is_listed(login):
    response = login(REFERRER).post("/referrals/new", data=stroke_form(**{
        "patient.nhs_number": "123", "stroke.nihss": "", "question": ""}))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "patient.nhs_number") == \
        "An NHS number is 10 digits, like 943 476 5919."
    assert field_error(page, "stroke.nihss") == "Enter the NIHSS (0–42)."
    assert field_error(page, "question") == "Enter the clinical question."
    assert "Nothing was sent: 3 fields need attention" in page
    assert referral_count() == 0


def test_a_trauma_referral_without_gcs_is_told_so_at_the_gcs_field(login):
    form = stroke_form(specialty="major_trauma", **{
        "major_trauma.age": "34", "major_trauma.mechanism": "Motorbike v car, 60 mph",
        "major_trauma.injuries": "Open femur fracture, chest wall"})
    response = login(REFERRER).post("/referrals/new", data=form)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "major_trauma.gcs") == "Enter the GCS (3–15)."
    # The stroke fields were sent too but are not this referral's: no stroke errors.
    assert field_error(page, "stroke.nihss") is None
    assert referral_count() == 0

    form["major_trauma.gcs"] = "9"
    assert login(REFERRER).post("/referrals/new", data=form).status_code == 302
    referral = db.session.scalars(select(Referral)).one()
    assert referral.clinical["gcs"] == 9
    assert "nihss" not in referral.clinical


def test_html_in_the_question_is_shown_as_text(login):
    client = login(REFERRER)
    question = '<script>alert("x")</script><b onmouseover=alert(1)>bold</b>'
    referral = raise_stroke(client, question=question)
    assert referral.question == question
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b onmouseover=alert(1)&gt;" in page
    assert "<script>alert" not in page
    assert "<b onmouseover" not in page


# --- Lists ---------------------------------------------------------------------------------


def test_the_worklist_shows_a_new_stroke_referral_to_qmc_stroke_not_lri_vascular(login):
    referral = raise_stroke(login(REFERRER))
    page = login(NIGHT).get("/worklist").get_data(as_text=True)
    awaiting = page[page.index('id="section-awaiting"'):page.index('id="section-mine"')]
    assert referral.reference in awaiting
    assert "Pilgrim Hospital" in awaiting
    assert "0 min" in awaiting  # raised just now
    assert "lysis 2 h 30 min" in awaiting  # onset 01:00, window closes 05:30
    assert referral.reference not in page[page.index('id="section-mine"'):]

    vascular = login("vascular.night@lri.demo.nhs.uk").get("/worklist")
    assert vascular.status_code == 200
    assert referral.reference not in vascular.get_data(as_text=True)

    duty = login("duty.manager@qmc.demo.nhs.uk").get("/worklist").get_data(as_text=True)
    assert referral.reference in duty


def test_an_accepted_referral_moves_to_mine_and_ages(login, clock):
    referral = raise_stroke(login(REFERRER))
    night = login(NIGHT)
    night.post(f"/referrals/{referral.id}/acknowledge")
    clock.move_to("2026-11-29T03:25:00+00:00", tick=False)
    page = night.get("/worklist").get_data(as_text=True)
    mine = page[page.index('id="section-mine"'):page.index('id="section-info"')]
    assert referral.reference in mine and "25 min" in mine
    assert referral.reference not in page[:page.index('id="section-mine"')]
    assert "Accepted, under review" in mine


def test_the_worklist_is_for_specialists_and_duty_managers(login):
    assert login(REFERRER).get("/worklist").status_code == 403
    assert login(NIGHT).get("/referrals/mine").status_code == 403
    assert login(NIGHT).get("/referrals/new").status_code == 403


def test_my_referrals_lists_the_hospitals_referrals_newest_first_with_status(login,
                                                                             clock):
    client = login(REFERRER)
    first = raise_stroke(client)
    clock.move_to("2026-11-29T03:05:00+00:00", tick=False)
    second = raise_stroke(client, **{"patient.family_name": "Jones",
                                    "patient.nhs_number": "4010232137"})
    login(NIGHT).post(f"/referrals/{first.id}/acknowledge")
    other = login("referrer@lch.demo.nhs.uk").get("/referrals/mine").get_data(as_text=True)
    assert first.reference not in other

    page = client.get("/referrals/mine").get_data(as_text=True)
    page = page[page.index('id="mine"'):]  # after the flashed "raised" messages
    assert page.index(second.reference) < page.index(first.reference)
    row = page[page.index(f'id="r-{first.id}"'):]
    assert re.search(r'class="badge state-under_review" data-state-badge>Accepted, under review',
                     row)
    assert 'data-live-part' in page and "js/live.js" in page
    assert 'data-live-stream="/referrals/events/mine"' in client.get(
        "/referrals/mine").get_data(as_text=True)


def test_the_status_json_gives_the_state_only(login):
    referral = raise_stroke(login(REFERRER))
    body = login(REFERRER).get(f"/referrals/{referral.id}/status.json").json
    assert body == {"id": referral.id, "state": "submitted", "label": "Submitted",
                    "version": 1, "outcome": None, "assigned_specialist": None}
    assert login("referrer@lch.demo.nhs.uk").get(
        f"/referrals/{referral.id}/status.json").status_code == 403


# --- The referral page ---------------------------------------------------------------------


def test_the_referral_page_shows_the_patient_clocks_and_windows(login):
    client = login(REFERRER)
    referral = raise_stroke(client)
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "SMITH, Ann" in page
    assert '<span class="nhs">943 476 5919</span>' in page
    assert "76 y · female" in page
    clocks = page[page.index('id="clocks"'):page.index('id="question"')]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", clocks))
    assert "Since onset (precise) 2 h 00 min" in text
    assert "Since arrival 1 h 20 min" in text
    assert "Since referral 0 min" in text
    assert "Since accepted —" in text
    assert "Blue-light travel PIL → QMC: 1 h 40 min." in text
    assert "Open on arrival at QMC?" in text
    assert "Thrombolysis closes Sun 05:30 2 h 30 min yes" in text
    assert "Thrombectomy closes Sun 07:00 4 h 00 min yes" in text
    assert "NIHSS" in page and "CT, CTA" in page


def test_a_window_that_will_shut_on_the_way_says_no(login):
    client = login(REFERRER)
    referral = raise_stroke(client, onset_at="2026-11-28T23:40", arrived_at="2026-11-29T00:30",
                            onset_certainty="during_sleep")
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Since last known well (during sleep) 3 h 20 min" in text
    assert "Thrombolysis closes Sun 04:10 1 h 10 min no" in text


def test_the_referrer_sees_no_accept_button_the_specialist_does(login):
    referrer = login(REFERRER)
    referral = raise_stroke(referrer)
    url = f"/referrals/{referral.id}"
    page = referrer.get(url).get_data(as_text=True)
    assert "Accept referral" not in page
    assert f'action="{url}/acknowledge"' not in page
    assert f'action="{url}/decide"' not in page
    assert f'action="{url}/cancel"' in page
    assert f'action="{url}/thread"' in page  # the thread's form: a message, a photo

    referrals.system_event(referral.id, "page_sent")
    page = login(NIGHT).get(url).get_data(as_text=True)
    assert f'action="{url}/acknowledge"' in page and "Accept referral" in page
    assert f'action="{url}/hand-over"' in page  # pass the page to a colleague
    assert f'action="{url}/cancel"' not in page  # only the assigned specialist may cancel
    assert f'action="{url}/decide"' not in page  # not before accepting

    audit = login("audit@em.demo.nhs.uk").get(url).get_data(as_text=True)
    assert f"{url}/" not in audit.replace(f"{url}/status.json", "").replace(f"{url}/events", "")


def test_the_second_specialist_to_accept_is_told_who_was_first(login):
    referral = raise_stroke(login(REFERRER))
    night, day = login(NIGHT), login(DAY)
    url = f"/referrals/{referral.id}"
    assert "Accept referral" in day.get(url).get_data(as_text=True)
    assert night.post(f"{url}/acknowledge").status_code == 302
    response = day.post(f"{url}/acknowledge")
    assert response.status_code == 409
    assert "Stroke Registrar (nights) accepted this referral first" in \
        response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Referral, referral.id).assigned_specialist.email == NIGHT


def test_a_referrer_of_another_hospital_is_refused_and_logged(login):
    referral = raise_stroke(login(REFERRER))
    lincoln = login("referrer@lch.demo.nhs.uk")
    response = lincoln.get(f"/referrals/{referral.id}")
    assert response.status_code == 403
    assert "Smith" not in response.get_data(as_text=True)
    assert views_logged(referral.id, "denied", "referrer@lch.demo.nhs.uk") == 1
    assert lincoln.post(f"/referrals/{referral.id}/messages",
                        data={"text": "hello"}).status_code == 403
    assert lincoln.get("/referrals/99999").status_code == 404


def test_the_audit_lead_can_view_and_each_view_is_logged(login):
    referral = raise_stroke(login(REFERRER))
    audit = login("audit@em.demo.nhs.uk")
    for n in (1, 2):
        assert audit.get(f"/referrals/{referral.id}").status_code == 200
        assert views_logged(referral.id, "ok", "audit@em.demo.nhs.uk") == n
    assert views_logged(referral.id, "ok") == 2


def test_an_action_the_user_may_not_take_is_403_and_logged(login):
    referrer = login(REFERRER)
    referral = raise_stroke(referrer)
    assert referrer.post(f"/referrals/{referral.id}/acknowledge").status_code == 403
    assert referrer.post(f"/referrals/{referral.id}/explode").status_code == 404
    denied = db.session.scalar(select(func.count(AccessLog.id)).where(
        AccessLog.action == "referral.acknowledge", AccessLog.outcome == "denied"))
    assert denied == 1
    db.session.expire_all()
    assert db.session.get(Referral, referral.id).state == "submitted"


def test_a_referral_goes_from_accept_to_arrival_through_the_pages(login):
    referrer = login(REFERRER)
    referral = raise_stroke(referrer)
    url = f"/referrals/{referral.id}"
    night = login(NIGHT)
    assert night.post(f"{url}/acknowledge").status_code == 302
    assert night.post(f"{url}/request-info", data={"question": "Any <anticoagulant>?"}) \
        .status_code == 302
    page = referrer.get(url).get_data(as_text=True)
    assert "Any &lt;anticoagulant&gt;?" in page
    assert referrer.post(f"{url}/provide-info", data={"text": ""}).status_code == 422
    assert referrer.post(f"{url}/provide-info", data={"text": "None."}).status_code == 302

    response = night.post(f"{url}/decide", data={"outcome": "transfer",
                                                 "destination_hospital": "QMC",
                                                 "destination_unit": "Hyperacute stroke unit",
                                                 "rationale": ""})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "decide.rationale") == "Enter the rationale."
    assert "Enter your password to sign the decision." in page
    assert 'value="Hyperacute stroke unit"' in page
    decision = {"outcome": "transfer", "destination_hospital": "QMC",
                "transfer_urgency": "immediate", "destination_unit": "HASU",
                "rationale": "M1 occlusion: thrombectomy"}
    wrong = night.post(f"{url}/decide", data={**decision, "password": "not-my-password"})
    assert wrong.status_code == 422
    assert "That password is not right" in wrong.get_data(as_text=True)
    assert "not-my-password" not in wrong.get_data(as_text=True)
    assert night.post(f"{url}/decide",
                      data={**decision, "password": "goldenhour-demo"}).status_code == 302

    page = referrer.get(url).get_data(as_text=True)
    assert "Decision: Transfer" in page and "M1 occlusion: thrombectomy" in page
    assert f'action="{url}/depart"' in page
    assert referrer.post(f"{url}/messages", data={"text": "Crew here, leaving now"}) \
        .status_code == 302
    assert referrer.post(f"{url}/depart").status_code == 302
    assert night.post(f"{url}/arrive").status_code == 302
    page = night.get(url).get_data(as_text=True)
    assert "Closed" in page and "Crew here, leaving now" in page
    assert [e.kind for e in db.session.get(Referral, referral.id).events] == [
        "raise", "acknowledge", "request_info", "provide_info", "decide", "message",
        "depart", "arrive"]
    response = referrer.post(f"{url}/cancel", data={"reason": "too late"})
    assert response.status_code == 409
    assert "cannot cancel a referral that is closed" in response.get_data(as_text=True)


def test_a_referral_is_handed_over_to_a_colleague(login):
    referral = raise_stroke(login(REFERRER))
    url = f"/referrals/{referral.id}"
    night = login(NIGHT)
    night.post(f"{url}/acknowledge")
    page = night.get(url).get_data(as_text=True)
    assert "Stroke Registrar (days)" in page and "Stroke Consultant" in page
    assert night.post(f"{url}/hand-over", data={"to": ""}).status_code == 422
    consultant = re.search(r'<option value="(\d+)">Stroke Consultant</option>', page).group(1)
    assert night.post(f"{url}/hand-over", data={"to": consultant}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Referral, referral.id).assigned_specialist.name == "Stroke Consultant"


def test_an_unknown_specialty_on_the_form_is_named_at_the_specialty(login):
    response = login(REFERRER).post("/referrals/new", data=stroke_form(specialty="dermatology"))
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "specialty") == \
        "'dermatology' is not one of major_trauma, neurosurgery, spinal, stroke, vascular."
    assert referral_count() == 0


def _accepted(login) -> tuple[Referral, object, str]:
    referral = raise_stroke(login(REFERRER))
    night = login(NIGHT)
    url = f"/referrals/{referral.id}"
    assert night.post(f"{url}/acknowledge").status_code == 302
    return referral, night, url


def decisions() -> int:
    from models import Decision

    db.session.expire_all()
    return db.session.scalar(select(func.count(Decision.id)))


def test_a_transfer_without_destination_is_named_at_the_field_and_nothing_is_signed(login):
    referral, night, url = _accepted(login)
    response = night.post(f"{url}/decide", data={
        "outcome": "transfer", "destination_hospital": "", "rationale": "M1 occlusion",
        "password": DEMO_PASSWORD})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "decide.destination_hospital") == \
        "A transfer needs a destination hospital."
    assert decisions() == 0
    db.session.expire_all()
    assert db.session.get(Referral, referral.id).state == "under_review"
    assert [e.kind for e in db.session.get(Referral, referral.id).events] == \
        ["raise", "acknowledge"]


def test_a_decision_without_rationale_on_the_form_stores_nothing(login):
    referral, night, url = _accepted(login)
    response = night.post(f"{url}/decide", data={
        "outcome": "advice_only", "advice": "Aspirin", "rationale": "  ",
        "password": DEMO_PASSWORD})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "decide.rationale") == \
        "Enter the rationale."
    assert decisions() == 0
    db.session.expire_all()
    assert db.session.get(Referral, referral.id).state == "under_review"


def test_someone_who_may_not_decide_is_refused_before_the_form_is_checked(login):
    referral, _night, url = _accepted(login)
    # Not the assigned specialist: refused (403), not asked for a password or rationale.
    day = login(DAY).post(f"{url}/decide", data={"outcome": "transfer"})
    assert day.status_code == 403
    assert "password" not in day.get_data(as_text=True).lower()
    assert login(REFERRER).post(f"{url}/decide", data={}).status_code == 403
    assert decisions() == 0


def test_a_referral_id_too_large_for_the_database_is_a_404_page(login):
    client = login(REFERRER)
    for path in (f"/referrals/{2**63}", f"/referrals/{2**63}/status.json"):
        assert client.get(path).status_code == 404
    assert client.post(f"/referrals/{2**31}/cancel", data={"reason": "x"}).status_code == 404


@pytest.mark.clock("2026-07-01T03:00:00+00:00")  # 04:00 BST
def test_in_summer_the_page_shows_uk_time_an_hour_ahead_of_the_stored_utc(login,
                                                                          clock):
    client = login(REFERRER)
    referral = raise_stroke(client, onset_at="2026-07-01T03:30", arrived_at="2026-07-01T03:50")
    assert referral.created_at.isoformat() == "2026-07-01T03:00:00+00:00"
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    # Onset 03:30 BST = 02:30 UTC; thrombolysis closes 4.5 h later: 08:00 BST (07:00 UTC).
    assert "Thrombolysis closes Wed 08:00" in text
    timeline = page[page.index('id="timeline"'):]
    assert '<time datetime="2026-07-01T03:00:00+00:00">01 Jul 04:00</time>' in timeline
