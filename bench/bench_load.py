"""Load test: gunicorn + PostgreSQL + Prism (+ Orthanc) + one scheduler, driven by locust.

    .venv/bin/python bench/bench_load.py [--minutes 10] [--users 12] [--workers 3]
    make load                      # LOAD_MINUTES (default 10)

Starts its own PostgreSQL cluster (tests/services/postgres.py), Prism behind the
recording proxy (tests/services/prism.py), the test Orthanc with the sample head CT if
it is installed, gunicorn (``--workers``) and one `flask scheduler run`, all on
127.0.0.1. It migrates and seeds the demo network, gives the stroke service a short
policy (tier 1, then tier 2 after 1 minute), issues API tokens, links the sample CT to
a few referrals, lets the scheduler page some referrals (whose Twilio SIDs the status
callbacks name), then runs locust headless (bench/load/locustfile.py) for ``--minutes``
and prints, between bench markers (bench/sections.py):

  per request kind: count, failures, p50/p95/p99 (locust's own percentiles);
  error rate over all requests;
  escalation lateness: for every escalation page that fell due during the run, from
  its due_at to its first delivery sent (Twilio's answer), p50/p95/p99 and max; pages
  due more than 5 s before the end and never sent count as failures.

Targets (issue 14): p95 < 500 ms per kind, errors < 0.1 %, lateness p99 < 5 s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.sections import section  # noqa: E402
from tests.services import free_port, stop_process_group, wait_until  # noqa: E402
from tests.services.postgres import start_postgres  # noqa: E402
from tests.services.prism import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, start_prism  # noqa: E402

BIN = Path(sys.executable).parent
REFERRER = "referrer@pil.demo.nhs.uk"
SPECIALISTS = ["stroke.night@qmc.demo.nhs.uk", "stroke.day@qmc.demo.nhs.uk",
               "stroke.consultant@qmc.demo.nhs.uk"]
AUDIT = "audit@em.demo.nhs.uk"
PASSWORD = "goldenhour-demo"
POLICY = [{"who": "tier1", "channels": ["sms"], "wait_minutes": 1, "repeat": 0},
          {"who": "tier2", "channels": ["sms"], "wait_minutes": 120, "repeat": 0}]
SECRET = "load-test-secret-key-that-is-long-enough-0123456789"


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _run(cmd: list[str], env: dict) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _orthanc(workdir: Path):
    """The test Orthanc with the sample CT, or None when it is not installed here."""
    try:
        from tests.services.orthanc import find_plugin, start_orthanc

        if shutil.which("Orthanc") is None and not Path("/usr/sbin/Orthanc").exists() \
                or find_plugin() is None:
            return None
        server = start_orthanc(workdir / "orthanc")
        server.load_samples()
        return server
    except (ImportError, RuntimeError, OSError) as exc:
        print(f"Orthanc not started ({exc}); specialists will not open images")
        return None


def prepare(env: dict, orthanc, base: str) -> dict:
    """In-process set-up on the migrated, seeded database; returns the locust fixture."""
    from app import create_app
    from extensions import db
    from models import EscalationPolicy, HubService, LinkedStudy, Specialty
    from tests.images.conftest import PATIENT_ID, SAMPLE_STUDY, point_pilgrim_at
    from tests.paging.helpers import raise_stroke, stroke_payload, user
    from workflow.accounts.accounts import issue_token
    from workflow.imaging import studies

    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"].replace(
        "postgresql://", "postgresql+psycopg://"), "SECRET_KEY": SECRET,
        "SCHEDULER_IN_PROCESS": False, "PUBLIC_BASE_URL": base})
    fixture = {"tokens": {}, "specialists": SPECIALISTS, "image_referrals": [], "frames": [],
               "audit_email": AUDIT, "password": PASSWORD, "public_base_url": base,
               "twilio_auth_token": AUTH_TOKEN, "twilio_account_sid": ACCOUNT_SID,
               "webhooks_per_second": 20, "webhook_users": 4}
    with app.app_context():
        stroke = select(HubService.id).join(Specialty).where(Specialty.code == "stroke")
        for service_id in db.session.scalars(stroke):
            db.session.add(EscalationPolicy(hub_service_id=service_id, steps=POLICY))
        db.session.commit()
        fixture["tokens"]["referrer"] = issue_token(REFERRER, "load")
        for email in SPECIALISTS:
            fixture["tokens"][email] = issue_token(email, "load")
        if orthanc is not None:
            point_pilgrim_at(orthanc.base_url, auth=orthanc.auth)
            for _ in range(5):
                referral = raise_stroke(patient=dict(stroke_payload()["patient"],
                                                     local_number=PATIENT_ID))
                studies.link(referral.id, user(REFERRER), "PIL", [SAMPLE_STUDY])
                fixture["image_referrals"].append(referral.id)
                linked = db.session.scalars(select(LinkedStudy).where(
                    LinkedStudy.referral_id == referral.id)).first()
                for item in linked.snapshot["series"][0]["instances"][:6]:
                    fixture["frames"].append(
                        f"/api/v1/referrals/{referral.id}/studies/{SAMPLE_STUDY}/instances/"
                        f"{item['sop_uid']}/rendered?frame=1&preset=brain&format=jpeg")
        else:
            fixture["image_referrals"] = [raise_stroke().id for _ in range(5)]
        db.session.remove()
    return fixture


def sent_pages(dsn: str) -> list[list]:
    with psycopg.connect(dsn) as conn:
        return [list(r) for r in conn.execute(
            "SELECT id, provider_id FROM deliveries WHERE provider_id IS NOT NULL "
            "AND channel = 'sms'").fetchall()]


def lateness(dsn: str, started: datetime, ended: datetime) -> dict:
    """Escalation pages that fell due during the run: due_at -> first delivery sent."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.id, p.status, p.due_at, min(d.sent_at) FROM pages p "
            "LEFT JOIN deliveries d ON d.page_id = p.id AND d.sent_at IS NOT NULL "
            "WHERE p.kind = 'escalation' AND p.due_at >= %s AND p.due_at <= %s "
            "GROUP BY p.id, p.status, p.due_at",
            (started.replace(tzinfo=None), ended.replace(tzinfo=None))).fetchall()
    late = [(sent - due).total_seconds() for _, status, due, sent in rows if sent is not None]
    cutoff = ended.replace(tzinfo=None).timestamp() - 5
    missed = sum(1 for _, status, due, sent in rows
                 if sent is None and status in ("due", "claimed") and due.timestamp() < cutoff)
    cancelled = sum(1 for _, status, _, _ in rows if status == "cancelled")
    return {"n": len(late), "missed": missed, "cancelled": cancelled,
            "p50": percentile(late, 50), "p95": percentile(late, 95),
            "p99": percentile(late, 99), "max": max(late) if late else None}


