"""Take the README's screenshots with Debian's Chromium: the demo network on a
throw-away SQLite database, one stroke referral paged on the console channel, whose
voice call went to voicemail, so that the phone-sized referral page shows paging
escalating past a failure.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Needs /usr/bin/chromium and Playwright (`make test-deps` installs both).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from werkzeug.serving import make_server  # noqa: E402

from app import create_app  # noqa: E402
from extensions import db  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
REFERRER = "referrer@pil.demo.nhs.uk"


def demo_referral(app) -> int:
    """Seed, raise a stroke referral, page it, and let its call reach a voicemail."""
    from datetime import datetime, timedelta

    from sqlalchemy import select

    from models import Delivery, User
    from workflow.paging import replies as pager_replies
    from workflow.paging import sweep
    from workflow.referrals import actions as referrals
    from workflow.seed import seed_demo

    with app.app_context():
        db.create_all()
        seed_demo()
        referrer = db.session.scalar(select(User).where(User.email == REFERRER))
        arrived = (datetime.now().replace(microsecond=0) - timedelta(minutes=40)).isoformat()
        onset = (datetime.now().replace(microsecond=0) - timedelta(minutes=95)).isoformat()
        referral = referrals.raise_referral(referrer, {
            "specialty": "stroke", "referring_hospital": "PIL",
            "patient": {"nhs_number": "9434765919", "family_name": "Smith",
                        "given_name": "Ann", "birth_date": "1950-01-01", "sex": "female"},
            "onset_at": onset, "onset_certainty": "precise", "arrived_at": arrived,
            "question": "Left MCA syndrome, NIHSS 14. Thrombectomy?",
            "clinical": {"nihss": 14, "pre_stroke_mrs": 1, "anticoagulant": "none",
                         "thrombolysis_given": False, "imaging": ["CT", "CTA"]}})
        sweep.run_once(app.extensions["goldenhour.channels"])
        call = db.session.scalar(select(Delivery).where(Delivery.referral_id == referral.id,
                                                        Delivery.channel == "voice"))
        if call is not None and call.provider_id:
            pager_replies.status_callback(call.provider_id, "completed", "machine_end_beep")
            sweep.run_once(app.extensions["goldenhour.channels"])
        return referral.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from workflow.seed import DEMO_PASSWORD

    workdir = Path(tempfile.mkdtemp(prefix="gh-shots-"))
    os.environ.setdefault("GOLDENHOUR_ENV", "development")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'demo.sqlite3'}",
                      "SCHEDULER_IN_PROCESS": False, "TWILIO_ACCOUNT_SID": ""})
    referral_id = demo_referral(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    out = Path(args.out)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_context(viewport={"width": 375, "height": 812},
                                       device_scale_factor=2, is_mobile=True,
                                       has_touch=True).new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=email]", REFERRER)
            page.fill("input[name=password]", DEMO_PASSWORD)
            page.click("button[type=submit]")
            page.goto(f"{base}/referrals/{referral_id}")
            page.locator("#paging").screenshot(path=str(out / "paging-phone.png"))
            print(f"wrote {out / 'paging-phone.png'}")
            browser.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
