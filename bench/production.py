"""The production shape for a bench: PostgreSQL, gunicorn as `make serve` starts it, and
users signed in over HTTP as a clinician is (password, then an authenticator code).

    with Production(workers=4) as prod:
        specialist = prod.sign_in(SPECIALIST)      # a requests.Session, cookie and all
        specialist.get(prod.url("/health"))
        with prod.app_context():                   # set-up in this process, same database
            ...

Everything listens on 127.0.0.1. The server runs with GOLDENHOUR_ENV=production and the
default two-factor roles, so a specialist's every request pays what it pays in
production: the session lookup, the user load, the access checks and the access log.
The set-up app (`app_context`) writes to the same database; it never serves a request.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyotp
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.serve import gunicorn_command  # noqa: E402
from tests.services import free_port, stop_process_group, wait_until  # noqa: E402
from tests.services.postgres import start_postgres  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PASSWORD = "goldenhour-demo"  # seed-demo's password for every demo user
SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_TOTP_SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


class SignInFailed(RuntimeError):
    """A bench user could not be signed in over HTTP (names the step)."""


class Production:
    """PostgreSQL, `flask db upgrade`, `flask seed-demo`, gunicorn (scripts/serve.py's
    command line) and, with ``scheduler=True``, one `flask scheduler run`. Raises
    RuntimeError when a step fails or the server does not answer /health in 60 s."""

    def __init__(self, *, workers: int = 4, threads: int = 16, scheduler: bool = False,
                 env: dict[str, str] | None = None, keep_logs: bool = False):
        self.workers, self.threads, self.scheduler = workers, threads, scheduler
        self.extra_env = env or {}
        self.keep_logs = keep_logs
        self.workdir = Path(tempfile.mkdtemp(prefix="gh-bench-"))
        self._processes: list[subprocess.Popen] = []
        self._postgres = None
        self._secrets: dict[str, str] = {}  # email -> the authenticator secret we set up
        self._used: set[tuple[str, str]] = set()  # (email, code): codes work once
        self._app = None

    # --- start and stop ------------------------------------------------------------

    def __enter__(self) -> Production:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        self._postgres = start_postgres()
        self.database_url = self._postgres.create_database("gh_bench")
        self.dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        (self.workdir / "instance").mkdir()
        self.env = {**os.environ, "DATABASE_URL": self.database_url, "FLASK_APP": "app.py",
                    "SECRET_KEY": SECRET_KEY, "PUBLIC_BASE_URL": self.base,
                    "GOLDENHOUR_ENV": "production", "SCHEDULER_IN_PROCESS": "false",
                    "GOLDENHOUR_INSTANCE_PATH": str(self.workdir / "instance"),
                    **self.extra_env}
        self.flask("db", "upgrade")
        self.flask("seed-demo", "--quiet")
        self._processes.append(self._spawn(
            gunicorn_command(port, self.workers, self.threads), "gunicorn.log"))
        if self.scheduler:
            self._processes.append(self._spawn([str(BIN / "flask"), "scheduler", "run"],
                                               "scheduler.log"))
        wait_until(lambda: requests.get(f"{self.base}/health", timeout=2).ok, 60, "gunicorn")

    def _spawn(self, cmd: list[str], log: str) -> subprocess.Popen:
        with open(self.workdir / log, "wb") as out:
            return subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def __exit__(self, *_exc) -> None:
        for process in self._processes:
            stop_process_group(process)
        self._processes.clear()
        if self._app is not None:
            from extensions import db

            with self._app.app_context():
                db.session.remove()
                db.engine.dispose()
        if self._postgres is not None:
            self._postgres.stop("immediate")
            shutil.rmtree(self._postgres.datadir, ignore_errors=True)
            self._postgres = None
        if self.keep_logs:
            print(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base + path

    def log(self, name: str = "gunicorn.log") -> str:
        return (self.workdir / name).read_text(errors="replace")

    def flask(self, *args: str) -> str:
        """Run `flask ARGS` against this database; its stdout. Raises RuntimeError."""
        done = subprocess.run([str(BIN / "flask"), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    @contextlib.contextmanager
    def app_context(self):
        """An app on the same database for set-up (referrals, links, PACS endpoints);
        it has its own caches, so it cannot warm or empty the server's."""
        if self._app is None:
            from app import create_app

            self._app = create_app({
                "GOLDENHOUR_ENV": "production", "SECRET_KEY": SECRET_KEY,
                "SQLALCHEMY_DATABASE_URI": self.database_url, "PUBLIC_BASE_URL": self.base,
                "SCHEDULER_IN_PROCESS": False})
            self._app.instance_path = str(self.workdir / "set-up-instance")
        with self._app.app_context():
            yield self._app

    def sign_in(self, email: str, password: str = PASSWORD) -> requests.Session:
        """A session signed in over HTTP: the password, then an authenticator code (the
        first time, setting the authenticator up, as a specialist's first sign-in in
        production does). Raises SignInFailed naming the step that was refused."""
        session = requests.Session()
        page = session.get(self.url("/login"), timeout=10)
        answer = session.post(self.url("/login"), timeout=10, data={
            "csrf_token": _csrf(page.text), "email": email, "password": password})
        if "/login/code" in answer.url:
            answer = session.post(answer.url, timeout=10, data={
                "csrf_token": _csrf(answer.text), "code": self._next_code(email)})
        elif "/two-factor/enrol" in answer.url:
            found = _TOTP_SECRET.search(answer.text)
            if not found:
                raise SignInFailed(f"{email}: the enrolment page shows no authenticator key")
            self._secrets[email] = found.group(1)
            answer = session.post(answer.url, timeout=10, data={
                "csrf_token": _csrf(answer.text), "code": self._next_code(email)})
        if answer.status_code != 200 or "/login" in answer.url:
            raise SignInFailed(f"{email}: sign-in ended at {answer.url} ({answer.status_code})")
        return session

    def _next_code(self, email: str) -> str:
        """A code not used yet: codes work once, and the next 30-second step's is
        accepted too (two_factor.VALID_WINDOW)."""
        if email not in self._secrets:
            raise SignInFailed(f"{email} has an authenticator this bench did not set up")
        totp = pyotp.TOTP(self._secrets[email])
        for ahead in (0, 30):
            code = totp.at(time.time() + ahead)
            if (email, code) not in self._used:
                self._used.add((email, code))
                return code
        time.sleep(30 - time.time() % 30 + 0.1)
        return self._next_code(email)


def _csrf(html: str) -> str:
    found = _CSRF.search(html)
    if not found:
        raise SignInFailed("the sign-in page has no CSRF token")
    return found.group(1)
