"""Paging latency on PostgreSQL: submit -> SMS at Twilio, and escalation lateness.

    .venv/bin/python bench/bench_paging.py [--seconds 20] [--rates 1,10,50] [--keep]

Starts PostgreSQL and gunicorn as `make serve` does (bench/production.py), Prism
behind the recording proxy (tests/services/prism.py) and one `flask scheduler run`
process, all on 127.0.0.1, in production mode (the sweep runs only in the scheduler
process, woken by NOTIFY). It migrates, seeds the demo network, issues the Pilgrim
referrer an API token, then raises referrals through `POST /api/v1/referrals` at each
rate for ``--seconds`` (open loop: each request is sent at its planned instant,
whatever the previous ones are doing), and measures:

  submit-to-SMS  from just before the submit request is sent to the first SMS create
                 of the referral's first step reaching the Twilio boundary (matched
                 through the delivery id in the StatusCallback URL): what the referrer
                 waits, the submit itself included;
  escalation     for the vascular subset (1 referral in 5, policy: tier 1 SMS, wait 1
                 minute, tier 2 SMS), how late tier 2 is claimed and reaches Twilio
                 against its due_at. Those steps fall due a minute after they were
                 raised, i.e. while the later (faster) rates are running.

Prints the table as the marked section "paging" (bench/sections.py); `make bench` puts
it in docs/BENCHMARKS.md under "## Paging".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from bench.bench_overhead import commit  # noqa: E402
from bench.production import Production  # noqa: E402
from bench.sections import section  # noqa: E402
from tests.services import stop_process_group, wait_until  # noqa: E402
from tests.services.prism import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, start_prism  # noqa: E402

REFERRER = "referrer@pil.demo.nhs.uk"
SHORT_POLICY = [{"who": "tier1", "channels": ["sms"], "wait_minutes": 1, "repeat": 0},
                {"who": "tier2", "channels": ["sms"], "wait_minutes": 120, "repeat": 0}]


def payload(vascular: bool) -> dict:
    arrived = (datetime.now().replace(microsecond=0) - timedelta(minutes=20)).isoformat()
    body = {"referring_hospital": "PIL", "arrived_at": arrived, "onset_at": None,
            "onset_certainty": "unknown", "question": "Accept for transfer?",
            "separate_referral": True,  # one patient, raised once per run on purpose
            "patient": {"nhs_number": "9434765919", "family_name": "Bench",
                        "given_name": "Pat", "birth_date": "1950-01-01", "sex": "female"}}
    if vascular:
        return {**body, "specialty": "vascular",
                "clinical": {"diagnosis": "Ruptured AAA", "haemodynamics": "unstable"}}
    return {**body, "specialty": "stroke",
            "clinical": {"nihss": 14, "pre_stroke_mrs": 1, "anticoagulant": "none",
                         "thrombolysis_given": False, "imaging": ["CT", "CTA"]}}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def raise_at_rate(base: str, token: str, rate: float, seconds: float,
                  every_vascular: int) -> list[dict]:
    """Open-loop POSTs at ``rate`` per second; returns one record per request."""
    total = int(rate * seconds)
    sessions = threading.local()
    t0 = time.monotonic() + 0.2

    def one(i: int) -> dict:
        time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        session = getattr(sessions, "s", None) or requests.Session()
        sessions.s = session
        vascular = i % every_vascular == 0
        sent = time.time()
        try:
            response = session.post(f"{base}/api/v1/referrals", json=payload(vascular),
                                    headers={"Authorization": f"Bearer {token}"}, timeout=30)
        except requests.RequestException as exc:  # no answer: the referrer saw a failure
            return {"rate": rate, "id": None, "status": type(exc).__name__, "sent": sent,
                    "returned": time.time(), "vascular": vascular}
        returned = time.time()
        ok = response.status_code == 201
        return {"rate": rate, "id": response.json().get("id") if ok else None,
                "status": response.status_code, "sent": sent, "returned": returned,
                "vascular": vascular}

    with ThreadPoolExecutor(max_workers=min(32, max(2, int(rate)))) as pool:
        return list(pool.map(one, range(total)))


def delivery_of(form: dict) -> int | None:
    callback = (form.get("StatusCallback") or [""])[0]
    values = parse_qs(urlsplit(callback).query).get("delivery")
    return int(values[0]) if values else None


def measure(args) -> tuple[list[str], dict]:
    prism = proxy = None
    workdir = Path(tempfile.mkdtemp(prefix="gh-bench-paging-"))
    try:
        prism, boundary, proxy = start_prism(workdir / "prism.log")
        twilio = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                  "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE": boundary.base_url,
                  "SWEEP_INTERVAL_SECONDS": str(args.sweep_interval)}
        with Production(workers=args.workers, scheduler=True, env=twilio,
                        keep_logs=args.keep) as prod:
            return _measure(args, prod, boundary)
    finally:
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        if prism is not None:
            stop_process_group(prism)
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(args, prod: Production, boundary) -> tuple[list[str], dict]:
    base, dsn = prod.base, prod.dsn
    token = prod.flask("users", "token", REFERRER, "--label", "bench").strip().splitlines()[-1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO escalation_policies (hub_service_id, steps, updated_at) "
            "SELECT h.id, %s, now() AT TIME ZONE 'UTC' FROM hub_services h JOIN specialties s "
            "ON s.id = h.specialty_id WHERE s.code = 'vascular'",
            (json.dumps(SHORT_POLICY),))
    wait_until(lambda: "LISTEN" in _scheduler_state(dsn), 60, "the scheduler's LISTEN")
    records: list[dict] = []
    for rate in args.rates:
        print(f"raising {int(rate * args.seconds)} referrals at {rate:g}/s ...", flush=True)
        records += raise_at_rate(base, token, rate, args.seconds, args.every_vascular)
    ids = {r["id"] for r in records if r["id"]}
    vascular = {r["id"] for r in records if r["id"] and r["vascular"]}

    def rows():
        with psycopg.connect(dsn) as conn:
            return conn.execute(
                "SELECT d.id, p.referral_id, p.step, p.due_at, p.claimed_at, p.status "
                "FROM pages p LEFT JOIN deliveries d ON d.page_id = p.id "
                "WHERE p.kind = 'escalation' AND p.step IN (0, 1)").fetchall()

    def finished() -> bool:
        got = rows()
        first = {r[1] for r in got if r[2] == 0 and r[5] == "claimed"}
        second = {r[1] for r in got if r[2] == 1 and r[5] == "claimed"}
        return ids <= first and vascular <= second

    print("waiting for every first step and every vascular second step ...", flush=True)
    try:
        wait_until(finished, 150, "every page")
    except RuntimeError as exc:
        print(f"warning: {exc}")
    time.sleep(1)
    got = rows()
    key = {r[0]: (r[1], r[2]) for r in got if r[0] is not None}
    first_sms: dict[tuple[int, int], float] = {}
    for seen in boundary.sent("Messages"):
        page = key.get(delivery_of(seen.form))
        if page and page not in first_sms:
            first_sms[page] = seen.at
    results = {"rates": [], "escalation": None}
    for rate in args.rates:
        mine = [r for r in records if r["rate"] == rate]
        waits = [first_sms[(r["id"], 0)] - r["sent"] for r in mine
                 if r["id"] and (r["id"], 0) in first_sms]
        submit = [r["returned"] - r["sent"] for r in mine]
        results["rates"].append({
            "rate": rate, "raised": len(mine),
            "refused": sum(1 for r in mine if r["status"] != 201),
            "unanswered": sum(1 for r in mine if isinstance(r["status"], str)),
            "paged": len(waits), "p50": percentile(waits, 50) if waits else None,
            "p99": percentile(waits, 99) if waits else None,
            "max": max(waits) if waits else None,
            "submit_p50": percentile(submit, 50), "submit_p99": percentile(submit, 99)})
    claim_late, sms_late = [], []
    for _delivery, referral_id, step, due, claimed, status in got:
        if step != 1 or referral_id not in vascular or status != "claimed":
            continue
        claim_late.append((claimed - due).total_seconds())
        if (referral_id, 1) in first_sms:
            sms_late.append(first_sms[(referral_id, 1)] - due.timestamp())
    if claim_late:
        results["escalation"] = {
            "n": len(claim_late), "expected": len(vascular),
            "claim_p50": percentile(claim_late, 50), "claim_p99": percentile(claim_late, 99),
            "claim_max": max(claim_late),
            "sms_p50": percentile(sms_late, 50) if sms_late else None,
            "sms_p99": percentile(sms_late, 99) if sms_late else None,
            "sms_max": max(sms_late) if sms_late else None}
    log = prod.log("scheduler.log")
    results["skipped_wakes"] = log.count("maximum number of running instances")
    results["sweep_errors"] = log.count("sweep failed")
    return report(args, results), results


def _scheduler_state(dsn: str) -> str:
    """The last statement of every database connection (the scheduler's listening one
    says LISTEN once it is up)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return "\n".join(q or "" for (q,) in conn.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"))


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def report(args, results: dict) -> list[str]:
    command = (f".venv/bin/python bench/bench_paging.py --seconds {args.seconds:g} --rates "
               + ",".join(f"{r:g}" for r in args.rates) + f" --workers {args.workers}")
    lines = [
        "### Latest `make bench` run: submit-to-SMS",
        "",
        f"Reproduce: `{command}`. Measured {time.strftime('%Y-%m-%d %H:%M')} UTC at commit "
        f"{commit()} on {platform.machine()}, {os.cpu_count()} cores shared with other work "
        f"(load average {os.getloadavg()[0]:.1f} at the end), Python "
        f"{platform.python_version()}; PostgreSQL, gunicorn as `make serve` starts it "
        f"({args.workers} workers), one `flask scheduler run` (SWEEP_INTERVAL_SECONDS="
        f"{args.sweep_interval}), Prism behind the recording proxy, all on 127.0.0.1. "
        f"{args.seconds:g} s per rate, open loop. Submit-to-SMS runs from just before the "
        "`POST /api/v1/referrals` is sent to the step's first SMS create reaching the "
        "Twilio boundary, so it includes the submit (its own columns show how much).",
        "",
        "| rate /s | raised | refused (of them no answer in 30 s) | paged | submit p50 ms "
        "| submit p99 ms | submit-to-SMS p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rates"]:
        lines.append(f"| {row['rate']:g} | {row['raised']} | {row['refused']} "
                     f"({row['unanswered']}) | {row['paged']} "
                     f"| {ms(row['submit_p50'])} | {ms(row['submit_p99'])} | {ms(row['p50'])} "
                     f"| {ms(row['p99'])} | {ms(row['max'])} |")
    esc = results["escalation"]
    lines += ["", "| escalation (vascular, tier 2 after 1 min) | n | p50 ms | p99 ms | max ms |",
              "|---|---|---|---|---|"]
    if esc:
        lines.append(f"| claimed - due_at | {esc['n']}/{esc['expected']} | {ms(esc['claim_p50'])} "
                     f"| {ms(esc['claim_p99'])} | {ms(esc['claim_max'])} |")
        lines.append(f"| SMS at Twilio - due_at | {esc['n']}/{esc['expected']} "
                     f"| {ms(esc['sms_p50'])} | {ms(esc['sms_p99'])} | {ms(esc['sms_max'])} |")
    lines += ["", f"Scheduler wake-ups skipped because a sweep was running: "
                  f"{results['skipped_wakes']}; sweep errors: {results['sweep_errors']}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        default=[1.0, 10.0, 50.0])
    parser.add_argument("--every-vascular", type=int, default=5)
    parser.add_argument("--sweep-interval", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    lines, _ = measure(args)
    print(section("paging", "\n".join(lines)))


if __name__ == "__main__":
    main()
