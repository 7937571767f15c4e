"""Sending a sweep's deliveries a few at a time, each on its own thread and session.

Sent one after another, a page costs the sweep the provider's round trip (about
100 ms at Twilio), so at 10 referrals a second the pages behind it queued for
seconds. The pool sends up to ``SEND_WORKERS`` deliveries at once. The sweep claims
a page only when a sender is free, so a claimed delivery waits at most one send
for a thread: never long enough to outlive its lease and be sent twice.

SQLite (development) sends inline, one at a time: its writers queue on one lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from flask import current_app

from extensions import db

log = logging.getLogger(__name__)


def workers_for(config: Mapping, dialect: str) -> int:
    """How many deliveries one sweep sends at once on this database."""
    return 1 if dialect == "sqlite" else max(1, int(config.get("SEND_WORKERS", 8)))


class SendPool:
    """Runs ``send(delivery_id, channels)`` on worker threads; ``close()`` waits for all.

    A send that raises is logged and named in ``errors``; its delivery stays
    "sending" and the lease brings it back (see workflow.sweep).
    """

    def __init__(self, send: Callable, channels: Mapping, workers: int):
        self._send, self._channels, self._workers = send, channels, workers
        self._app = current_app._get_current_object()
        self._slots = threading.BoundedSemaphore(workers)
        self._executor = (ThreadPoolExecutor(workers, thread_name_prefix="goldenhour-send")
                          if workers > 1 else None)
        self._futures: list[tuple[int, Future]] = []
        self.outcomes: list = []
        self.errors: list[str] = []

    def wait_for_free_sender(self) -> None:
        """Block until a sender is free (claim a page only then)."""
        if self._executor is not None:
            self._slots.acquire()
            self._slots.release()

    def submit(self, delivery_id: int) -> None:
        if self._executor is None:
            self.outcomes.append(self._send(delivery_id, self._channels))
            return
        self._slots.acquire()
        self._futures.append((delivery_id, self._executor.submit(self._run, delivery_id)))

    def _run(self, delivery_id: int):
        try:
            with self._app.app_context():
                try:
                    return self._send(delivery_id, self._channels)
                finally:
                    db.session.remove()
        finally:
            self._slots.release()

    def close(self) -> None:
        """Wait for every submitted send; collect outcomes and errors."""
        if self._executor is None:
            return
        self._executor.shutdown(wait=True)
        for delivery_id, future in self._futures:
            try:
                self.outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 - the lease resends it; say so
                log.exception("sending delivery %s failed", delivery_id)
                self.errors.append(f"delivery {delivery_id}: {exc}")
        self._futures.clear()
