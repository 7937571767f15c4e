"""`make serve`'s gunicorn starts each worker's image render pool when the worker boots,
not on the first series a specialist opens."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import pytest
import requests

from scripts.serve import gunicorn_command
from tests.services import free_port, stop_process_group, wait_until

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_each_gunicorn_worker_has_its_render_pool_before_any_image_is_asked_for(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'boot.db'}",
           "SECRET_KEY": "render-pool-at-boot-secret-0123456789abcdef",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "SCHEDULER_IN_PROCESS": "0",
           "GOLDENHOUR_INSTANCE_PATH": str(tmp_path / "instance"),
           "IMAGE_RENDER_PROCESSES": "2"}
    with open(tmp_path / "gunicorn.log", "wb") as log:
        web = subprocess.Popen(gunicorn_command(port, workers=2, threads=2), cwd=ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok,
                   60, "gunicorn")
        master = psutil.Process(web.pid)

        def pools_running() -> bool:
            workers = master.children()
            # Under each worker: its fork server, and the fork server's two pool processes.
            return len(workers) == 2 and all(
                len(w.children(recursive=True)) >= 3 for w in workers)

        wait_until(pools_running, 60, "each worker's render pool")
    finally:
        stop_process_group(web)
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text(errors="replace")
