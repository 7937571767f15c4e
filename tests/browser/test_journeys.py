"""The journeys of issue 16 in Chromium, each on a 375x812 touch phone (taps) and a
1366x768 desktop (clicks), against the app served by the `live_server` fixture, with
Prism as Twilio and the test Orthanc as Pilgrim's PACS.

1. A referrer raises a stroke referral, mistypes the NHS number, sees the in-page
   error, fixes it, sends, and links today's CT from the referral page.
2. The specialist opens the accept link from the SMS Twilio was sent, accepts, reads
   the CT in the stroke window, flags a key image and asks a question; the referrer,
   whose page stays open, answers; the specialist signs a decision; the referrer's page
   shows it with no reload; the decision record downloads; departure and arrival.
3. The audit lead filters the dashboard and downloads the referrals CSV.
4. An admin imports a rota with one bad row: it is named with its reason and nothing is
   imported (the rota page's rule: every row or none); the fixed file imports.

Every journey fails on a script error in any of its pages ("pageerror") or any 5xx
answer. The test plays the scheduler (the sweep, the PDF renderer) where the journey
needs it; it waits for pages and elements, never for a set time.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import func, select

from extensions import db
from models import Decision, DecisionRecord, KeyImage, Referral, RotaShift
from tests.audit.conftest import audit_set, make_referral  # noqa: F401 - shared fixtures
from tests.browser.test_accessibility import ADMIN, AUDIT, VIEWPORTS, sign_in
from tests.browser.test_viewer import REFERRER, SPECIALIST
from tests.images.conftest import (
    PATIENT_ID,
    SAMPLE_FAMILY_NAME,
    SAMPLE_STUDY,
    TODAY_STUDY_DESCRIPTION,
    uk_today,
)
from tests.paging.helpers import run_sweep, user
from tests.services import wait_until
from views.audit import REFERRAL_COLUMNS
from workflow.audit import records
from workflow.imaging import studies
from workflow.referrals import nhs_number
from workflow.seed import DEMO_PASSWORD
from workflow.times import local, now

# The suite's night (03:00, the night registrar on call), with time moving on for the
# live pages' clocks and heartbeats.
# Each journey runs twice: on a phone against SQLite and on a desktop against PostgreSQL,
# so each size and each database is covered without all four pairs (the page's markup does
# not depend on the database, nor the database's behaviour on the screen size).
pytestmark = [
    pytest.mark.browser, pytest.mark.clock(tick=True),
    pytest.mark.parametrize("database_url,viewport", [
        ("sqlite", "phone"), pytest.param("postgres", "desktop", marks=pytest.mark.postgres),
    ], indirect=True),
]
MISTYPED_NHS = "9434765918"  # 9434765919 with its last digit wrong
GOOD_NHS = "9434765919"


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request) -> str:
    return request.param


@pytest.fixture
def app_config(request):
    # Streams of 10 s with a heartbeat each second, so a closed page's stream ends
    # within a second; a page is out of date only after the usual 30 s.
    config = {"LIVE_STREAM_SECONDS": 10, "LIVE_POLL_MS": 200, "LIVE_HEARTBEAT_SECONDS": 1}
    if request.node.get_closest_marker("prism"):
        config.update(request.getfixturevalue("twilio").app_config())
    return config


def _requests_in_flight() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


@pytest.fixture(autouse=True)
def streams_end_before_the_database_goes(app):
    """After the pages and the server have gone (torn down first), wait for the server's
    request threads, live streams included, to end: none may reach for the database
    after the test's database is gone."""
    yield
    db.session.rollback()  # a failed test's read must not hold the SQLite lock they wait on
    wait_until(lambda: not _requests_in_flight(), 10, "the live server's open requests")


class Screen:
    """One person's browser: a context of the test's viewport, its page, and what went
    wrong in it (script errors, 5xx answers)."""

    def __init__(self, browser, viewport: str):
        self.touch = viewport == "phone"
        self.context = browser.new_context(viewport=VIEWPORTS[viewport],
                                           has_touch=self.touch, is_mobile=self.touch,
                                           device_scale_factor=2 if self.touch else 1)
        self.problems: list[str] = []
        self.context.on("response", self._answered)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))

    def _answered(self, response) -> None:
        if response.status >= 500:
            self.problems.append(f"{response.status} {response.request.method} {response.url}")

    def press(self, locator) -> None:
        """A tap on the phone, a click on the desktop."""
        if self.touch:
            locator.tap()
        else:
            locator.click()


