"""Real services the suite starts on 127.0.0.1: PostgreSQL, Orthanc, Prism, SMTP, and
oidc-provider as the identity provider.

Each service module defines session-scoped pytest fixtures and is loaded from
tests/conftest.py through ``pytest_plugins``. When a service's binary is missing the
test is skipped on a developer's machine, but fails under ``CI=true``: CI must never
go green by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_service(reason: str) -> None:
    """Skip (developer machine) or fail (CI) because a service cannot run here."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(reason)


def require_binary(*candidates: str) -> str:
    """Return the first executable found among ``candidates`` or skip/fail."""
    for name in candidates:
        path = shutil.which(name) or (name if os.access(name, os.X_OK) else None)
        if path:
            return path
    missing_service(f"none of {', '.join(candidates)} is installed; run `make test-deps`")
    raise AssertionError("unreachable")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it returns True; after ``timeout`` raise RuntimeError naming
    ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - the service is still starting
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s")


def stop_process_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the process group started with ``start_new_session``; SIGKILL after
    ``grace`` seconds if it is still there."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