def read_stats(prefix: Path) -> list[dict]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return list(csv.DictReader(f))


def measure(args) -> tuple[list[str], dict]:
    workdir = Path(tempfile.mkdtemp(prefix="gh-bench-load-"))
    server = start_postgres()
    processes: list[subprocess.Popen] = []
    prism = proxy = orthanc = None
    try:
        url = server.create_database("gh_load")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        prism, boundary, proxy = start_prism(workdir / "prism.log")
        orthanc = None if args.no_images else _orthanc(workdir)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": dsn, "FLASK_APP": "app.py", "SECRET_KEY": SECRET,
               "PUBLIC_BASE_URL": base, "GOLDENHOUR_ENV": "development",
               "SCHEDULER_IN_PROCESS": "0", "GOLDENHOUR_REQUIRE_2FA_ROLES": "",
               "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE": boundary.base_url,
               "PYTHONPATH": str(ROOT), "GOLDENHOUR_INSTANCE_PATH": str(workdir / "instance")}
        _run([str(BIN / "flask"), "db", "upgrade"], env)
        _run([str(BIN / "flask"), "seed-demo", "--quiet"], env)
        fixture = prepare(env, orthanc, base)  # before the scheduler pages its referrals
        processes.append(_start([str(BIN / "flask"), "scheduler", "run"], env,
                                workdir / "scheduler.log"))
        wait_until(lambda: len(sent_pages(dsn)) >= 5, 60, "the scheduler paging")
        fixture["sent"] = sent_pages(dsn)
        (workdir / "fixture.json").write_text(json.dumps(fixture))
        processes.append(_start([str(BIN / "gunicorn"), "-w", str(args.workers), "-b",
                                 f"127.0.0.1:{port}", "app:create_app()"], env,
                                workdir / "gunicorn.log"))
        wait_until(lambda: requests.get(f"{base}/health", timeout=2).ok, 60, "gunicorn")
        prefix = workdir / "locust"
        started = datetime.now(UTC)
        print(f"locust: {args.users} users for {args.minutes:g} min against {base} ...",
              flush=True)
        subprocess.run([str(BIN / "locust"), "-f", str(ROOT / "bench/load/locustfile.py"),
                        "--headless", "--host", base, "-u", str(args.users), "-r", "4",
                        "-t", f"{int(args.minutes * 60)}s", "--csv", str(prefix),
                        "--only-summary", "--loglevel", "WARNING"],
                       cwd=ROOT, env={**env, "LOAD_FIXTURE": str(workdir / "fixture.json")},
                       check=False, timeout=args.minutes * 60 + 120,
                       stdout=open(workdir / "locust.log", "wb"), stderr=subprocess.STDOUT)
        ended = datetime.now(UTC)
        time.sleep(2)
        stats = read_stats(prefix)
        results = {"stats": stats, "lateness": lateness(dsn, started, ended),
                   "orthanc": orthanc is not None,
                   "tracebacks": (workdir / "gunicorn.log").read_text(errors="replace")
                   .count("Traceback")}
        return report(args, results), results
    finally:
        for process in processes:
            stop_process_group(process)
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        if prism is not None:
            stop_process_group(prism)
        if orthanc is not None:
            orthanc.stop()
        server.stop("immediate")
        shutil.rmtree(server.datadir, ignore_errors=True)
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _ms(value) -> str:
    return "-" if value in (None, "", "N/A") else f"{float(value):.0f}"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(args, results: dict) -> list[str]:
    rows = [r for r in results["stats"] if r["Name"] != "Aggregated"]
    total = next((r for r in results["stats"] if r["Name"] == "Aggregated"), None)
    lines = [
        f"Measured {date.today().isoformat()} on {platform.machine()}, 2 cores **shared with "
        f"other engineers' work** (figures are pessimistic and noisy), Python "
        f"{platform.python_version()}; PostgreSQL (fsync off), gunicorn ({args.workers} sync "
        f"workers), one `flask scheduler run`, Prism behind the recording proxy"
        f"{', the test Orthanc' if results['orthanc'] else ''} and locust ({args.users} users: "
        f"referrers, specialists, one audit lead, 4 Twilio callback users at 20/s in all), all "
        f"on 127.0.0.1, for {args.minutes:g} minutes.",
        "",
        "Reproduce: `" + " ".join(["make load", f"LOAD_MINUTES={args.minutes:g}"]) + "` "
        f"(or `.venv/bin/python bench/bench_load.py --minutes {args.minutes:g} "
        f"--users {args.users} --workers {args.workers}`)",
        "",
        "| request kind | requests | failures | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["Name"]):
        lines.append(f"| {r['Name']} | {r['Request Count']} | {r['Failure Count']} "
                     f"| {_ms(r['50%'])} | {_ms(r['95%'])} | {_ms(r['99%'])} "
                     f"| {_ms(r['Max Response Time'])} |")
    if total:
        count, failed = int(total["Request Count"]), int(total["Failure Count"])
        rate = 100 * failed / count if count else 0.0
        lines += ["", f"All requests: {count} ({float(total['Requests/s']):.1f}/s), "
                  f"p50 {_ms(total['50%'])} ms, p95 {_ms(total['95%'])} ms, p99 "
                  f"{_ms(total['99%'])} ms; failures {failed} (**{rate:.3f} %**)."]
    late = results["lateness"]
    lines += ["", f"Escalation lateness (due_at → first delivery sent at Twilio) of the "
              f"{late['n']} escalation pages that fell due during the run: p50 "
              f"{seconds(late['p50'])}, p95 {seconds(late['p95'])}, **p99 "
              f"{seconds(late['p99'])}**, max {seconds(late['max'])}; never sent {late['missed']}; "
              f"cancelled by an accept before they were sent {late['cancelled']}. Tracebacks "
              f"in gunicorn's log: {results['tracebacks']}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float,
                        default=float(os.environ.get("LOAD_MINUTES", "10")))
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--no-images", action="store_true", help="do not start Orthanc")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    lines, _ = measure(args)
    print(section("load", "\n".join(lines)))


if __name__ == "__main__":
    main()
