"""A database lost after the answer was made: the answer stands (RELIABILITY row 19).

Under gunicorn the request's session is ended when its app context is popped, after the
view and every error handler. If PostgreSQL went away in between, the ROLLBACK there
fails, and an exception at that point reaches gunicorn, which sends a 500 in place of
the answer: seen in tests/faults/test_database_restart.py, on an acknowledge that may
well have been committed."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.postgres


def _ask(app, path: str):
    """GET ``path`` from a thread of its own, so the request pushes (and pops) its own
    app context as it does in gunicorn; returns the answer or the exception raised."""
    out: list = []

    def run():
        try:
            out.append(app.test_client().get(path))
        except Exception as exc:  # noqa: BLE001 - what gunicorn would have turned into a 500
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return out[0]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_connection_lost_after_the_answer_leaves_the_answer_standing(app, caplog):
    from extensions import db

    def lost_after_answering():
        # The request's transaction is left open, as a lazy load after a commit leaves
        # it; then its connection is ended, as a PostgreSQL shutdown ends it.
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as other:
            assert other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"),
                                 {"pid": pid}).scalar_one()
        return "answered"

    def database_time():
        return str(db.session.execute(text("SELECT 1")).scalar_one())

    app.add_url_rule("/_lost", view_func=lost_after_answering)
    app.add_url_rule("/_again", view_func=database_time)
    db.session.commit()
    checked_out = db.engine.pool.checkedout()
    with caplog.at_level(logging.WARNING, logger="views.errors"):
        answer = _ask(app, "/_lost")
    assert not isinstance(answer, Exception), repr(answer)
    assert (answer.status_code, answer.text) == (200, "answered")
    assert "database lost while ending a request or job" in caplog.text
    assert "AdminShutdown" in caplog.text
    assert db.engine.pool.checkedout() == checked_out  # nothing held by the lost session
    again = _ask(app, "/_again")  # the pool replaced the connection
    assert not isinstance(again, Exception), repr(again)
    assert (again.status_code, again.text) == (200, "1")
