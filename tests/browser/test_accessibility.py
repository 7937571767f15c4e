"""Every main page in Chromium, on a 375x812 phone and a 1366x768 desktop, in the dark
and the light theme (the app follows the device's prefers-color-scheme): axe-core finds
no serious or critical violation; the phone header is one line; the worklist, my
referrals and the rota do not scroll sideways at 320 px; after a validation error the
keyboard starts at the error summary. Screenshots go to $GOLDENHOUR_SCREENSHOTS (see SHOTS).

axe-core is installed by `make test-deps` into tools/axe (npm) and injected from disk
as an init script (never fetched from the internet; the page's own CSP stays on).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.paging.helpers import raise_stroke, run_sweep, user
from tests.services import missing_service
from workflow.seed import DEMO_PASSWORD

# At the suite's night (the clock fixture): the night registrar is on call whatever the
# wall clock says.
pytestmark = [pytest.mark.browser, pytest.mark.clock(tick=True)]
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots are saved only when asked (a test run leaves the tree as it was):
#   GOLDENHOUR_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest \
#       tests/browser/test_accessibility.py
SHOTS = os.environ.get("GOLDENHOUR_SCREENSHOTS", "")
REFERRER = "referrer@pil.demo.nhs.uk"
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
AUDIT = "audit@em.demo.nhs.uk"
ADMIN = "admin@em.demo.nhs.uk"
VIEWPORTS = {"phone": {"width": 375, "height": 812}, "desktop": {"width": 1366, "height": 768}}
# Pages to save as screenshots (dark theme): path key -> file stem.
SCREENSHOTS = {"accept": "accept", "pager": "pager-inbox", "worklist": "worklist",
               "audit": "audit"}


@pytest.fixture
def axe_source() -> Path:
    if not AXE.exists():
        missing_service(f"{AXE} is missing; run `make test-deps` (npm install axe-core)")
    return AXE


@pytest.fixture
def story(network):
    """A paged stroke referral: its id and the accept link's path."""
    from datetime import timedelta

    from extensions import db
    from models import Delivery
    from workflow.times import now

    onset = (now() - timedelta(minutes=95)).replace(microsecond=0).isoformat()
    referral = raise_stroke(onset_at=onset, onset_certainty="precise",
                            question="Left MCA syndrome, NIHSS 14. Thrombectomy?")
    run_sweep()
    link = db.session.query(Delivery.link).filter(
        Delivery.referral_id == referral.id, Delivery.recipient_id == user(SPECIALIST).id,
        Delivery.link != "").first()[0]
    rid = referral.id
    db.session.commit()
    return {"referral": rid, "accept": link[link.index("/ack/"):]}


def pages_for(story: dict) -> dict[str, list[tuple[str, str]]]:
    """email -> [(key, path)] of the main pages each person sees."""
    rid = story["referral"]
    return {
        "": [("login", "/login")],
        REFERRER: [("home", "/"), ("new", "/referrals/new"), ("mine", "/referrals/mine"),
                   ("referral", f"/referrals/{rid}")],
        SPECIALIST: [("accept", story["accept"]), ("pager", "/pager"),
                     ("worklist", "/worklist"), ("review", f"/referrals/{rid}/review")],
        AUDIT: [("audit", "/audit/")],
        ADMIN: [("admin", "/admin/"), ("users", "/admin/users"), ("hospitals", "/admin/hospitals"),
                ("rota", "/admin/rota"), ("status", "/admin/status"),
                ("escalation", "/admin/escalation"), ("pacs", "/admin/pacs/")],
    }


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def serious_violations(page) -> list[dict]:
    """axe's serious and critical violations on the page (its colour-contrast rule ran)."""
    found = page.evaluate("""async () => {
        const result = await axe.run(document);
        return {checked: result.passes.map(p => p.id).concat(result.violations.map(v => v.id)),
                violations: result.violations
                  .filter(v => v.impact === 'serious' || v.impact === 'critical')
                  .map(v => ({id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' +
                                                              (n.failureSummary || ''))}))};
    }""")
    assert "color-contrast" in found["checked"], found["checked"]
    return found["violations"]


# The markup is the same whichever database is behind it, so the four looks are checked
# on SQLite only (the journeys and the live-page tests run on both databases).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_every_main_page_has_no_serious_accessibility_violation(
        story, live_server, browser, axe_source, viewport, theme, database_url):
    found = {}
    # one set of screenshots, when asked for
    save = bool(SHOTS) and theme == "dark" and database_url.startswith("sqlite")
    for email, pages in pages_for(story).items():
        context = browser.new_context(viewport=VIEWPORTS[viewport], color_scheme=theme,
                                      has_touch=viewport == "phone",
                                      is_mobile=viewport == "phone")
        context.add_init_script(path=str(axe_source))
        page = context.new_page()
        if email:
            sign_in(page, live_server.url, email)
        for key, path in pages:
            response = page.goto(f"{live_server.url}{path}")
            assert response.status == 200, path
            page.wait_for_function("() => window.axe !== undefined")
            problems = serious_violations(page)
            if problems:
                found[f"{email or 'anonymous'} {path}"] = problems
            if save and key in SCREENSHOTS:
                page.screenshot(path=str(Path(SHOTS) / f"{SCREENSHOTS[key]}-{viewport}.png"))
        context.close()
    assert found == {}, json.dumps(found, indent=1)


def _header_and_width(page) -> dict:
    return page.evaluate("""() => ({
        header: document.querySelector('header.top').getBoundingClientRect().height,
        scrollWidth: document.documentElement.scrollWidth, innerWidth,
        wide: [...document.querySelectorAll('main *')].filter(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.right > innerWidth + 1 && !e.closest('.table-wrap');
        }).slice(0, 5).map(e => e.tagName + '.' + e.className)})""")


def test_the_phone_header_is_one_line_and_no_list_scrolls_sideways_at_320_px(
        story, live_server, browser):
    for email, paths in ((REFERRER, ["/referrals/mine", "/referrals/new"]),
                         (SPECIALIST, ["/worklist", "/pager"]),
                         (ADMIN, ["/admin/rota", "/admin/status"])):
        context = browser.new_context(viewport={"width": 375, "height": 812})
        page = context.new_page()
        sign_in(page, live_server.url, email)
        for path in paths:
            page.set_viewport_size({"width": 375, "height": 812})
            page.goto(f"{live_server.url}{path}")
            assert _header_and_width(page)["header"] <= 56, (email, path)
            page.set_viewport_size({"width": 320, "height": 640})
            page.wait_for_function("() => innerWidth === 320")
            layout = _header_and_width(page)
            assert layout["scrollWidth"] <= 320, (email, path, layout)
            assert layout["header"] <= 56, (email, path, layout)
        context.close()


def test_a_skip_link_leads_to_the_content_and_errors_take_the_focus(story, live_server,
                                                                    phone):
    sign_in(phone, live_server.url, REFERRER)
    phone.goto(f"{live_server.url}/referrals/mine")
    phone.keyboard.press("Tab")
    assert phone.evaluate("() => document.activeElement.textContent") == \
        "Skip to main content"
    phone.keyboard.press("Enter")
    assert phone.evaluate("() => document.activeElement.id") == "main"

    phone.goto(f"{live_server.url}/referrals/new")
    with phone.expect_navigation():
        phone.click("form.referral-form button[type=submit]:not(.default-submit)")
    phone.wait_for_selector("section.problems")
    assert phone.evaluate(
        "() => document.activeElement.matches('section.problems')") is True
