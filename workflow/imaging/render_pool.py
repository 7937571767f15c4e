"""Rendering a series on every core: a process pool for decode, window and encode.

Python renders one slice at a time per process (pydicom's parse holds the GIL), so a
cold series is rendered by a pool of ``IMAGE_RENDER_PROCESSES`` processes (default:
the machine's cores; 0 renders in the calling process). One slice asked for on its own
is rendered in the calling process: sending the file to another process would cost more
than it saves.

The pool is made on first use in the process that uses it, never inherited: a pool
made before gunicorn forks its workers would belong to the master. Its processes come
from a fork server (a clean single-threaded process that has imported the renderer
once), so they start in milliseconds and never copy a threaded web worker's state.
When a pool cannot be made, or breaks (a child killed by the OOM killer), the work is
done in the calling process instead and a new pool is tried a minute later.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from integrations import imaging

log = logging.getLogger(__name__)

RETRY_AFTER = 60.0  # seconds before a pool that failed is made again
# (window, frame, format) for each image wanted of one file; window None = the file's.
Wanted = tuple[tuple[imaging.Window | None, int, str], ...]


def render_file(data: bytes, wanted: Wanted) -> tuple[str, list[bytes] | str]:
    """(SOP Instance UID, every image ``wanted`` of one DICOM file, parsed once); in
    place of the images the ImagingError's message when the file cannot be rendered.
    Runs in a pool process: it returns the reason rather than raising, so that only
    bytes and text cross between processes."""
    try:
        ds = imaging.read_dataset(data)
        sop_uid = str(ds.get("SOPInstanceUID", "") or "").strip()
    except imaging.ImagingError as exc:
        return "", exc.message
    try:
        return sop_uid, [imaging.render_dataset(ds, window=window, frame=frame, fmt=fmt)
                         for window, frame, fmt in wanted]
    except imaging.ImagingError as exc:
        return sop_uid, exc.message


def _ready(_: int) -> bool:
    return True


class RenderPool:
    """A lazily made process pool of ``processes`` workers (0: none, render here)."""

    def __init__(self, processes: int):
        self.processes = max(0, processes)
        self._executor: ProcessPoolExecutor | None = None
        self._pid = 0
        self._failed_at = -RETRY_AFTER
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor | None:
        if self.processes == 0:
            return None
        with self._lock:
            if self._executor is not None and self._pid == os.getpid():
                return self._executor
            if time.monotonic() - self._failed_at < RETRY_AFTER:
                return None
            try:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["integrations.imaging"])
                self._executor = ProcessPoolExecutor(self.processes, mp_context=context)
                self._pid = os.getpid()
            except (OSError, ValueError, NotImplementedError) as exc:
                self._broken(f"could not be started ({exc})")
                return None
            return self._executor

    def _broken(self, why: str) -> None:
        log.warning("image render pool %s; rendering in this process for %.0f s",
                    why, RETRY_AFTER)
        self._failed_at = time.monotonic()
        executor, self._executor = self._executor, None
        if executor is not None and self._pid == os.getpid():
            executor.shutdown(wait=False, cancel_futures=True)

    def warm(self) -> None:
        """Start the pool's processes now, in the background, if they are not running:
        a viewer page about to ask for a series should not wait for the fork server and
        its children (~1 s each on a busy machine). Never blocks, never raises."""
        if self.processes == 0 or (self._executor is not None and self._pid == os.getpid()):
            return
        threading.Thread(target=self._start_processes, name="render-pool-warm",
                         daemon=True).start()

    def _start_processes(self) -> None:
        pool = self._pool()
        if pool is None:
            return
        try:
            list(pool.map(_ready, range(self.processes)))
        except BrokenProcessPool:
            self._broken("broke while starting")

    @property
    def in_use(self) -> bool:
        """True when work would go to the pool now (made, or to be made)."""
        return self._pool() is not None

    def render(self, files: Iterable[tuple[object, bytes]], wanted: Wanted
               ) -> Iterator[tuple[object, tuple[str, list[bytes] | str]]]:
        """(tag, `render_file`'s answer) for each (tag, file) of ``files``, as
        each finishes (not in order). Files are handed to the pool as ``files`` yields
        them, so a streamed series is rendered while the rest is still arriving. A
        pool that cannot be had or breaks part-way is replaced by this process for the
        files not yet done. Raises what iterating ``files`` raises."""
        files = iter(files)
        pool = self._pool()
        if pool is None:
            for tag, data in files:
                yield tag, render_file(data, wanted)
            return
        futures: dict[Future, tuple[object, bytes]] = {}
        done: set[Future] = set()
        handing: tuple[object, bytes] | None = None  # taken from ``files``, not yet submitted
        try:
            for handing in files:
                futures[pool.submit(render_file, handing[1], wanted)] = handing
                handing = None
                # Hand back what is already rendered without waiting for the rest.
                for future in [f for f in futures if f not in done and f.done()]:
                    yield self._settle(futures, done, future)
            for future in as_completed([f for f in futures if f not in done]):
                yield self._settle(futures, done, future)
        except BrokenProcessPool:
            self._broken("broke (a worker process died)")
            left = [item for f, item in futures.items() if f not in done]
            for tag, data in [*left, *([handing] if handing else [])]:
                yield tag, render_file(data, wanted)
            for tag, data in files:  # what the series has still to send
                yield tag, render_file(data, wanted)

    @staticmethod
    def _settle(futures: dict, done: set, future: Future):
        answer = future.result()  # raises BrokenProcessPool if its process died
        done.add(future)
        futures[future] = (futures[future][0], b"")  # the file is no longer needed
        return futures[future][0], answer

    def shutdown(self) -> None:
        with self._lock:
            if self._executor is not None and self._pid == os.getpid():
                self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


_pools: dict[int, RenderPool] = {}
_pools_lock = threading.Lock()


def pool_for(processes: int | None) -> RenderPool:
    """The process's pool of that size (None: one per core)."""
    size = (os.cpu_count() or 1) if processes is None else processes
    with _pools_lock:
        return _pools.setdefault(size, RenderPool(size))
