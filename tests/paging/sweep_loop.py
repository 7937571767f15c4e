"""One sweep process for the reliability tests (and nothing else).

    python -m tests.paging.sweep_loop '{"config": {...}, "interval": 0.2, "lease_seconds": 5}'

Builds the app from ``config`` (database, Twilio settings), prints "ready" once it can
sweep, then calls workflow.paging.sweep.run_once every ``interval`` seconds until killed.
``lease_seconds`` shortens sweep.LEASE so that a test can see a crash mid-send
recovered in seconds rather than a minute. A sweep that raises is logged to stderr
("sweep error: ...") and the loop goes on, as the scheduler's job does.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import timedelta


def main() -> None:
    settings = json.loads(sys.argv[1])
    from app import create_app
    from extensions import db
    from integrations.pager import warm
    from workflow.paging import sweep

    app = create_app(settings["config"])
    if settings.get("lease_seconds"):
        sweep.LEASE = timedelta(seconds=float(settings["lease_seconds"]))
    interval = float(settings.get("interval", 0.2))
    with app.app_context():
        channels = app.extensions["goldenhour.channels"]
        warm(channels)  # as workflow.scheduler does before its first tick
        db.session.execute(db.text("SELECT 1"))
        db.session.commit()
        print("ready", flush=True)
        while True:
            try:
                sweep.run_once(channels)
            except Exception:  # noqa: BLE001 - report and carry on, like the scheduler
                sys.stderr.write("sweep error: " + traceback.format_exc() + "\n")
                sys.stderr.flush()
                db.session.rollback()
            time.sleep(interval)


if __name__ == "__main__":
    main()
