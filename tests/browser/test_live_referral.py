"""The referrer's open referral page in Chromium keeps itself current: the specialist's
message and decision appear with no reload, and a page cut off from the server says it
is out of date and turns its forms off until it hears again."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from extensions import db
from tests.browser.test_viewer import REFERRER, SPECIALIST, sign_in
from tests.workflow.helpers import SIGNED, stroke_payload, user
from workflow.referrals import actions as referrals

# The suite's night, with time moving on (the page's clocks and heartbeats need it).
pytestmark = [pytest.mark.browser, pytest.mark.clock(tick=True)]

# How long a page may take to show a change on its own. Not a speed check (bench_live
# measures that): long enough for a stream reconnecting every 2 s on a loaded machine.
ARRIVES = 6000


@pytest.fixture
def app_config():
    # Streams of 2 s (so a cut-off stream is noticed soon); out of date after 3 s.
    return {"LIVE_STREAM_SECONDS": 2, "LIVE_POLL_MS": 200, "LIVE_HEARTBEAT_SECONDS": 1,
            "LIVE_STALE_SECONDS": 3}


@pytest.fixture(autouse=True)
def streams_end_before_the_database_goes(app):
    """After the browser has gone (torn down first), give its streams a heartbeat (1 s)
    to notice and end, so none opens a connection after the test's database is gone."""
    yield
    time.sleep(1.5)


@pytest.fixture
def open_referral(network, live_server, phone):
    """A raised referral, open on the referrer's phone; returns its id."""
    referral_id = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    db.session.commit()  # SQLite: the test holds no transaction while the server works
    sign_in(phone, live_server.url, REFERRER)
    phone.goto(f"{live_server.url}/referrals/{referral_id}")
    expect(phone.locator("#live-status")).to_contain_text("Updated")
    phone.evaluate("() => { window.notReloaded = true; }")
    return referral_id


def test_the_specialists_message_and_decision_appear_without_a_reload(open_referral, phone):
    specialist = user(SPECIALIST)
    referrals.acknowledge(open_referral, specialist)
    expect(phone.locator("#case")).to_contain_text("Accepted, under review", timeout=ARRIVES)
    referrals.post_message(open_referral, specialist, {"text": "Is she on a DOAC?"})
    db.session.commit()
    # Within 2 s of the commit, in the open page.
    expect(phone.locator("#thread")).to_contain_text("Is she on a DOAC?", timeout=ARRIVES)
    referrals.decide(open_referral, specialist, {
        "outcome": "advice_only", "advice": "Aspirin 300 mg", "rationale": "Stroke mimic",
        **SIGNED})
    db.session.commit()
    expect(phone.locator("#decision-part")).to_contain_text("Stroke mimic", timeout=ARRIVES)
    expect(phone.locator("#case")).to_contain_text("Decided")
    assert phone.evaluate("() => window.notReloaded") is True


def test_a_page_cut_off_from_the_server_says_so_and_turns_its_forms_off(open_referral,
                                                                        phone):
    send = phone.locator("#messages form button[type=submit]")
    expect(send).to_be_enabled()
    phone.route("**/events*", lambda route: route.abort())  # the stream and its polling
    stale = phone.locator("[data-live-stale]")
    expect(stale).to_be_visible(timeout=10_000)
    expect(stale).to_contain_text("out of date")
    expect(send).to_be_disabled()
    expect(phone.locator("#messages textarea")).to_be_disabled()

    phone.unroute("**/events*")
    expect(stale).to_be_hidden(timeout=20_000)
    expect(send).to_be_enabled()
    assert phone.evaluate("() => window.notReloaded") is True


