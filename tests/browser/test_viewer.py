"""The review page on a phone-sized Chromium: first slice, scrolling, presets."""

from __future__ import annotations

import time

import pytest

from tests.browser.test_accessibility import axe_source, serious_violations  # noqa: F401
from tests.images.conftest import SAMPLE_STUDY
from workflow.imaging import studies

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
REFERRER = "referrer@pil.demo.nhs.uk"


def sign_in(page, base, email):
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "goldenhour-demo")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def canvas_signature(page) -> list[int]:
    """A coarse fingerprint of the canvas pixels (grey levels on a 16x16 grid)."""
    return page.evaluate("""() => {
        const c = document.getElementById('viewer-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
          const row = Math.floor((y + .5) * c.height / 16);
          const i = (row * c.width + Math.floor((x + .5) * c.width / 16)) * 4;
          out.push(d[i]);
        }
        return out;
    }""")


def wait_painted(page, slice_number: int, preset: str) -> None:
    page.wait_for_function(
        """([n, p]) => { const c = document.getElementById('viewer-canvas');
            return c.dataset.paintedSlice === String(n) &&
                   (c.dataset.painted || '').includes('preset=' + p + '&'); }""",
        arg=[slice_number, preset], timeout=10_000)
    page.wait_for_timeout(150)