@pytest.fixture
def screens(browser, live_server, viewport):
    """Factory: screen(email) -> a Screen signed in as ``email`` (none: signed out)."""
    opened: list[Screen] = []

    def screen(email: str = "") -> Screen:
        opened.append(Screen(browser, viewport))
        if email:
            sign_in(opened[-1].page, live_server.url, email)
        return opened[-1]

    yield screen
    for opened_screen in opened:
        opened_screen.context.close()


def assert_nothing_went_wrong(*seen: Screen) -> None:
    assert [p for s in seen for p in s.problems] == []


def stored(referral_id: int) -> dict:
    """What the database holds for the referral now, as plain values: the test holds no
    transaction afterwards (on SQLite a reader's lock would stall the server's writes)."""
    db.session.expire_all()
    r = db.session.get(Referral, referral_id)
    decision = db.session.scalar(select(Decision).where(Decision.referral_id == referral_id))
    found = {
        "state": r.state, "outcome": r.outcome, "nhs_number": r.nhs_number,
        "specialty": r.specialty.code,
        "specialist": r.assigned_specialist.email if r.assigned_specialist else None,
        "decided_at": r.decided_at, "departed_at": r.departed_at,
        "arrived_at_hub": r.arrived_at_hub,
        "events": [e.kind for e in r.events],
        "studies": [(s.description, s.study_date) for s in r.studies],
        "rationale": decision.rationale if decision else None,
        "key_image_presets": list(db.session.scalars(
            select(KeyImage.preset).where(KeyImage.referral_id == referral_id))),
        "records": [tuple(row) for row in db.session.execute(
            select(DecisionRecord.status, DecisionRecord.pdf)
            .where(DecisionRecord.referral_id == referral_id))],
    }
    db.session.commit()
    return found


# --- 1. The referrer raises a referral and links today's CT -----------------------------


@pytest.mark.orthanc
def test_a_referrer_fixes_a_mistyped_nhs_number_sends_and_links_todays_ct(
        pilgrim, screens, live_server):
    referrer = screens(REFERRER)
    page = referrer.page
    posted = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    page.goto(f"{live_server.url}/referrals/new")
    referrer.press(page.get_by_role("radio", name="Stroke (hyperacute)"))

    nhs = page.locator("#f-patient-nhs_number")
    nhs.fill(MISTYPED_NHS)
    referrer.press(page.locator("#f-patient-family_name"))  # leaving the field checks it
    error = page.locator("#e-patient-nhs_number")
    expect(error).to_have_text(nhs_number.WRONG_CHECK_DIGIT)
    expect(page.locator("#w-patient-nhs_number")).to_have_class(re.compile(r"\binvalid\b"))
    expect(nhs).to_have_attribute("aria-invalid", "true")
    assert posted == []  # the check ran in the page: nothing was sent
    nhs.fill(GOOD_NHS)
    referrer.press(page.locator("#f-patient-family_name"))
    expect(error).to_have_count(0)
    expect(nhs).not_to_have_attribute("aria-invalid", "true")

    # The sample CT's patient: its family name and Pilgrim's local number.
    page.locator("#f-patient-family_name").fill(SAMPLE_FAMILY_NAME)
    page.locator("#f-patient-given_name").fill("Ann")
    page.locator("#f-patient-birth_date").fill("1950-01-01")
    referrer.press(page.locator("#w-patient-sex").get_by_role("radio", name="Female"))
    page.locator("#f-patient-local_number").fill(PATIENT_ID)
    referrer.press(page.locator("#w-onset_certainty").get_by_role("radio", name="Precise"))
    onset = local(now() - timedelta(minutes=80)).strftime("%Y-%m-%dT%H:%M")
    page.locator("#f-onset_at").fill(onset)
    page.locator("#f-question").fill("Left MCA syndrome, NIHSS 14. Thrombectomy?")
    page.locator("#f-stroke-nihss").fill("14")
    page.locator("#f-stroke-pre_stroke_mrs").fill("1")
    page.locator("#f-stroke-anticoagulant").select_option("none")
    referrer.press(page.locator("#w-stroke-thrombolysis_given")
                   .get_by_role("radio", name="No"))
    for done in ("CT", "CTA"):
        referrer.press(page.locator("#w-stroke-imaging").get_by_role("checkbox", name=done,
                                                                     exact=True))
    referrer.press(page.get_by_role("button", name="Send referral"))
    page.wait_for_url(re.compile(r"/referrals/\d+$"))
    expect(page.locator(".flash").first).to_contain_text("raised. The specialist is being paged")
    referral_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#case")).to_contain_text(f"NHS {GOOD_NHS[:3]} {GOOD_NHS[3:6]} "
                                                  f"{GOOD_NHS[6:]}")

    # From the referral page: search the network's PACS, today's CT comes ticked.
    images = page.locator("#images")
    expect(images).to_contain_text("No studies linked yet.")
    referrer.press(images.get_by_role("button", name="Search studies"))
    page.wait_for_url(f"**/referrals/{referral_id}/studies/search*")
    found = page.locator("ul.study-choices li")
    expect(found).to_have_count(2)  # today's CT and the older sample CT
    today = found.filter(has_text=TODAY_STUDY_DESCRIPTION)
    expect(today.locator(".pill.ok")).to_have_text("today")
    expect(today.get_by_role("checkbox")).to_be_checked()
    expect(found.filter(has_not_text=TODAY_STUDY_DESCRIPTION)
           .get_by_role("checkbox")).not_to_be_checked()
    referrer.press(page.get_by_role("button", name="Link ticked studies"))
    page.wait_for_url(re.compile(rf"/referrals/{referral_id}#images$"))
    expect(page.locator(".flash")).to_have_text("1 study linked.")
    expect(page.locator("#images ul.studies li")).to_have_count(1)
    expect(page.locator("#images ul.studies")).to_contain_text(TODAY_STUDY_DESCRIPTION)

    raised = stored(referral_id)
    assert (raised["nhs_number"], raised["specialty"]) == (GOOD_NHS, "stroke")
    assert raised["studies"] == [(TODAY_STUDY_DESCRIPTION, uk_today())]
    assert_nothing_went_wrong(referrer)


