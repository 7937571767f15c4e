"""The production shape as real processes for the fault tests: gunicorn (its workers
named in PostgreSQL, see gunicorn_conf.py) and `flask scheduler run` processes on a
seeded PostgreSQL database, Prism as Twilio, all on 127.0.0.1.

Time cannot be frozen across processes: these tests run on the wall clock, and bring
later escalation steps due by moving ``due_at`` (tests/paging/test_reliability.py).

`SOAK_SECONDS` (`make soak`) lengthens each fault to that many seconds; without it,
each test is the short version `make test` runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests

from extensions import db
from tests.conftest import make_app, stamp_migrations_head
from tests.services import free_port, wait_until
from workflow.accounts.accounts import issue_token
from workflow.seed import DEMO_PASSWORD, seed_demo

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REFERRER = "referrer@pil.demo.nhs.uk"
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
AUDIT = "audit@em.demo.nhs.uk"
SECRET = "fault-test-secret-key-0123456789abcdef0123456789"
# Each fault module's marks. Every fault test runs on one xdist worker (`--dist
# loadgroup`), one after another: each starts several processes, and two at once on the
# 2-core machine would measure the machine, not the app.
FAULT_MARKS = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("faults")]


def soak_seconds(short: float) -> float:
    """How long a fault lasts: ``short`` in `make test`, SOAK_SECONDS under `make soak`."""
    return float(os.environ.get("SOAK_SECONDS") or short)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class Stack:
    """gunicorn and schedulers on one database; `stop()` ends every process."""

    def __init__(self, app, log_dir: Path, twilio=None):
        self.app = app
        self.url = libpq(app.config["SQLALCHEMY_DATABASE_URI"])
        self.log_dir = log_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "GOLDENHOUR_ENV": "development",
                    "DATABASE_URL": self.url, "SECRET_KEY": SECRET,
                    "PUBLIC_BASE_URL": self.base, "SCHEDULER_IN_PROCESS": "0",
                    "GOLDENHOUR_REQUIRE_2FA_ROLES": "", "SWEEP_INTERVAL_SECONDS": "1",
                    # its own image cache: not the worktree's, not an earlier test's
                    "GOLDENHOUR_INSTANCE_PATH": str(log_dir.parent / "instance")}
        if twilio is not None:
            self.env.update({k: str(v) for k, v in twilio.app_config().items()})
        self.web: subprocess.Popen | None = None
        self.schedulers: dict[int, subprocess.Popen] = {}

    def _spawn(self, name: str, command: list[str], **env) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            return subprocess.Popen(command, cwd=ROOT, env={**self.env, **env}, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_web(self, workers: int = 2) -> None:
        """gunicorn with ``workers`` workers; returns once /health answers."""
        self.web = self._spawn("gunicorn", [
            str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b",
            f"127.0.0.1:{self.port}", "-c", str(HERE / "gunicorn_conf.py"),
            "--graceful-timeout", "5", "app:create_app()"])
        wait_until(lambda: requests.get(f"{self.base}/health", timeout=2).ok, 60, "gunicorn")
        wait_until(lambda: len(self.worker_pids()) == workers, 30, "gunicorn's workers")

    def worker_pids(self) -> set[int]:
        """The gunicorn master's children now (its workers)."""
        path = Path(f"/proc/{self.web.pid}/task/{self.web.pid}/children")
        return {int(p) for p in path.read_text().split()} if path.exists() else set()

    def start_scheduler(self, slot: int) -> subprocess.Popen:
        """`flask scheduler run`, its connections named gh-scheduler-<slot>."""
        proc = self._spawn(f"scheduler-{slot}", [
            sys.executable, "-m", "flask", "--app", "app", "scheduler", "run"],
            PGAPPNAME=f"gh-scheduler-{slot}")
        self.schedulers[slot] = proc
        return proc

    def token(self, email: str) -> dict[str, str]:
        with self.app.app_context():
            return {"Authorization": f"Bearer {issue_token(email)}"}

    def browser(self, email: str, password: str = DEMO_PASSWORD) -> requests.Session:
        """A signed-in browser session (cookie and CSRF token, as a form would send)."""
        session = requests.Session()
        page = session.get(f"{self.base}/login", timeout=10).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        answer = session.post(f"{self.base}/login", timeout=10, data={
            "csrf_token": token, "email": email, "password": password})
        assert answer.ok and answer.url.rstrip("/") == self.base, answer.url
        return session

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop(self) -> None:
        for proc in [self.web, *self.schedulers.values()]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [self.web, *self.schedulers.values()]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def seeded_app(url: str, tmp_path: Path, **config):
    """An app (for the test's own reads) on ``url``, with the schema and the demo network."""
    app = make_app(url, tmp_path, SECRET_KEY=SECRET, **config)
    with app.app_context():
        db.create_all()
        stamp_migrations_head()
        seed_demo()
        db.session.remove()
    return app


@contextmanager
def stack_on(url: str, tmp_path: Path, twilio=None):
    """A Stack on a fresh seeded database at ``url`` (nothing started yet), with the
    test's app context open for its own reads; every process stopped after."""
    app = seeded_app(url, tmp_path, **(twilio.app_config() if twilio else {}))
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    group = Stack(app, log_dir, twilio)
    with app.app_context():
        try:
            yield group
        finally:
            group.stop()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def stack(postgres_server, tmp_path, twilio):
    """A Stack on a new database of the worker's PostgreSQL cluster."""
    with stack_on(postgres_server.create_database("gh_fault"), tmp_path, twilio) as group:
        yield group


def backends(url: str, like: str) -> list[tuple[int, str, str | None, str | None]]:
    """(pid, application_name, wait_event_type, wait_event) of the server's backends
    whose application_name is LIKE ``like``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, application_name, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE application_name LIKE %s", (like,)).fetchall()


def poll(check, timeout: float, what: str, every: float = 0.1):
    """Call ``check`` until it returns something truthy; return it. AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s")
