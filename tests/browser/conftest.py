"""Chromium tests: the app served on 127.0.0.1 by a thread, driven by Playwright.

Chromium comes from Debian (/usr/bin/chromium); Playwright's own browser download is
never used.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from werkzeug.serving import make_server

from tests.images.conftest import pacs, pilgrim, referral  # noqa: F401 - shared fixtures
from tests.services import missing_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class LiveServer:
    def __init__(self, app):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        # Kept, so that close() can wait for them: a live stream still running after the
        # test would take a database connection the app fixture no longer disposes.
        self._server.daemon_threads = False
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self, wait: float = 15) -> None:
        """Stop serving, then wait up to ``wait`` seconds for requests still running (a
        stream ends at its next heartbeat once its browser has gone)."""
        self._server.shutdown()
        deadline = time.monotonic() + wait
        for thread in list(vars(self._server).get("_threads", ())):  # socketserver's list
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server.block_on_close = False  # a request still running ends with its stream
        self._server.server_close()


@pytest.fixture
def live_server(app):
    from extensions import db

    db.session.commit()  # the server's threads must not wait for the test's transaction
    server = LiveServer(app)
    yield server
    server.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        missing_service(f"{CHROMIUM} is not installed; run `make test-deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser):
    """A 375x812 touch page (a phone)."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, has_touch=True,
                                  is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    yield page
    context.close()
