"""Which `flask scheduler run` process leads: only the leader claims and sends pages.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its
own; a standby tries for it every second, and the database frees it the moment the
leader's connection dies (kill -9, lost network). On SQLite (one machine) a lease row
stands in: the leader renews ``expires_at`` every second; a standby takes an expired
lease.

Fencing: each takeover adds one to ``scheduler_leaders.epoch``. The sweep's claim step
calls `may_claim` inside its transaction; it re-reads the epoch (locked against a
takeover until the claim commits), so a process that lost leadership claims nothing
more. A process that never asked to lead (the in-process scheduler of `make run`,
`sweep-once`, the tests) is not fenced.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select, update

from extensions import db
from models import SchedulerLeader
from workflow.times import now as utcnow

log = logging.getLogger(__name__)

NAME = "sweep"
LOCK_KEY = 0x676F6C64  # "gold": the advisory lock every scheduler process asks for
POLL_SECONDS = 1.0  # a standby asks this often; the leader renews this often
LEASE = timedelta(seconds=3)  # SQLite only: a lease not renewed for this long is free
HOST = socket.gethostname()


class Leadership:
    """This process's claim to lead. `wait_to_lead` blocks until it leads; then a
    thread renews it every second and calls ``on_lost`` once if it is lost."""

    def __init__(self, app: Flask):
        self.app = app
        self.pid = os.getpid()
        self.epoch: int | None = None
        self.leading = threading.Event()
        self._conn = None  # PostgreSQL: the connection holding the advisory lock
        self._postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")

    # -- taking it -------------------------------------------------------------------
    def wait_to_lead(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                if self._try_take():
                    return True
            except Exception:  # noqa: BLE001 - database away: a standby keeps asking
                log.warning("could not ask for the scheduler lead; asking again in 1 s")
                self._drop_connection()
            stop.wait(POLL_SECONDS)
        return False

    def _try_take(self) -> bool:
        if self._postgres:
            if self._conn is None:
                import psycopg

                url = self.app.config["SQLALCHEMY_DATABASE_URI"].replace(
                    "postgresql+psycopg://", "postgresql://")
                self._conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
            got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            if not got:
                return False
        with self.app.app_context():
            return self._write_takeover(utcnow())

    def _write_takeover(self, at: datetime) -> bool:
        """Record this process as leader with the next epoch. On SQLite only if the
        lease is free. Commits."""
        query = select(SchedulerLeader).where(SchedulerLeader.name == NAME)
        if self._postgres:
            query = query.with_for_update()
        row = db.session.scalar(query)
        if row is None:
            row = SchedulerLeader(name=NAME, epoch=0, since=at, heartbeat_at=at, expires_at=at)
            db.session.add(row)
        elif not self._postgres and row.expires_at > at and (row.host, row.pid) != (HOST, self.pid):
            db.session.rollback()
            return False
        row.epoch += 1
        row.host, row.pid, row.since, row.heartbeat_at = HOST, self.pid, at, at
        row.expires_at = at + LEASE
        self.epoch = row.epoch
        db.session.commit()
        self.leading.set()
        log.warning("scheduler: leading (epoch %d, %s:%d)", self.epoch, HOST, self.pid)
        return True

    # -- keeping it ------------------------------------------------------------------
    def keep(self, on_lost: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Renew the lead every second in a thread; on losing it, stop claiming at
        once and call ``on_lost``."""
        def renew() -> None:
            while not stop.wait(POLL_SECONDS) and self.leading.is_set():
                try:
                    with self.app.app_context():
                        still = self._renew(utcnow())
                except Exception:  # noqa: BLE001 - lost the database: we cannot fence
                    log.exception("scheduler: could not renew the lead")
                    still = False
                if not still:
                    self.lose()
                    on_lost()
                    return

        thread = threading.Thread(target=renew, name="leadership", daemon=True)
        thread.start()
        return thread

    def _renew(self, at: datetime) -> bool:
        if self._postgres:
            self._conn.execute("SELECT 1")  # the lock lives as long as this connection
        renewed = db.session.execute(
            update(SchedulerLeader)
            .where(SchedulerLeader.name == NAME, SchedulerLeader.epoch == self.epoch)
            .values(heartbeat_at=at, expires_at=at + LEASE)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        return renewed == 1

    def lose(self, stopping: bool = False) -> None:
        """Stop leading now: no claim from here on; the lock goes with its connection.
        ``stopping``: this process is shutting down, not losing the lead."""
        if self.leading.is_set():
            (log.warning if stopping else log.error)(
                "scheduler: %s (epoch %s); no more sending",
                "stepping down" if stopping else "lost the lead", self.epoch)
        self.leading.clear()
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is already gone
                pass
            self._conn = None


_fence: Leadership | None = None


def fence_with(leadership: Leadership | None) -> None:
    """Make every claim in this process check ``leadership`` (None: unfenced)."""
    global _fence
    _fence = leadership


def may_claim() -> bool:
    """In the claim transaction: does this process still lead? Always True when it
    never asked to lead. On PostgreSQL the leader row is share-locked until the claim
    commits, so a takeover's epoch cannot slip in between this check and the claim."""
    if _fence is None:
        return True
    if not _fence.leading.is_set():
        return False
    query = select(SchedulerLeader.epoch).where(SchedulerLeader.name == NAME)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    return db.session.scalar(query) == _fence.epoch


def current(now: datetime | None = None) -> dict | None:
    """{"host", "pid", "since", "heartbeat_at", "epoch", "age_seconds"} of the leader
    row, or None when no scheduler process ever led."""
    row = db.session.get(SchedulerLeader, NAME)
    if row is None:
        return None
    now = now or utcnow()
    return {"host": row.host, "pid": row.pid, "since": row.since.isoformat(),
            "heartbeat_at": row.heartbeat_at.isoformat(), "epoch": row.epoch,
            "age_seconds": int((now - row.heartbeat_at).total_seconds())}
