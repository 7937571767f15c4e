"""Bounded caches for images: rendered frames in memory and on disk, DICOM files in memory.

The disk cache lives under the instance folder so that the scheduler process (which
prefetches when a page goes out) and the web processes share it; each process keeps
its own small in-memory LRU in front. Both are bounded in bytes; the oldest entries go
first. Nothing here checks access: callers check the referral before asking.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from flask import Flask


class MemoryLRU:
    """A thread-safe LRU of bytes values, bounded by their total size."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # one huge value would push everything else out
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)


class DiskCache:
    """Files named by the SHA-256 of the key, bounded in total bytes (oldest out)."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder = folder
        self.max_bytes = max_bytes
        self._writes = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.folder / digest[:2] / digest

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except OSError:
            return None

    def put(self, key: str, value: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written beside, then renamed: a reader never sees half a file.
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            with os.fdopen(handle, "wb") as out:
                out.write(value)
            os.replace(temp, path)
        except OSError:
            return  # a full or read-only disk costs speed, not correctness
        with self._lock:
            self._writes += 1
            prune = self._writes % 200 == 0
        if prune:
            self.prune()

    def prune(self) -> None:
        """Delete the least recently written files until under the bound."""
        files = []
        for path in self.folder.glob("*/*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


class ImageCaches:
    """The caches of one app: rendered frames (memory, disk) and fetched files (memory)."""

    def __init__(self, app: Flask):
        mb = 1024 * 1024
        self.frames = MemoryLRU(int(app.config.get("IMAGE_CACHE_MEMORY_MB", 64)) * mb)
        self.disk = DiskCache(Path(app.instance_path) / "image-cache",
                              int(app.config.get("IMAGE_CACHE_DISK_MB", 1024)) * mb)
        self.files = MemoryLRU(int(app.config.get("IMAGE_FILE_CACHE_MB", 128)) * mb)

    def get_frame(self, key: str) -> tuple[bytes | None, str]:
        """(image, where it was found: memory | disk | "")."""
        value = self.frames.get(key)
        if value is not None:
            return value, "memory"
        value = self.disk.get(key)
        if value is not None:
            self.frames.put(key, value)
            return value, "disk"
        return None, ""

    def put_frame(self, key: str, value: bytes) -> None:
        self.frames.put(key, value)
        self.disk.put(key, value)


_lock = threading.Lock()


def caches(app: Flask) -> ImageCaches:
    with _lock:
        found = app.extensions.get("goldenhour.image_caches")
        if found is None:
            found = app.extensions["goldenhour.image_caches"] = ImageCaches(app)
        return found