def test_the_clocks_tick_in_the_page_and_warn_before_a_window_closes(open_referral, phone):
    # The page counts from the instants the server gave it: move them, and the next
    # tick (each second) shows what they mean, with no request to the server.
    since = phone.locator("#clocks [data-since]").nth(2)  # since referral
    phone.evaluate("""() => {
        const now = Date.parse(document.getElementById('live-status').dataset.serverNow);
        const clocks = document.querySelectorAll('#clocks [data-since]');
        clocks[2].dataset.since = new Date(now - (2 * 60 + 5) * 60000).toISOString();
        const lysis = document.querySelector('#clocks [data-closes]');
        lysis.dataset.closes = new Date(now + 20.5 * 60000).toISOString();
    }""")
    expect(since).to_have_text("2 h 05 min", timeout=3000)
    warning = phone.locator("[data-window-warning]")
    expect(warning).to_be_visible(timeout=3000)
    expect(warning).to_contain_text("Thrombolysis window closes in 20 min")
    # The next paging step counts down too ("due 03:00 (in 3 min)").
    phone.evaluate("""() => {
        const now = Date.parse(document.getElementById('live-status').dataset.serverNow);
        document.querySelector('#paging [data-countdown]').dataset.countdown =
            new Date(now + 3.5 * 60000).toISOString();
    }""")
    expect(phone.locator("#paging [data-countdown]").first).to_have_text("(in 3 min)",
                                                                        timeout=3000)


def test_a_new_referral_appears_on_the_open_worklist(network, live_server, phone):
    sign_in(phone, live_server.url, SPECIALIST)
    phone.goto(f"{live_server.url}/worklist")
    expect(phone.locator("#live-status")).to_contain_text("Updated")
    expect(phone.locator("#section-awaiting .rows li")).to_have_count(0)
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    reference = referral.reference
    db.session.commit()
    expect(phone.locator("#section-awaiting")).to_contain_text(reference, timeout=ARRIVES)


def test_a_hidden_page_stops_listening_so_its_session_can_time_out(open_referral, phone):
    asked = []
    phone.on("request", lambda r: asked.append(r.url) if "/events" in r.url else None)
    phone.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    phone.wait_for_timeout(5000)  # streams last 2 s: an open page would have reconnected
    assert asked == []
    with phone.expect_request(lambda r: "/events" in r.url, timeout=5000):
        phone.evaluate("""() => {
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
            document.dispatchEvent(new Event('visibilitychange'));
        }""")


def test_nobody_answers_then_the_referrer_pages_again_from_the_open_page(open_referral,
                                                                          phone, clock):
    from datetime import timedelta

    from tests.paging.helpers import run_sweep

    run_sweep()  # tier 1
    for _ in range(3):  # tier 2, the duty manager, nobody: unanswered
        clock.shift(timedelta(minutes=5))
        run_sweep()
    run_sweep()  # the alarms
    db.session.commit()
    expect(phone.locator("#case")).to_contain_text("Unanswered", timeout=3000)
    # The repeat alarm is on the paging card, counting down; "Page again" is offered.
    expect(phone.locator("#paging")).to_contain_text("Repeat alarm 1")
    expect(phone.locator("#paging")).to_contain_text("Duty manager:")
    again = phone.locator("#actions form[action$='/page-again'] button[type=submit]")
    expect(again).to_be_visible()
    again.click()
    phone.wait_for_url(f"**/referrals/{open_referral}")
    expect(phone.locator("#case")).to_contain_text("Paging specialist")
    expect(phone.locator("#timeline")).to_contain_text("Paged again")


def test_without_eventsource_the_page_polls_and_still_updates(network, live_server, phone):
    phone.add_init_script("delete window.EventSource;")
    referral_id = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    db.session.commit()
    sign_in(phone, live_server.url, REFERRER)
    with phone.expect_request(lambda r: "/events?once=1" in r.url, timeout=5000):
        phone.goto(f"{live_server.url}/referrals/{referral_id}")
    referrals.post_message(referral_id, user(SPECIALIST), {"text": "Polling heard this"})
    db.session.commit()
    expect(phone.locator("#thread")).to_contain_text("Polling heard this", timeout=8000)
    expect(phone.locator("[data-live-stale]")).to_be_hidden()


