"""How soon an open referral page hears of a change, through the production server.

    .venv/bin/python bench/bench_live.py [--messages 20]

Starts PostgreSQL and gunicorn as `make serve` does (bench/production.py: 2 gthread
workers here), signs the referrer in over HTTP as a browser does, opens the referral
page's event stream, then has the on-call specialist post ``--messages`` messages
through the API (a bearer token) one after another. For each it measures the time from
the POST's answer (the message committed) to the stream's ``change`` event: the stream
polls the events table every LIVE_POLL_MS (1000), so the figure is about half a second
plus the worker's turnaround. Prints the table as the "live" section of
docs/BENCHMARKS.md (`make bench` rewrites it there).
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import random
import statistics
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.bench_overhead import commit  # noqa: E402
from bench.production import Production  # noqa: E402
from bench.sections import section  # noqa: E402

REFERRER = "referrer@pil.demo.nhs.uk"
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
COMMAND = ".venv/bin/python bench/bench_live.py"
WORKERS = 2


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


def listen(session: requests.Session, url: str, heard: queue.Queue, stop: threading.Event):
    """Put (monotonic time, event name) on ``heard`` for each event of the stream."""
    with session.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if stop.is_set():
                return
            if line and line.startswith("event: "):
                heard.put((time.monotonic(), line[7:]))


def measure(messages: int) -> list[float]:
    """Milliseconds from each message's committed answer to the referrer's `change`."""
    with Production(workers=WORKERS, env={"LIVE_STREAM_SECONDS": "300"}) as prod:
        tokens = {email: prod.flask("users", "token", email, "--label", "bench")
                  .strip().splitlines()[-1] for email in (REFERRER, SPECIALIST)}
        api = requests.Session()
        raised = api.post(prod.url("/api/v1/referrals"), json=referral_payload(), timeout=30,
                          headers={"Authorization": f"Bearer {tokens[REFERRER]}"})
        if raised.status_code != 201:
            raise RuntimeError(f"the referral was not raised: {raised.text[:300]}")
        referral_id = raised.json()["id"]

        heard: queue.Queue = queue.Queue()
        stop = threading.Event()
        listener = threading.Thread(target=listen, daemon=True, args=(
            prod.sign_in(REFERRER), prod.url(f"/referrals/{referral_id}/events"), heard,
            stop))
        listener.start()
        # The first change says what the page has not seen yet (it gave no mark).
        while heard.get(timeout=10)[1] != "change":
            pass
        latencies, rng = [], random.Random(16)
        specialist = {"Authorization": f"Bearer {tokens[SPECIALIST]}"}
        for i in range(messages):
            time.sleep(rng.uniform(0, 1))  # not in step with the stream's polls
            answer = api.post(prod.url(f"/api/v1/referrals/{referral_id}/messages"),
                              json={"text": f"Message {i}"}, headers=specialist, timeout=30)
            committed = time.monotonic()
            if answer.status_code != 200:
                raise RuntimeError(f"message {i} was refused: {answer.text[:300]}")
            while True:
                at, name = heard.get(timeout=10)
                if name == "change":
                    latencies.append((at - committed) * 1000)
                    break
        stop.set()
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    found = measure(args.messages)
    ordered = sorted(found)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    lines = [
        f"Reproduce: `{COMMAND} --messages {args.messages}` (PostgreSQL and gunicorn as "
        f"`make serve` starts them, bench/production.py: {WORKERS} gthread workers × 16 "
        f"threads; LIVE_POLL_MS 1000). Measured {time.strftime('%Y-%m-%d %H:%M')} UTC at "
        f"commit {commit()}, {platform.machine()}, {os.cpu_count()} cores shared with other "
        f"work (load average {os.getloadavg()[0]:.1f} at the end).",
        "",
        "| what | median ms | p90 ms | max ms | runs |",
        "|---|---|---|---|---|",
        f"| message committed (API answer) → `change` on the referrer's stream | "
        f"{statistics.median(found):.0f} | {p90:.0f} | {max(found):.0f} | {len(found)} |",
    ]
    print(section("live", "\n".join(lines)))


if __name__ == "__main__":
    main()
