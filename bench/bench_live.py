"""How soon an open referral page hears of a change, through real gunicorn workers.

    .venv/bin/python bench/bench_live.py [--messages 20] [--write]

Starts its own PostgreSQL cluster (tests/services/postgres.py) and gunicorn with two
threaded workers (--worker-class gthread, as `make serve`), signs the referrer in with a
password (a browser session), opens the referral page's event stream, then has the
on-call specialist post ``--messages`` messages through the API one after another. For
each it measures the time from the POST's answer (the message committed) to the
stream's ``change`` event: the stream polls the events table every LIVE_POLL_MS (1000),
so the figure is about half a second plus the worker's turnaround. Prints the figures;
``--write`` appends them to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.services import free_port, stop_process_group, wait_until  # noqa: E402
from tests.services.postgres import start_postgres  # noqa: E402

BIN = ROOT / ".venv" / "bin"
REFERRER = "referrer@pil.demo.nhs.uk"
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
PASSWORD = "goldenhour-demo"
COMMAND = ".venv/bin/python bench/bench_live.py"


def run(cmd: list[str], env: dict) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def referral_payload() -> dict:
    arrived = (datetime.now().replace(microsecond=0) - timedelta(minutes=20)).isoformat()
    return {"specialty": "stroke", "referring_hospital": "PIL", "urgency": "emergency",
            "arrived_at": arrived, "onset_at": None, "onset_certainty": "unknown",
            "question": "Thrombectomy?",
            "separate_referral": True,  # one patient, raised once per run on purpose
            "patient": {"nhs_number": "9434765919", "family_name": "Bench",
                        "given_name": "Pat", "birth_date": "1950-01-01", "sex": "female"},
            "clinical": {"nihss": 14, "pre_stroke_mrs": 1, "anticoagulant": "none",
                         "thrombolysis_given": False, "imaging": ["CT", "CTA"]}}


def sign_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    answer = session.post(f"{base}/login", data={"email": REFERRER, "password": PASSWORD,
                                                 "csrf_token": token},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:300]
    return session


def listen(session: requests.Session, url: str, heard: queue.Queue, stop: threading.Event):
    """Put (monotonic time, event name) on ``heard`` for each event of the stream."""
    with session.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if stop.is_set():
                return
            if line and line.startswith("event: "):
                heard.put((time.monotonic(), line[7:]))


def measure(messages: int) -> dict:
    server = start_postgres()
    web = None
    workdir = Path(tempfile.mkdtemp(prefix="gh-bench-live-"))
    try:
        url = server.create_database("gh_bench_live")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "app.py",
               "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
               "PUBLIC_BASE_URL": base, "GOLDENHOUR_ENV": "production",
               "SCHEDULER_IN_PROCESS": "false", "LIVE_STREAM_SECONDS": "300"}
        run([str(BIN / "flask"), "db", "upgrade"], env)
        run([str(BIN / "flask"), "seed-demo", "--quiet"], env)
        tokens = {email: run([str(BIN / "flask"), "users", "token", email, "--label", "bench"],
                             env).strip().splitlines()[-1] for email in (REFERRER, SPECIALIST)}
        with open(workdir / "gunicorn.log", "wb") as log:
            web = subprocess.Popen(
                [str(BIN / "gunicorn"), "-w", "2", "--worker-class", "gthread", "--threads",
                 "8", "-b", f"127.0.0.1:{port}", "app:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: requests.get(f"{base}/health", timeout=1).ok, 60, "gunicorn")
        api = requests.Session()
        raised = api.post(f"{base}/api/v1/referrals", json=referral_payload(), timeout=30,
                          headers={"Authorization": f"Bearer {tokens[REFERRER]}"})
        assert raised.status_code == 201, raised.text
        referral_id = raised.json()["id"]

        heard: queue.Queue = queue.Queue()
        stop = threading.Event()
        listener = threading.Thread(target=listen, daemon=True, args=(
            sign_in(base), f"{base}/referrals/{referral_id}/events", heard, stop))
        listener.start()
        # The first change says what the page has not seen yet (it gave no mark).
        while heard.get(timeout=10)[1] != "change":
            pass
        latencies, rng = [], random.Random(16)
        specialist = {"Authorization": f"Bearer {tokens[SPECIALIST]}"}
        for i in range(messages):
            time.sleep(rng.uniform(0, 1))  # not in step with the stream's polls
            answer = api.post(f"{base}/api/v1/referrals/{referral_id}/messages",
                              json={"text": f"Message {i}"}, headers=specialist, timeout=30)
            committed = time.monotonic()
            assert answer.status_code == 200, answer.text
            while True:
                at, name = heard.get(timeout=10)
                if name == "change":
                    latencies.append((at - committed) * 1000)
                    break
        stop.set()
        return {"latencies": latencies}
    finally:
        if web is not None:
            stop_process_group(web)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    found = measure(args.messages)["latencies"]
    ordered = sorted(found)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    lines = [
        "",
        "## Live pages: a change reaches an open page",
        "",
        f"Reproduce: `{COMMAND} --messages {args.messages}` (its own PostgreSQL; gunicorn "
        "2 gthread workers × 8 threads; LIVE_POLL_MS 1000). Measured "
        f"{datetime.now().date()} on {platform.machine()}, {os.cpu_count()} cores shared "
        "with other engineers' work.",
        "",
        "| what | median ms | p90 ms | max ms | runs |",
        "|---|---|---|---|---|",
        f"| message committed (API answer) → `change` on the referrer's stream | "
        f"{statistics.median(found):.0f} | {p90:.0f} | {max(found):.0f} | {len(found)} |",
        "",
    ]
    print("\n".join(lines))
    if args.write:
        with open(ROOT / "docs" / "BENCHMARKS.md", "a") as out:
            out.write("\n".join(lines))
        print("appended to docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