def differs(a: list[int], b: list[int]) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def test_a_phone_scrolls_the_series_and_switches_presets(referral, live_server, phone,
                                                         capsys):
    from extensions import db
    from tests.paging.helpers import user

    referral_id = referral.id
    studies.link(referral_id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    # SQLite: every transaction holds the write lock, so the test keeps none open (even
    # reading an expired attribute such as referral.id would begin one).
    db.session.commit()
    sign_in(phone, live_server.url, SPECIALIST)
    started = time.monotonic()
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    phone.wait_for_function("() => document.getElementById('viewer-canvas').dataset.firstPaintMs")
    wall_ms = (time.monotonic() - started) * 1000
    since_navigation = int(phone.eval_on_selector(
        "#viewer-canvas", "c => c.dataset.firstPaintSinceNavigationMs"))
    with capsys.disabled():
        print(f"\n  review page: first slice painted {since_navigation} ms after navigation "
              f"started (browser clock); {wall_ms:.0f} ms as Playwright saw it")
    assert since_navigation < 3000  # the target (< 1 s) is measured by bench/bench_viewer.py
    assert phone.eval_on_selector("#viewer-canvas", "c => c.dataset.slice") == "15"
    assert "Slice 15/28" in phone.inner_text("#viewer-status")
    first = canvas_signature(phone)

    canvas = phone.locator("#viewer-canvas")
    canvas.hover()
    phone.mouse.wheel(0, 120)  # one wheel notch: the next slice
    wait_painted(phone, 16, "brain")
    after_wheel = canvas_signature(phone)
    assert differs(first, after_wheel) > 50

    canvas.focus()
    for _ in range(5):
        phone.keyboard.press("ArrowDown")
    wait_painted(phone, 21, "brain")
    after_keys = canvas_signature(phone)
    assert differs(after_wheel, after_keys) > 50

    # A one-finger swipe upward moves on through the slices, as on a phone.
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.8
    phone.evaluate("""([x, y, dy]) => {
        const c = document.getElementById('viewer-canvas');
        const touch = (yy) => new Touch({identifier: 1, target: c, clientX: x, clientY: yy});
        const opts = {bubbles: true, cancelable: true};
        c.dispatchEvent(new TouchEvent('touchstart', {touches: [touch(y)], ...opts}));
        for (let i = 1; i <= 10; i++)
          c.dispatchEvent(new TouchEvent('touchmove',
                                         {touches: [touch(y - dy * i / 10)], ...opts}));
        c.dispatchEvent(new TouchEvent('touchend', {touches: [], ...opts}));
    }""", [x, y, 120])
    swiped = int(phone.eval_on_selector("#viewer-canvas", "c => c.dataset.slice"))
    assert swiped > 21
    wait_painted(phone, swiped, "brain")
    after_swipe = canvas_signature(phone)

    phone.select_option("#viewer-preset", "bone")
    wait_painted(phone, swiped, "bone")
    assert differs(after_swipe, canvas_signature(phone)) > 200


def markers(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries(['left', 'right', 'top', 'bottom'].map(
        e => [e, document.getElementById('marker-' + e).textContent]))""")


def wait_window(page, before: str) -> str:
    """Wait until the slice on screen is painted in a window other than ``before``."""
    page.wait_for_function(
        """(before) => { const c = document.getElementById('viewer-canvas');
            const w = c.dataset.window;
            const asked = 'preset=' + encodeURIComponent(w) + '&';
            return w !== before && w.includes(',') &&
                   (c.dataset.painted || '').includes(asked); }""",
        arg=before, timeout=10_000)
    page.wait_for_timeout(150)
    return page.eval_on_selector("#viewer-canvas", "c => c.dataset.window")


def test_the_viewer_shows_orientation_a_slice_slider_and_window_level_by_drag(
        referral, live_server, phone, axe_source):  # noqa: F811
    from extensions import db
    from tests.paging.helpers import user

    referral_id = referral.id
    nhs = referral.nhs_number
    studies.link(referral_id, user(REFERRER), "PIL", [SAMPLE_STUDY])
    db.session.commit()
    phone.context.add_init_script(path=str(axe_source))
    sign_in(phone, live_server.url, SPECIALIST)
    phone.goto(f"{live_server.url}/referrals/{referral_id}/review")
    wait_painted(phone, 15, "brain")
    assert serious_violations(phone) == []  # the viewer's controls: labelled, legible
    # The sample CT is axial: the patient seen from the feet.
    assert markers(phone) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert f"NHS {nhs[:3]} {nhs[3:6]} {nhs[6:]}" in phone.inner_text("#banner")

    # The slider follows the slice, and moves it.
    slider = phone.locator("#viewer-slider")
    assert slider.get_attribute("max") == "28" and slider.input_value() == "15"
    slider.focus()
    phone.keyboard.press("End")
    wait_painted(phone, 28, "brain")
    assert slider.input_value() == "28"
    phone.eval_on_selector("#viewer-slider", """s => { s.value = '5';
        s.dispatchEvent(new Event('input', {bubbles: true})); }""")
    wait_painted(phone, 5, "brain")
    assert "Slice 5/28" in phone.inner_text("#viewer-status")
    brain = canvas_signature(phone)

    # Window/level: a mouse drag to the right widens the window.
    phone.click("#viewer-wl")
    assert phone.get_attribute("#viewer-wl", "aria-pressed") == "true"
    box = phone.locator("#viewer-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    phone.mouse.move(x, y)
    phone.mouse.down()
    phone.mouse.move(x + 120, y, steps=6)
    phone.mouse.up()
    widened = wait_window(phone, "brain")
    center, width = (float(v) for v in widened.split(","))
    assert width > 80 and center == 40
    assert phone.eval_on_selector("#viewer-canvas", "c => c.dataset.slice") == "5"
    assert "W " in phone.inner_text("#viewer-status")
    wide = canvas_signature(phone)
    assert differs(brain, wide) > 50

    # And a finger (real touch input through the browser) drags the level down.
    cdp = phone.context.new_cdp_session(phone)
    points = [(x, y - 10 * i) for i in range(8)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                          "touchPoints": [{"x": x, "y": y}]})
    for px, py in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                              "touchPoints": [{"x": px, "y": py}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    leveled = wait_window(phone, widened)
    assert float(leveled.split(",")[0]) > center  # dragged up: a higher level
    assert phone.eval_on_selector("#viewer-canvas", "c => c.dataset.slice") == "5"
    assert differs(wide, canvas_signature(phone)) > 50

    # A preset puts the window back.
    phone.select_option("#viewer-preset", "brain")
    wait_painted(phone, 5, "brain")
