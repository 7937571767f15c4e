"""Running a sweep's claim-and-send loop on several threads at once.

One loop claims a page (a short transaction of about 20 statements) and then sends it
(the provider's round trip, about 100 ms at Twilio). Run one after another, at 10
referrals a second the pages behind queued for seconds. On PostgreSQL a sweep runs
``SEND_WORKERS`` loops side by side, each on its own thread, app context and database
session; `FOR UPDATE SKIP LOCKED` keeps them off each other's pages exactly as it
keeps separate sweep processes apart. Each loop sends what it claimed straight away,
so no claimed delivery waits in a queue long enough to outlive its lease.

SQLite (development) runs one loop in the caller's thread: its writers queue on one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

from flask import current_app

from extensions import db

T = TypeVar("T")


def workers_for(config: Mapping, dialect: str) -> int:
    """How many claim-and-send loops one sweep runs at once on this database."""
    return 1 if dialect == "sqlite" else max(1, int(config.get("SEND_WORKERS", 8)))


class Budget:
    """At most ``limit`` pages per sweep, shared by its loops."""

    def __init__(self, limit: int):
        self._left, self._lock = limit, threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def run_loops(count: int, loop: Callable[[], T]) -> list[T]:
    """Run ``loop`` ``count`` times side by side; return what each returned.

    With ``count`` 0 nothing runs; with 1 the loop runs in the caller's thread and
    session. Otherwise each runs on its own thread with its own app context. If any
    loop raised, the first exception is raised here once every loop has finished (what
    a loop had claimed is committed; a delivery it left "sending" is resent after the
    lease).
    """
    if count <= 0:
        return []
    if count == 1:
        return [loop()]
    app = current_app._get_current_object()
    results: list[T] = []
    problems: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        with app.app_context():
            try:
                outcome = loop()
                with lock:
                    results.append(outcome)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                with lock:
                    problems.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, name=f"goldenhour-sweep-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        raise problems[0]
    return results
