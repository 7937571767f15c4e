"""A cold series: fetched from the PACS in one request, rendered on every core, cached.

The viewer asks for a series in runs of slices, several runs at once, and gunicorn
hands them to different worker processes. The first run that finds its slices missing
takes the series' lock (a file lock under the disk cache, so it holds across workers
and across the scheduler's prefetch) and starts one job in the background: one
series-level WADO-RS retrieve (`DicomWebClient.iter_series`), every file handed to the
render pool (workflow.imaging.render_pool) as it arrives, every image put in the
caches. Each run, the lock holder's own included, waits only for its own slices to
appear in the caches, so the nearest run is answered before the series is done.

Once a job for a series, window and format has ended without a PACS failure, a marker
says so for MARK_SECONDS; until then a slice still missing (evicted, or it could not be
rendered) is fetched on its own by the caller, which reports the reason. A job the PACS
failed leaves no marker: the run that waited for it answers 503, and the next run (the
viewer's Retry) asks the PACS again.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from integrations.pacs import PacsError
from workflow.imaging.cache import caches
from workflow.imaging.endpoints import Outcome, PacsTarget, client
from workflow.imaging.render_pool import Wanted, pool_for

log = logging.getLogger(__name__)

WAIT_SECONDS = 30.0  # a run waits this long for its slices before fetching them itself
MARK_SECONDS = 600.0
_POLL = 0.05  # seconds between looks at the caches when another process renders
_jobs = ThreadPoolExecutor(max_workers=2, thread_name_prefix="series-fetch")
_started: list[Future] = []
_started_lock = threading.Lock()
_progress = threading.Condition()  # notified as this process's jobs cache each slice


@dataclass(frozen=True)
class SeriesWork:
    """One series to render: where it is, what to render of each slice and under
    which cache keys (``keys[sop_uid][i]`` is the key of ``wanted[i]``)."""

    target: PacsTarget
    study_uid: str
    series_uid: str
    wanted: Wanted
    keys: dict[str, tuple[str, ...]]
    label: str  # the window and format: part of the lock's name

    @property
    def name(self) -> str:
        text = f"{self.target.endpoint_id}/{self.study_uid}/{self.series_uid}/{self.label}"
        return hashlib.sha256(text.encode()).hexdigest()


class _Lock:
    """An exclusive, non-blocking file lock (flock): it holds across processes, and
    between two threads of one process, since each opens the file itself."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_take(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _folder(app: Flask) -> Path:
    return caches(app).disk.folder / "series"


def _ended_recently(app: Flask, work: SeriesWork) -> bool:
    try:
        return time.time() - (_folder(app) / f"{work.name}.ended").stat().st_mtime < MARK_SECONDS
    except OSError:
        return False


def _missing(app: Flask, keys: list[str]) -> list[str]:
    """``keys`` from the first one not yet cached. A look at the caches costs a file
    open per missing key, and slices arrive roughly in order: this is one or two looks
    per poll, not one per slice of the run."""
    cache = caches(app)
    for at, key in enumerate(keys):
        if cache.get_frame(key)[0] is None:
            return keys[at:]
    return []


def render_into_caches(app: Flask, work: SeriesWork, *, book=None) -> tuple[int, str]:
    """Fetch the series in one request and render every listed slice in the pool, into
    the caches, unless another process is doing it now or has just done it (then
    (0, "") at once). Slices the PACS sends that the snapshot does not list are left
    out. Returns (slices rendered, why the PACS failed or ""); ``book(outcome)`` is told
    how the PACS request went. Never raises: a PACS failure or a slice that cannot be
    rendered leaves gaps that the caller fills (or explains) slice by slice.
    """
    lock = _Lock(_folder(app) / f"{work.name}.lock")
    if not lock.try_take():
        return 0, ""
    if _ended_recently(app, work):  # it ran while this job waited for the lock
        lock.release()
        return 0, ""
    rendered, error = 0, ""
    try:
        rendered, error = _run(app, work, book)
    except Exception:  # noqa: BLE001 - the runs waiting fall back to slice by slice
        log.warning("series job for %s failed", work.target.hospital_name, exc_info=True)
    finally:
        if not error:  # a PACS that failed is asked again by the next run (Retry)
            marker = _folder(app) / f"{work.name}.ended"
            try:
                marker.touch()
                os.utime(marker)
            except OSError:
                pass
        lock.release()
    return rendered, error


def _run(app: Flask, work: SeriesWork, book) -> tuple[int, str]:
    cache = caches(app)
    pacs = client(work.target)
    started = time.monotonic()

    def files():
        for data in pacs.iter_series(work.study_uid, work.series_uid):
            yield None, data

    rendered, error, status = 0, "", None
    pool = pool_for(app.config.get("IMAGE_RENDER_PROCESSES"))
    try:
        for _, result in pool.render(files(), work.wanted):
            sop_uid, images = result
            keys = work.keys.get(sop_uid)
            if keys is None or isinstance(images, str):
                continue  # not in the snapshot; or cannot be rendered (asked alone: why)
            for key, image in zip(keys, images, strict=True):
                cache.put_frame(key, image)
            rendered += 1
            with _progress:
                _progress.notify_all()
    except PacsError as exc:
        error, status = exc.message, exc.status
        log.info("series fetch from %s stopped: %s", work.target.hospital_name, exc.message)
    if book is not None:
        book(Outcome(work.target.endpoint_id, not error,
                     int((time.monotonic() - started) * 1000), error, status))
    # A PACS that no longer has the series (404) is the caller's to tell slice by slice.
    return rendered, error if status != 404 else ""


def await_slices(app: Flask, work: SeriesWork, keys: list[str], *, book=None) -> str:
    """Wait until ``keys`` are in the caches, starting the series' job in the background
    if nobody runs it yet; return early once the job has ended (or WAIT_SECONDS have
    passed) with keys still missing. Returns why the PACS failed when this process's
    job did (the caller then asks it no more), else "". Raises nothing."""
    if not keys or _ended_recently(app, work):
        return ""
    deadline = time.monotonic() + WAIT_SECONDS
    job = _jobs.submit(_in_context, app, work, book)
    with _started_lock:
        _started[:] = [f for f in _started if not f.done()] + [job]
    while time.monotonic() < deadline:
        keys = _missing(app, keys)
        if not keys:
            return ""
        if job.done():
            rendered, error = job.result()
            if error or rendered or not _busy(app, work):
                # Ours ran and ended, or it found another process's job and that one
                # has ended too: what is still missing will not come this way.
                return error if _missing(app, keys) else ""
        with _progress:
            _progress.wait(_POLL)
    return ""


def _busy(app: Flask, work: SeriesWork) -> bool:
    lock = _Lock(_folder(app) / f"{work.name}.lock")
    if lock.try_take():
        lock.release()
        return False
    return True


def _in_context(app: Flask, work: SeriesWork, book) -> tuple[int, str]:
    with app.app_context():
        return render_into_caches(app, work, book=book)


def wait(timeout: float = 30) -> None:
    """Block until the series jobs started so far have ended (tests, benchmarks)."""
    with _started_lock:
        started = list(_started)
    wait_futures(started, timeout=timeout)