def test_the_specialists_open_page_swaps_in_the_decide_form_when_the_referrer_answers(
        network, live_server, phone):
    # The specialist's actions hold the hand-over <select> with nothing chosen: left as
    # it came, it is not "being typed in", so the part is swapped for the fresh one.
    specialist = user(SPECIALIST)
    referral_id = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.acknowledge(referral_id, specialist)
    referrals.request_info(referral_id, specialist, {"question": "Last DOAC dose?"})
    db.session.commit()
    sign_in(phone, live_server.url, SPECIALIST)
    phone.goto(f"{live_server.url}/referrals/{referral_id}")
    expect(phone.locator("#live-status")).to_contain_text("Updated")
    expect(phone.locator("#actions select[name=to]")).to_have_value("")
    expect(phone.locator(".action-decide")).to_have_count(0)
    referrals.provide_info(referral_id, user(REFERRER), {"text": "None: aspirin only"})
    db.session.commit()
    expect(phone.locator("#thread")).to_contain_text("aspirin only", timeout=ARRIVES)
    expect(phone.locator(".action-decide")).to_be_visible(timeout=ARRIVES)
    expect(phone.locator("[data-live-changed]")).to_be_hidden()

    # A colleague chosen in that <select> is the specialist's own input: kept, and said.
    colleague = phone.locator("#actions select[name=to] option").nth(1).get_attribute("value")
    phone.locator("#actions summary", has_text="Hand over").click()
    phone.locator("#actions select[name=to]").select_option(colleague)
    phone.locator("#actions select[name=to]").evaluate("s => s.blur()")
    referrals.post_message(referral_id, user(REFERRER), {"text": "CTA on its way"})
    db.session.commit()
    expect(phone.locator("#thread")).to_contain_text("CTA on its way", timeout=ARRIVES)
    expect(phone.locator("[data-live-changed]")).to_be_visible()
    expect(phone.locator("#actions select[name=to]")).to_have_value(colleague)


def test_someone_opening_the_referral_appears_as_also_viewing_without_a_reload(
        open_referral, phone):
    from workflow.referrals import viewers
    from workflow.times import now

    specialist = user(SPECIALIST)
    specialist_id, name = specialist.id, specialist.name
    db.session.commit()
    expect(phone.locator("#case")).not_to_contain_text("Also viewing now")
    viewers.note(open_referral, specialist_id, now())  # what the specialist's stream does
    # (committed: SQLite, the test holds no transaction while the server works)
    expect(phone.locator("#also-viewing")).to_have_text(f"Also viewing now: {name}",
                                                        timeout=3000)
    assert phone.evaluate("() => window.notReloaded") is True


def test_an_action_the_user_opened_stays_open_when_the_page_updates(network, live_server,
                                                                    phone):
    """A swap brings the fresh copy of the actions, but a form the user had opened (a
    <details>) stays open: it snapped shut under their finger before (the journey's
    "Record arrival" tap and the hand-over select timed out on a loaded machine)."""
    specialist = user(SPECIALIST)
    referral_id = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    referrals.acknowledge(referral_id, specialist)
    db.session.commit()
    sign_in(phone, live_server.url, SPECIALIST)
    phone.goto(f"{live_server.url}/referrals/{referral_id}")
    expect(phone.locator("#live-status")).to_contain_text("Updated")
    phone.locator("#actions summary", has_text="Hand over").click()
    hand_over = phone.locator("#actions select[name=to]")
    expect(hand_over).to_be_visible()
    # Marks the part as it is now: a swap replaces the node, and the mark goes with it.
    phone.evaluate("() => { document.getElementById('actions-part').dataset.old = '1'; }")
    referrals.post_message(referral_id, user(REFERRER), {"text": "CTA on its way"})
    db.session.commit()
    expect(phone.locator("#thread")).to_contain_text("CTA on its way", timeout=ARRIVES)
    expect(phone.locator("#actions-part[data-old]")).to_have_count(0)  # swapped
    expect(hand_over).to_be_visible()
    # The ones the user left alone are as the server sends them: decide open, the rest shut.
    expect(phone.locator(".action-decide[open]")).to_have_count(1)
    expect(phone.locator(".action-request-info[open]")).to_have_count(0)
    expect(phone.locator("[data-live-changed]")).to_be_hidden()  # nothing typed: no note