# --- 2. The specialist, from the SMS to the patient's arrival ---------------------------


def _accept_link_from_the_sms(twilio, base_url: str) -> str:
    """The accept link in the SMS Twilio was asked to send the specialist, on this
    server (PUBLIC_BASE_URL is the deployed address)."""
    phone_number = user(SPECIALIST).phone
    bodies = [r.field("Body") for r in twilio.sent("Messages") if r.field("To") == phone_number]
    db.session.commit()
    assert len(bodies) == 1, bodies
    link = re.search(r"https?://\S+(/ack/\S+)", bodies[0])
    assert link, bodies[0]
    return base_url + link.group(1)


def wait_shown(page, slice_number: int, preset: str) -> None:
    """Wait until the viewer has drawn that slice in that preset (the canvas's data-
    attributes, as tests/browser/test_viewer.py reads them; no pixels are read here)."""
    page.wait_for_function(
        """([n, p]) => { const c = document.getElementById('viewer-canvas');
            return c.dataset.paintedSlice === String(n) &&
                   (c.dataset.painted || '').includes('preset=' + p + '&'); }""",
        arg=[slice_number, preset])


def _scroll_slices(screen: Screen, notches: int) -> None:
    """Move through the slices as each device does: a finger swipes up on the phone, the
    wheel turns on the desktop."""
    page, canvas = screen.page, screen.page.locator("#viewer-canvas")
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.8
    if not screen.touch:
        canvas.hover()
        for _ in range(notches):
            page.mouse.wheel(0, 120)
        return
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                          "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 11):
        cdp.send("Input.dispatchTouchEvent", {
            "type": "touchMove", "touchPoints": [{"x": x, "y": y - 12 * notches * step / 10}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


@pytest.mark.orthanc
@pytest.mark.prism
def test_the_specialist_takes_the_sms_link_reads_the_ct_asks_decides_and_the_patient_moves(
        referral, twilio, screens, live_server):
    referral_id, reference = referral.id, referral.reference
    studies.link(referral_id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    run_sweep()  # the scheduler pages tier 1: the night registrar, by SMS through Twilio
    accept_link = _accept_link_from_the_sms(twilio, live_server.url)

    referrer = screens(REFERRER)  # the referrer's page stays open throughout
    their = referrer.page
    their.goto(f"{live_server.url}/referrals/{referral_id}")
    expect(their.locator("#case")).to_contain_text("Paging specialist")
    expect(their.locator("#live-status")).to_contain_text("Updated")

    specialist = screens()  # signed out, as on a phone that has just had the SMS
    page = specialist.page
    page.goto(accept_link)
    page.wait_for_url(re.compile(r"/login\?next=/ack/"))
    page.fill("input[name=email]", SPECIALIST)
    page.fill("input[name=password]", DEMO_PASSWORD)
    specialist.press(page.locator("button[type=submit]"))
    page.wait_for_url(f"**{accept_link[len(live_server.url):]}")
    expect(page.locator("#accept-summary")).to_contain_text(reference)
    specialist.press(page.get_by_role("button", name="I'll take this referral"))
    page.wait_for_url(f"**/referrals/{referral_id}")
    expect(page.locator("#case")).to_contain_text("Accepted, under review")
    expect(their.locator("#case")).to_contain_text("Accepted, under review")

    # The CT, in the stroke window; through the slices; one flagged as the key image.
    specialist.press(page.locator("#review-images"))
    page.wait_for_url(f"**/referrals/{referral_id}/review")
    wait_shown(page, 15, "brain")
    page.select_option("#viewer-preset", "stroke")
    wait_shown(page, 15, "stroke")
    expect(page.locator("#viewer-status")).to_contain_text("Slice 15/28 · Stroke 40/40")
    _scroll_slices(specialist, 3)
    page.wait_for_function("() => Number(document.getElementById('viewer-canvas')"
                           ".dataset.slice) > 15")
    slice_number = int(page.eval_on_selector("#viewer-canvas", "c => c.dataset.slice"))
    wait_shown(page, slice_number, "stroke")
    key = page.locator("#viewer-key")
    expect(key).to_have_attribute("aria-pressed", "false")
    specialist.press(key)
    expect(key).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#key-list li")).to_have_count(1)
    expect(page.locator("#key-list")).to_contain_text(f"slice {slice_number}/28, stroke")

    # A question for the referrer, whose open page hears of it and answers.
    specialist.press(page.get_by_role("link", name="← Referral"))
    page.wait_for_url(f"**/referrals/{referral_id}")
    specialist.press(page.locator("#actions summary", has_text="Request information"))
    page.locator("#f-ri-question").fill("Is she on a DOAC? When was the last dose?")
    specialist.press(page.get_by_role("button", name="Send question"))
    expect(page.locator(".flash")).to_have_text("Your question has been sent to the referrer.")
    expect(their.locator("#thread")).to_contain_text("Is she on a DOAC?")
    expect(their.locator("#case")).to_contain_text("Info requested")
    answer = their.locator("#f-provide-info-text")
    expect(answer).to_be_visible()
    answer.fill("No anticoagulant; on aspirin only.")
    referrer.press(their.locator(".action-provide-info").get_by_role("button", name="Send"))
    expect(their.locator(".flash")).to_have_text("Your answer has been sent to the specialist.")
    expect(their.locator("#live-status")).to_contain_text("Updated")
    their.evaluate("() => { window.notReloaded = true; }")

    # The decision, signed: refused without the signer's password, then signed.
    expect(page.locator("#thread")).to_contain_text("on aspirin only")
    decide = page.locator(".action-decide")
    expect(decide).to_be_visible()
    specialist.press(decide.get_by_role("radio", name="Transfer"))
    decide.locator("#f-decide-rationale").fill("Left M1 occlusion on CTA, NIHSS 14: "
                                               "thrombectomy at QMC.")
    specialist.press(decide.get_by_role("button", name="Sign decision"))
    expect(page.locator("#w-decide-password .error")).to_have_text(
        "Enter your password to sign the decision.")
    assert stored(referral_id)["state"] == "under_review"
    decide = page.locator(".action-decide")
    expect(decide.get_by_role("radio", name="Transfer")).to_be_checked()  # kept
    decide.locator("#f-decide-password").fill(DEMO_PASSWORD)
    specialist.press(decide.get_by_role("button", name="Sign decision"))
    expect(page.locator(".flash")).to_have_text("The decision is recorded.")

    # On the referrer's open page, with no reload: the decision, then its record.
    expect(their.locator("#decision-part")).to_contain_text("Decision: Transfer")
    expect(their.locator("#decision-part")).to_contain_text("thrombectomy at QMC")
    expect(their.locator("#case")).to_contain_text("Decided")
    expect(their.locator("#decision-part")).to_contain_text("being prepared")
    assert records.render_pending() == 1  # the scheduler renders the PDF
    pdf_link = their.get_by_role("link", name="Decision record v1 (PDF)")
    expect(pdf_link).to_be_visible()
    assert their.evaluate("() => window.notReloaded") is True
    with their.expect_download() as downloading:
        referrer.press(pdf_link)
    pdf = Path(downloading.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert reference in text and "thrombectomy at QMC" in text

    # The patient leaves Pilgrim (the referrer) and arrives at QMC (the specialist).
    referrer.press(their.locator("#actions summary", has_text="Patient departed"))
    referrer.press(their.get_by_role("button", name="Record departure"))
    expect(their.locator(".flash")).to_have_text("Departure recorded.")
    expect(page.locator("#case")).to_contain_text("In transfer")
    specialist.press(page.locator("#actions summary", has_text="Patient arrived"))
    specialist.press(page.get_by_role("button", name="Record arrival"))
    expect(page.locator(".flash")).to_have_text("Arrival recorded; the referral is closed.")
    expect(their.locator("#case")).to_contain_text("Closed")

    done = stored(referral_id)
    assert (done["state"], done["outcome"], done["specialist"]) == \
        ("closed", "transfer", SPECIALIST)
    assert done["decided_at"] <= done["departed_at"] <= done["arrived_at_hub"]
    kinds = done["events"]
    assert kinds.index("request_info") < kinds.index("provide_info") < kinds.index("decide") \
        < kinds.index("depart") < kinds.index("arrive")
    assert done["rationale"].startswith("Left M1 occlusion")
    assert done["key_image_presets"] == ["stroke"]
    assert done["records"] == [("ready", pdf)]
    assert_nothing_went_wrong(referrer, specialist)


# --- 3. The audit lead --------------------------------------------------------------------


def test_the_audit_lead_filters_the_dashboard_and_downloads_the_referrals_csv(
        audit_set, screens, live_server):  # noqa: F811
    lead = screens(AUDIT)
    page = lead.page
    page.goto(f"{live_server.url}/audit/")
    expect(page.get_by_role("heading", name="5 referrals")).to_be_visible()
    page.locator("#f-date_from").fill("2026-01-15")
    page.locator("#f-date_to").fill("2026-02-28")
    page.locator("#f-specialty").select_option("stroke")
    lead.press(page.get_by_role("button", name="Show"))
    page.wait_for_url(re.compile(r"date_from=2026-01-15&date_to=2026-02-28&specialty=stroke"))
    expect(page.get_by_role("heading", name="3 referrals")).to_be_visible()
    listed = page.locator("#referrals tbody tr td:first-child")
    expect(listed).to_have_text(["A4", "A3", "A2"])  # newest first

    with page.expect_download() as downloading:
        lead.press(page.get_by_role("link", name="Referrals CSV"))
    download = downloading.value
    assert download.suggested_filename == "referrals.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(REFERRAL_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["reference"], r["specialty"]) for r in rows] == \
        [("A2", "stroke"), ("A3", "stroke"), ("A4", "stroke")]
    assert_nothing_went_wrong(lead)


# --- 4. The admin imports the rota --------------------------------------------------------

ROTA_HEADER = "email,hub,specialty,tier,start,end\n"
ROTA_GOOD = ("stroke.day@qmc.demo.nhs.uk,QMC,stroke,1,2026-12-20 08:00,2026-12-20 20:00\n",
             "stroke.night@qmc.demo.nhs.uk,QMC,stroke,1,2026-12-20 20:00,2026-12-21 08:00\n")
ROTA_BAD = "referrer@pil.demo.nhs.uk,QMC,stroke,2,2026-12-20 08:00,2026-12-21 08:00\n"


def _upload_rota(screen: Screen, text: str) -> None:
    screen.page.locator("input[type=file]").set_input_files(
        files=[{"name": "rota.csv", "mimeType": "text/csv", "buffer": text.encode()}])
    screen.press(screen.page.get_by_role("button", name="Import"))
    screen.page.wait_for_load_state()


def _shifts() -> int:
    count = db.session.scalar(select(func.count(RotaShift.id)))
    db.session.commit()
    return count


def test_an_admin_imports_a_rota_with_one_bad_row_then_the_fixed_file(network, screens,
                                                                      live_server):
    before = _shifts()
    admin = screens(ADMIN)
    page = admin.page
    page.goto(f"{live_server.url}/admin/rota")
    expect(page.locator("main")).to_contain_text("Every row is imported, or none.")

    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        _upload_rota(admin, ROTA_HEADER + ROTA_GOOD[0] + ROTA_BAD + ROTA_GOOD[1])
    assert answered.value.status == 422
    refused = page.locator(".error.banner")
    expect(refused).to_contain_text("Nothing was imported.")
    expect(refused.locator("li")).to_have_text(
        ["Line 3: referrer@pil.demo.nhs.uk is not a specialist"])
    assert _shifts() == before  # the good rows were not imported either
    expect(page.locator("table")).not_to_contain_text("20 Dec")

    _upload_rota(admin, ROTA_HEADER + "".join(ROTA_GOOD))
    page.wait_for_url("**/admin/rota")
    expect(page.locator(".flash")).to_have_text("Imported 2 shifts.")
    expect(page.locator(".error.banner")).to_have_count(0)
    assert _shifts() == before + 2
    expect(page.locator("table tbody tr", has_text="20 Dec")).to_have_count(2)
    assert_nothing_went_wrong(admin)
