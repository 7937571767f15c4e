"""Running the sweep: APScheduler in process (development) or as one dedicated process.

The web app wakes the sweep right after a referral is committed instead of waiting
for the next tick: in process by rescheduling the job, across processes with
PostgreSQL NOTIFY, which the scheduler process LISTENs for.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy import select, text

from extensions import db
from integrations.pager import warm
from models import SchedulerHeartbeat
from workflow import seed
from workflow.audit import anchors, nightly, records, root_email
from workflow.imaging import arrivals, key_objects
from workflow.paging import leadership, rota_cover, sweep
from workflow.times import now as utcnow

log = logging.getLogger(__name__)
HANDOVER_PAUSE_SECONDS = 3.0  # after losing the lead, before asking for it again
# APScheduler logs "Running job" / "executed successfully" at INFO for every 2 s tick:
# noise that buries what matters. Its warnings (a missed or overlapping run) still show.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
CHANNEL = "goldenhour_sweep"
JOB_ID = "sweep"
STALE_AFTER = timedelta(seconds=30)

_in_process: BackgroundScheduler | None = None
# Set by every wake-up. APScheduler drops a wake-up that arrives while the sweep is
# running (max_instances=1), so the job itself sweeps again when one came meanwhile:
# otherwise a page committed just after the sweep's last look waits a whole interval.
_woken = threading.Event()


def _job(app: Flask, scheduler=None) -> None:
    with app.app_context():
        while True:
            _woken.clear()
            try:
                result = sweep.run_once(app.extensions["goldenhour.channels"])
                rendered = records.render_pending()
                next_due = sweep.next_due()
            except Exception:  # noqa: BLE001 - one bad sweep must not stop the scheduler
                log.exception("sweep failed")
                db.session.remove()
                return
            if result.claimed or result.resent or rendered:
                log.info("sweep: %s; records rendered: %d", result, rendered)
            if result.claimed and next_due is not None and next_due <= utcnow() + EARLY:
                continue  # fell due while we swept (a page that cannot be claimed waits
                # for the timer below instead, so it cannot spin this loop)
            if not _woken.is_set():
                _run_again_at(scheduler, next_due)
                return


# A page due this soon is swept now rather than waited for.
EARLY = timedelta(milliseconds=50)
MIN_DELAY = 0.25  # seconds; the soonest the timer runs the sweep again
_deadline: threading.Timer | None = None
_retry: threading.Timer | None = None  # a dropped wake-up tried again (see below)
_deadline_lock = threading.Lock()


def _run_again_at(scheduler, due: datetime | None) -> None:
    """Escalation steps fall due with time, not with a commit: nothing wakes the sweep
    for them. A timer wakes the sweep when the next waiting page falls due (it replaces
    the previous timer), so a step fires on its deadline, not up to an interval late.

    A timer thread, not a change to the job from inside it: the scheduler's shutdown
    holds its locks while it waits for a running job, so a job that reached for them
    would deadlock it.
    """
    global _deadline
    if scheduler is None or due is None:
        return
    delay = max(MIN_DELAY, (due - utcnow()).total_seconds())
    with _deadline_lock:
        if _deadline is not None:
            _deadline.cancel()
        _deadline = threading.Timer(delay, _wake_job, args=[scheduler])
        _deadline.daemon = True
        _deadline.start()


def _wake_job(scheduler) -> None:
    """Run the sweep job now (or once more, if it is running)."""
    _woken.set()
    if not scheduler.running:
        return
    job = scheduler.get_job(JOB_ID)
    if job is not None:
        job.modify(next_run_time=datetime.now(UTC))


def _retry_skipped_wake(scheduler, event) -> None:
    """A wake-up that found the sweep still running was dropped by APScheduler. The
    running sweep sees ``_woken`` unless it had already looked and was returning: then
    nothing would run until the next deadline or tick. Try again in a moment."""
    global _retry
    if event.job_id != JOB_ID:
        return
    with _deadline_lock:
        if _retry is not None and _retry.is_alive():
            return  # one retry waiting is enough, however many wake-ups were dropped
        _retry = threading.Timer(MIN_DELAY, _wake_job, args=[scheduler])
        _retry.daemon = True
        _retry.start()


def nightly_integrity_check() -> str:
    """Run `flask audit verify`'s check (since the last verified anchor when it can:
    workflow/audit/nightly.py) and keep its one-line result for the admin page."""
    report = nightly.run()
    line = (f"OK: {report.referrals_checked} referrals, {report.events_checked} events"
            f"{'' if report.full else ' (changed since the last verified anchor)'}"
            if report.ok else f"TAMPERED: {report.problems[0]}")
    sweep.heartbeat("integrity", detail=line)
    return line


_on_demand_lock = threading.Lock()
_on_demand: threading.Thread | None = None


def start_integrity_check(app: Flask) -> bool:
    """Run the integrity check now, in a background thread of this process (the admin
    status page's button); its result is kept like the nightly one. False, and nothing
    started, when one started here is still running. Raises nothing: a failure to run
    is logged, as the nightly one is."""
    global _on_demand
    with _on_demand_lock:
        if _on_demand is not None and _on_demand.is_alive():
            return False
        _on_demand = threading.Thread(target=_nightly, args=(app,), daemon=True,
                                      name="integrity-check")
        _on_demand.start()
        return True


def integrity_check_running() -> bool:
    with _on_demand_lock:
        return _on_demand is not None and _on_demand.is_alive()


def wait_for_integrity_check(timeout: float = 60) -> None:
    """Block until the check started by start_integrity_check is done (tests)."""
    with _on_demand_lock:
        running = _on_demand
    if running is not None:
        running.join(timeout)


def _nightly(app: Flask) -> None:
    with app.app_context():
        try:
            log.info("integrity check: %s", nightly_integrity_check())
        except Exception:  # noqa: BLE001 - report, and try again tomorrow
            log.exception("integrity check failed to run")


def _anchor(app: Flask) -> None:
    with app.app_context():
        try:
            entry = anchors.anchor(app.config["ANCHOR_KEY_FILE"], app.config["ANCHOR_LOG"])
            log.info("anchored %d referrals: root %s", entry["tree_head"]["referrals"],
                     entry["tree_head"]["root"])
        except Exception:  # noqa: BLE001 - report, and anchor again next hour
            log.exception("anchoring failed")
            db.session.remove()


def _root_email(app: Flask, late: bool = False) -> None:
    """The day's evidence root email (23:50 UTC), or, hourly, yesterday's if it never
    went out (``late``)."""
    send = root_email.email_missed_root if late else root_email.email_daily_root
    with app.app_context():
        try:
            sent = send(app.extensions["goldenhour.channels"], app.config["ANCHOR_LOG"],
                        utcnow(), sweep.WORKER)
            if sent:
                log.info("emailed %s evidence root to %d audit lead(s)",
                         "yesterday's missed" if late else "the day's", sent)
        except Exception:  # noqa: BLE001 - report; the next run tries again
            log.exception("the daily evidence root email failed")
            db.session.remove()


def check_rota_cover(app: Flask) -> int:
    """Find the rota's gaps in the next 72 hours and tell the duty managers and admins
    of each new one (the demo network's own rota is topped up first). Returns the
    number of gaps told about."""
    if app.config.get("DEMO_ROTA"):
        seed.extend_demo_rota()
    at = utcnow()
    rota_cover.record_gaps(at)
    return rota_cover.notify_gaps(app.extensions["goldenhour.channels"],
                                  app.config["PUBLIC_BASE_URL"], at)


def _rota_cover(app: Flask) -> None:
    with app.app_context():
        try:
            told = check_rota_cover(app)
            if told:
                log.warning("rota cover: %d new gap(s) in the next 72 h; told the duty "
                            "managers and admins", told)
        except Exception:  # noqa: BLE001 - report, and look again next time
            log.exception("rota cover check failed")
            db.session.remove()


def _images(app: Flask) -> None:
    """Key Object documents to the PACS, then a look for newly arrived studies."""
    with app.app_context():
        for name, job in (("key objects", key_objects.send_pending),
                          ("new images", arrivals.poll)):
            try:
                job()
            except Exception:  # noqa: BLE001 - report, and try again next time
                log.exception("%s job failed", name)
                db.session.remove()


def _add_job(scheduler, app: Flask) -> None:
    interval = app.config.get("SWEEP_INTERVAL_SECONDS", 2)
    scheduler.add_listener(lambda event: _retry_skipped_wake(scheduler, event),
                           EVENT_JOB_MAX_INSTANCES)
    scheduler.add_job(_job, "interval", seconds=interval, args=[app, scheduler], id=JOB_ID,
                      max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.add_job(_rota_cover, "interval", minutes=app.config.get("ROTA_CHECK_MINUTES", 10),
                      args=[app], id="rota_cover", max_instances=1, coalesce=True,
                      next_run_time=datetime.now(UTC))
    scheduler.add_job(_images, "interval", seconds=app.config.get("IMAGES_POLL_SECONDS", 30),
                      args=[app], id="images", max_instances=1, coalesce=True)
    scheduler.add_job(_nightly, "cron", hour=2, minute=30, args=[app], id="integrity",
                      max_instances=1, coalesce=True, timezone="Europe/London")
    if app.config.get("ANCHOR_KEY_FILE") and app.config.get("ANCHOR_LOG"):
        scheduler.add_job(_anchor, "interval", hours=1, args=[app], id="anchor",
                          max_instances=1, coalesce=True)
        # Late in the UTC day (the claim's day), so it carries that day's last root.
        scheduler.add_job(_root_email, "cron", hour=23, minute=50, args=[app],
                          id="root_email", max_instances=1, coalesce=True, timezone="UTC")
        # A day whose 23:50 went by with no scheduler up gets its email late, not never.
        scheduler.add_job(_root_email, "interval", hours=1, args=[app, True],
                          id="root_email_missed", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(UTC) + timedelta(minutes=5))


def _warm(app: Flask) -> None:
    """Before the first tick: the first page after a restart should not be the slow one."""
    warm(app.extensions["goldenhour.channels"])


def start_in_process(app: Flask) -> BackgroundScheduler:
    """Start the sweep in a background thread of this process (development, `make run`)."""
    global _in_process
    scheduler = BackgroundScheduler(daemon=True)
    _add_job(scheduler, app)
    _warm(app)
    scheduler.start()
    _in_process = scheduler
    return scheduler


def stop_in_process() -> None:
    """Stop the in-process scheduler (tests; the process exiting does it otherwise)."""
    global _in_process
    if _in_process is not None:
        _in_process.shutdown(wait=True)
        _in_process = None
    with _deadline_lock:
        for timer in (_deadline, _retry):
            if timer is not None:
                timer.cancel()


def wake(_referral_id: int | None = None) -> None:
    """Ask the sweep to run now. Call after the commit that made a page due (the
    referral does not matter: the sweep looks at every due page)."""
    if _in_process is not None:
        _wake_job(_in_process)
        return
    if db.engine.dialect.name == "postgresql":
        try:
            with db.engine.connect() as conn:
                conn.execute(text(f"NOTIFY {CHANNEL}"))
                conn.commit()
        except Exception:  # noqa: BLE001 - the next tick will pick the page up anyway
            log.warning("could not wake the sweep; it will run on its next tick")


def _listen(app: Flask, scheduler: BlockingScheduler, stop: threading.Event) -> None:
    import psycopg

    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                for _ in conn.notifies(timeout=5, stop_after=None):
                    _wake_job(scheduler)
                    if stop.is_set():
                        return
        except Exception:  # noqa: BLE001 - database restarting: retry, the tick still runs
            log.warning("LISTEN connection lost; retrying in 2 s")
            stop.wait(2)


def run_forever(app: Flask, stop: threading.Event | None = None) -> None:
    """The dedicated scheduler process (`flask scheduler run`). Several may run: one
    leads and sweeps, the others wait as hot standbys (workflow/paging/leadership.py).
    A leader that loses the lead stops claiming at once and becomes a standby again."""
    stop = stop or threading.Event()
    lead = leadership.Leadership(app)
    leadership.fence_with(lead)
    _warm(app)
    log.warning("scheduler: standing by for the lead (%s:%d)", leadership.HOST, lead.pid)
    while lead.wait_to_lead(stop):
        _lead(app, lead, stop)
        # Lost the lead (its database connection failed, most likely): a standby whose
        # connection did not gets the first chance; alone, this process asks again after
        # the pause.
        stop.wait(HANDOVER_PAUSE_SECONDS)


def _either(stop: threading.Event, done: threading.Event) -> bool:
    """Wait until ``stop`` or ``done`` is set; True when it was ``stop``."""
    while not (stop.wait(0.5) or done.is_set()):
        pass
    return stop.is_set() and not done.is_set()


def _lead(app: Flask, lead: leadership.Leadership, stop: threading.Event) -> None:
    """Sweep while this process leads; return when it lost the lead or ``stop`` is set."""
    scheduler = BlockingScheduler()
    _add_job(scheduler, app)
    done = threading.Event()

    def lost() -> None:
        done.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)  # a running sweep claims nothing more: fenced

    lead.keep(lost, done)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        threading.Thread(target=_listen, args=(app, scheduler, done), daemon=True).start()
    threading.Thread(target=lambda: _either(stop, done) and lost(), daemon=True).start()
    try:
        scheduler.start()
    finally:
        done.set()
        if stop.is_set():
            lead.lose(stopping=True)


def last_integrity_check() -> dict | None:
    """{"at": iso, "result": "OK: ..." | "TAMPERED: ..."} of the last nightly check."""
    row = db.session.get(SchedulerHeartbeat, "integrity")
    return {"at": row.beat_at, "result": row.detail} if row else None


def heartbeat_status(now: datetime | None = None) -> dict:
    """{"state": "ok" | "stale" | "never", "beat_at": iso | None, "age_seconds": int | None}."""
    now = now or utcnow()
    beat = db.session.scalar(select(SchedulerHeartbeat).where(SchedulerHeartbeat.name == "sweep"))
    if beat is None:
        return {"state": "never", "beat_at": None, "age_seconds": None}
    age = (now - beat.beat_at).total_seconds()
    return {"state": "ok" if age <= STALE_AFTER.total_seconds() else "stale",
            "beat_at": beat.beat_at.isoformat(), "age_seconds": int(age),
            "worker": beat.detail}


