"""RELIABILITY row 19: PostgreSQL restarts under load. Every write the app confirmed
(2xx) is there afterwards; during the outage users get a 503 that says to try again
(JSON for the API, a page for a browser), never a 500 or a traceback; the same
gunicorn workers serve again once the database is back, without a restart."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import select

from extensions import db
from models import Referral
from tests.conftest import make_app
from tests.faults.conftest import (
    FAULT_MARKS,
    REFERRER,
    SPECIALIST,
    poll,
    soak_seconds,
    stack_on,
)
from tests.paging.helpers import stroke_payload
from tests.services import free_port
from tests.services.postgres import start_postgres

pytestmark = FAULT_MARKS


@pytest.fixture
def own_postgres():
    """A cluster of this test's own: restarting the worker's shared one would break the
    connections other fixtures hold."""
    try:
        server = start_postgres()
    except FileNotFoundError as exc:
        from tests.services import missing_service

        missing_service(str(exc))
    yield server
    server.stop("immediate")
    shutil.rmtree(server.datadir, ignore_errors=True)


class Load:
    """Client threads raising referrals (API) and acknowledging the confirmed ones, and
    a signed-in browser reading its home page; every answer is kept."""

    def __init__(self, stack, clients: int = 3):
        self.stack = stack
        self.raiser = stack.token(REFERRER)
        self.specialist = stack.token(SPECIALIST)
        self.browser = stack.browser(REFERRER)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.raised: list[int] = []  # 201: confirmed
        self.acknowledged: list[int] = []  # 200: confirmed
        self.answers: list[tuple[str, int, str]] = []  # (kind, status, body start)
        self.broken: list[str] = []  # a connection that failed (no answer at all)
        self.threads = [threading.Thread(target=self._client, args=(n,))
                        for n in range(clients)] + [threading.Thread(target=self._reader)]

    def _keep(self, kind: str, answer: requests.Response) -> None:
        with self.lock:
            self.answers.append((kind, answer.status_code, answer.text[:4000]))

    def _client(self, n: int) -> None:
        base = self.stack.base
        while not self.stop.is_set():
            try:
                raised = requests.post(f"{base}/api/v1/referrals", headers=self.raiser,
                                       json=stroke_payload(question=f"Load {n}",
                                                          separate_referral=True), timeout=15)
                self._keep("raise", raised)
                if raised.status_code == 201:
                    referral_id = raised.json()["id"]
                    with self.lock:
                        self.raised.append(referral_id)
                    ack = requests.post(f"{base}/api/v1/referrals/{referral_id}/acknowledge",
                                        headers=self.specialist, json={}, timeout=15)
                    self._keep("acknowledge", ack)
                    if ack.status_code == 200:
                        with self.lock:
                            self.acknowledged.append(referral_id)
            except requests.RequestException as exc:
                with self.lock:
                    self.broken.append(type(exc).__name__)
            time.sleep(0.05)

    def _reader(self) -> None:
        while not self.stop.is_set():
            try:
                self._keep("page", self.browser.get(f"{self.stack.base}/", timeout=15))
            except requests.RequestException as exc:
                with self.lock:
                    self.broken.append(type(exc).__name__)
            time.sleep(0.1)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


def server_errors(stack) -> str:
    """What the server logged of the first error behind a 500, for a failure's message
    (the log files go with the test's temporary directory): ours ("unhandled error", an
    error handler's) or gunicorn's ("Error handling request", one raised past Flask,
    such as a failed ROLLBACK at teardown)."""
    text = stack.logs()
    found = [at for at in (text.find("unhandled error"), text.find("Error handling request"))
             if at >= 0]
    return text[min(found):min(found) + 4000] if found else "no error logged by the server"


def test_a_database_restart_under_load_loses_no_confirmed_write(own_postgres, tmp_path):
    url = own_postgres.create_database("gh_restart")
    with stack_on(url, tmp_path) as stack:
        stack.start_web(workers=2)
        workers = stack.worker_pids()
        with Load(stack) as load:
            poll(lambda: len(load.raised) >= 5, 30, "load running")
            own_postgres.stop("fast")
            time.sleep(soak_seconds(2))
            during = load.count()
            poll(lambda: load.count() > during + 3, 10, "answers while the database is down")
            own_postgres.start()
            restarted = len(load.raised)
            poll(lambda: len(load.raised) >= restarted + 5, 20,
                 "confirmed raises after the restart")
        assert stack.worker_pids() == workers  # recovered without a restart
        statuses = Counter((kind, status) for kind, status, _ in load.answers)
        outage = [(kind, body) for kind, status, body in load.answers if status == 503]
        assert outage, statuses  # the clients did see the outage
        assert {status for _, status, _ in load.answers} <= {200, 201, 503}, \
            (statuses, server_errors(stack))
        for kind, body in outage:
            assert "try again" in body and "Traceback" not in body, (kind, body)
        assert {kind for kind, _ in outage} >= {"raise", "page"}, statuses
        assert not load.broken, load.broken  # every request got an answer

        db.session.rollback()
        stored = {r.id: r for r in db.session.scalars(select(Referral))}
        lost = [i for i in load.raised if i not in stored]
        unacknowledged = [i for i in load.acknowledged
                          if stored[i].assigned_specialist_id is None]
        print(f"\nrestart: {len(load.raised)} raises and {len(load.acknowledged)} "
              f"acknowledges confirmed; answers {dict(statuses)}")
        assert not lost and not unacknowledged, (lost, unacknowledged)
        assert "Traceback" not in stack.logs()


def test_a_database_that_does_not_answer_is_a_503_saying_try_again(network, tmp_path):
    """The 503 itself, without processes: an app whose database port is closed."""
    from workflow.accounts.accounts import issue_token

    token = issue_token(REFERRER)
    dead = make_app(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/gone", tmp_path)
    client = dead.test_client()
    api = client.get("/api/v1/referrals", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert "try again" in api.get_json()["error"]
    with client.session_transaction() as session:
        session["_user_id"] = "1"  # signed in: loading the user needs the database
    page = client.get("/", headers={"Accept": "text/html"})
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and "try again" in text and "Traceback" not in text
