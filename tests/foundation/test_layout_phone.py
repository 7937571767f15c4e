"""The base layout in Chromium on a 375 px phone: no sideways scrolling, readable text,
a dark theme for the night (light only when the phone asks for it)."""

import re

import pytest
from sqlalchemy import select

from extensions import db
from models import User
from tests.browser.conftest import browser, live_server, phone  # noqa: F401 - fixtures
from workflow.seed import DEMO_PASSWORD

pytestmark = pytest.mark.browser

ADMIN = "admin@em.demo.nhs.uk"


def _sign_in(page, base):
    page.goto(f"{base}/login")
    page.fill("input[name=email]", ADMIN)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _layout(page) -> dict:
    return page.evaluate("""() => {
        const body = getComputedStyle(document.body);
        const wide = [...document.querySelectorAll('body *')].filter(e => {
            const r = e.getBoundingClientRect();
            // Inside a scrolling table wrapper or the header's nav is fine: they
            // scroll sideways, not the page.
            return r.width > 0 && r.right > innerWidth + 1 &&
                   !e.closest('.table-wrap') && !e.closest('.top .nav');
        }).map(e => e.tagName + (e.className ? '.' + e.className : ''));
        return {scrollWidth: document.documentElement.scrollWidth, innerWidth,
                fontSize: parseFloat(body.fontSize), background: body.backgroundColor,
                wide};
    }""")


def _luminance(css_rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_admin_pages_fit_a_375_px_phone(network, live_server, phone):  # noqa: F811
    user_id = db.session.scalar(select(User.id).where(User.email == ADMIN))
    db.session.commit()  # every SQLite transaction holds the write lock the server needs
    phone.goto(f"{live_server.url}/login")
    pages = {"/login": _layout(phone)}
    _sign_in(phone, live_server.url)
    for path in ("/", "/admin/", "/admin/users", "/admin/hospitals", "/admin/rota",
                 f"/admin/users/{user_id}/password", "/admin/pacs/"):
        response = phone.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        pages[path] = _layout(phone)
    for path, layout in pages.items():
        assert layout["innerWidth"] == 375, path
        assert layout["scrollWidth"] <= 375 and layout["wide"] == [], (path, layout)
        assert layout["fontSize"] >= 16, (path, layout)


@pytest.mark.parametrize(("scheme", "dark"), [("dark", True), ("light", False)])
def test_the_theme_follows_the_phones_dark_or_light_setting(live_server, browser,  # noqa: F811
                                                           scheme, dark):
    context = browser.new_context(viewport={"width": 375, "height": 812}, color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{live_server.url}/login")
    background = _layout(page)["background"]
    context.close()
    assert (_luminance(background) < 0.2) is dark, background
