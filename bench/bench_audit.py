"""Audit benchmark: N referrals (default 1,000,000) with their events, pages and
deliveries in a throw-away PostgreSQL cluster; times the dashboard for a year and
the referral CSV of a month through the app (median of 5 runs each).

    .venv/bin/python bench/bench_audit.py [--count 1000000] [--years 4] [--runs 5]
        [--statements | --explain] [--keep DIR]

Rows are generated inside PostgreSQL (INSERT ... SELECT generate_series), so the
load is bound by the server, not by Python. The referrals' audit milestone columns
(first_paged_at, escalated, unanswered_at) agree with the generated pages, deliveries
and events; first_image_viewed_at is set for 90 % (no access-log rows are generated).
90 % of the transfers have a linked CT (some a CT angiogram too, a few an older scan;
see LINKED_STUDIES) for the door-in-door-out chart.
The `audit_facts` rows the dashboard reads are written by their trigger as the
referrals are inserted, as in production.
``--statements`` prints each statement of both requests over 20 ms with its time inside
the request's transaction; ``--explain`` adds EXPLAIN (ANALYZE, BUFFERS) of each.
``--keep DIR`` keeps the loaded cluster in DIR and reuses it on the next run with the
same --count and --years: as it is when the table definitions are the same, else
upgraded by the migrations from the revision it was made at (a cluster with no revision
recorded, from before this, is loaded again).
``--verify`` also times the nightly integrity check (`flask audit verify`) once. The
generated events carry placeholder hashes, so every chain is reported broken at its
first event: the walk still reads every event, but hashes one per referral (a real
chain costs about 18 us more per event, measured apart).
``--nightly`` times the incremental nightly check (workflow/audit/nightly.py): it
anchors the cluster, keeps a clean check against that anchor as the baseline (a full
walk cannot be clean over placeholder hashes, so the bench writes the baseline's row
itself), adds one event to each of ``--changed`` referrals (default 1,000: a busy
night) and ``--changed`` access-log rows, anchors again (``--anchors`` lines in all,
the changes spread between them) and times `nightly.run()`.
The kept cluster keeps those rows: each run adds its night.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sqlalchemy import text  # noqa: E402

from tests.services import free_port  # noqa: E402
from tests.services.postgres import PostgresServer, start_postgres  # noqa: E402

START = "2023-01-01"
AUDIT_LEAD = "audit@em.demo.nhs.uk"

REFERRALS = """
INSERT INTO referrals (id, reference, state, version, specialty_id, hub_service_id,
    referring_hospital_id, referrer_id, urgency, nhs_number, family_name, given_name,
    birth_date, sex, local_number, onset_at, onset_certainty, arrived_at, question, clinical,
    created_at, acknowledged_at, decided_at, departed_at, arrived_at_hub, ended_at, outcome,
    assigned_specialist_id, first_paged_at, first_image_viewed_at, unanswered_at, escalated)
SELECT g, 'EM-B-' || g, 'closed', 4, s.specialty_id, s.id, h.id, :referrer, 'emergency',
    '9434765919', 'Bench', 'Patient', date '1950-01-01', 'female', '',
    t.created - (30 + r1 * 300) * interval '1 minute',
    (ARRAY['precise', 'estimated', 'unknown', 'during_sleep'])[1 + (g % 4)],
    t.created - (10 + r2 * 60) * interval '1 minute', 'bench', '{}'::json,
    t.created, t.ack, t.decided,
    CASE WHEN t.outcome = 'transfer' THEN t.decided + (10 + r3 * 60) * interval '1 minute' END,
    CASE WHEN t.outcome = 'transfer' THEN t.decided + (70 + r3 * 60) * interval '1 minute' END,
    t.decided + interval '2 hours', t.outcome, :specialist,
    t.created + interval '43 seconds',
    CASE WHEN g % 10 <> 0 THEN t.created + (2 + r2 * 20) * interval '1 minute' END,
    CASE WHEN g % 33 = 0 THEN t.created + interval '20 minutes' END,
    g % 20 = 0
FROM (
    SELECT g, r1, r2, r3, created,
        created + (1 + r1 * 25) * interval '1 minute' AS ack,
        created + (6 + r1 * 25 + r2 * 40) * interval '1 minute' AS decided,
        CASE WHEN r3 < .35 THEN 'transfer' WHEN r3 < .7 THEN 'treat_locally'
             WHEN r3 < .9 THEN 'advice_only' ELSE 'not_accepted' END AS outcome
    FROM (
        SELECT g, random() AS r1, random() AS r2, random() AS r3,
            CAST(:start AS timestamp)
                + (g::float8 / CAST(:count AS int)) * CAST(:years AS int) * interval '365 days'
                AS created
        FROM generate_series(1, CAST(:count AS int)) AS g
    ) AS raw
) AS t
JOIN (SELECT id, specialty_id, row_number() OVER (ORDER BY id) - 1 AS n FROM hub_services) s
    ON s.n = t.g % (SELECT count(*) FROM hub_services)
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM hospitals) h
    ON h.n = (t.g * 7) % (SELECT count(*) FROM hospitals)
"""

EVENTS = """
INSERT INTO referral_events (referral_id, seq, kind, at, actor_label, from_state, to_state,
    reason, data, prev_hash, hash)
SELECT id, seq, kind, at, 'bench', from_state, to_state, '', '{}'::json, repeat('0', 64),
       md5(id::text || kind) || md5(kind || id::text)
FROM referrals, LATERAL (VALUES
    (1, 'raise', created_at, NULL, 'submitted'),
    (2, 'page_sent', created_at + interval '1 minute', 'submitted', 'awaiting_specialist'),
    (3, 'acknowledge', acknowledged_at, 'awaiting_specialist', 'under_review'),
    (4, 'decide', decided_at, 'under_review', 'decided')
) AS e(seq, kind, at, from_state, to_state)
"""

EXHAUSTED = """
INSERT INTO referral_events (referral_id, seq, kind, at, actor_label, from_state, to_state,
    reason, data, prev_hash, hash)
SELECT id, 5, 'escalation_exhausted', created_at + interval '20 minutes', 'bench',
       'awaiting_specialist', 'unanswered', '', '{}'::json, repeat('0', 64),
       md5(id::text) || md5('x')
FROM referrals WHERE id % 33 = 0
"""

PAGES = """
INSERT INTO pages (id, referral_id, kind, step, attempt, who, channels, wait_minutes, text,
    status, due_at, claimed_at, claimed_by, created_at)
SELECT id, id, 'escalation', 0, 0, 'tier1', '["sms"]'::json, 5, '', 'claimed', created_at,
       created_at + interval '40 seconds', 'bench', created_at
FROM referrals
UNION ALL
SELECT CAST(:count AS int) + id, id, 'escalation', 1, 0, 'tier2', '["sms"]'::json, 5, '', 'claimed',
       created_at + interval '5 minutes', created_at + interval '5 minutes', 'bench', created_at
FROM referrals WHERE id % 20 = 0
"""

DELIVERIES = """
INSERT INTO deliveries (page_id, referral_id, recipient_id, channel, text, link, status,
    answered_by, error, permanent_failure, send_attempts, claimed_at, sent_at, updated_at)
SELECT p.id, p.referral_id, :specialist, 'sms', '', '', 'delivered', '', '', false, 1,
       p.claimed_at, p.claimed_at + interval '3 seconds', p.claimed_at
FROM pages p
"""

# The studies linked to the transfers: a CT head for 90 %, taken 5-34 min after arrival,
# a CT angiogram after it for a third of those, and for 4 % a scan from two days before
# (a previous attendance, which the door-in-door-out chart leaves out). StudyDate and
# StudyTime are written in UK time as scanners write them; taken_at is the instant
# itself, what the app reads them as but in the hour the clocks go back (link_studies
# then sets what the app reads: the first of the two).
LINKED_STUDIES = """
INSERT INTO linked_studies (referral_id, hospital_id, study_uid, description, study_date,
    modalities, series_count, instance_count, snapshot, linked_at, linked_by_id, taken_at)
SELECT r.id, r.referring_hospital_id, '1.2.826.0.1.3680043.8.498.' || r.id || '.' || s.n,
       s.description, to_char(s.taken AT TIME ZONE 'UTC' AT TIME ZONE 'Europe/London',
                              'YYYYMMDD'),
       'CT', 3, 300,
       json_build_object('study_time', to_char(
           s.taken AT TIME ZONE 'UTC' AT TIME ZONE 'Europe/London', 'HH24MISS')),
       s.taken + interval '5 minutes', :referrer, s.taken
FROM referrals r, LATERAL (VALUES
    (0, 'CT head (previous attendance)', r.arrived_at - interval '2 days'),
    (1, 'CT head', r.arrived_at + (5 + r.id % 30) * interval '1 minute'),
    (2, 'CT angiogram', r.arrived_at + (12 + r.id % 30) * interval '1 minute')
) AS v(n, description, at), LATERAL (SELECT v.n, v.description,
                                            date_trunc('second', v.at) AS taken) AS s
WHERE r.outcome = 'transfer' AND r.id % 10 <> 0
  AND (s.n = 1 OR (s.n = 2 AND r.id % 3 = 0) OR (s.n = 0 AND r.id % 25 = 0))
"""


def link_studies(app) -> float:
    """Insert LINKED_STUDIES (a kept cluster loaded before they were part of the load
    gets them once); seconds taken."""
    from extensions import db
    from models import User
    from workflow.audit import dido

    started = time.perf_counter()
    with app.app_context():
        referrer = db.session.scalar(db.select(User.id).where(
            User.email == "referrer@pil.demo.nhs.uk"))
        with db.engine.begin() as conn:
            conn.execute(text("SET synchronous_commit = off"))
            conn.execute(text(LINKED_STUDIES), {"referrer": referrer})
            night_clocks_go_back = conn.execute(text(
                "SELECT id, study_date, snapshot ->> 'study_time' FROM linked_studies "
                "WHERE extract(month FROM taken_at) = 10 AND extract(dow FROM taken_at) = 0 "
                "AND extract(day FROM taken_at) >= 25 AND taken_at::time < '02:00'")).all()
            if night_clocks_go_back:
                conn.execute(text("UPDATE linked_studies SET taken_at = :taken WHERE id = :id"),
                             [{"id": i, "taken": dido.study_time(d, t).replace(tzinfo=None)}
                              for i, d, t in night_clocks_go_back])
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE linked_studies"))
    return time.perf_counter() - started


def load(app, count: int, years: int) -> dict[str, float]:
    from extensions import db
    from models import User
    from workflow.seed import seed_demo

    seconds = {}
    with app.app_context():
        db.create_all()
        seed_demo()
        referrer = db.session.scalar(db.select(User.id).where(
            User.email == "referrer@pil.demo.nhs.uk"))
        specialist = db.session.scalar(db.select(User.id).where(
            User.email == "stroke.night@qmc.demo.nhs.uk"))
        params = {"count": count, "years": years, "start": START, "referrer": referrer,
                  "specialist": specialist}
        with db.engine.begin() as conn:
            conn.execute(text("SET synchronous_commit = off"))
            for name, sql in (("referrals", REFERRALS), ("events", EVENTS),
                              ("exhausted", EXHAUSTED), ("pages", PAGES),
                              ("deliveries", DELIVERIES)):
                started = time.perf_counter()
                conn.execute(text(sql), params)
                seconds[name] = time.perf_counter() - started
            conn.execute(text("SELECT setval('referrals_id_seq', :count)"), params)
        seconds["linked studies"] = link_studies(app)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            started = time.perf_counter()
            conn.execute(text("VACUUM ANALYZE"))
            seconds["vacuum analyze"] = time.perf_counter() - started
    return seconds


def schema_fingerprint() -> str:
    """A hash of every table's CREATE statement as the models define it today."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from extensions import db

    dialect = postgresql.dialect()
    ddl = []
    for table in db.metadata.sorted_tables:
        ddl.append(str(CreateTable(table).compile(dialect=dialect)))
        ddl += sorted(str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes)
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:16]


def open_cluster(keep: str | None, wanted: dict) -> tuple[PostgresServer, str | None]:
    """(server, kept): the cluster kept in ``keep`` if it was loaded with ``wanted``'s
    count and years, and either the same schema or a recorded migration revision to
    upgrade from (``kept`` is then "same" or that revision); else a new one (moved into
    ``keep`` when given, ``kept`` None).
    Raises subprocess.CalledProcessError if PostgreSQL cannot start."""
    marker = os.path.join(keep, "bench.json") if keep else ""
    if keep and os.path.exists(marker):
        found = kept_marker(keep)
        same = all(found.get(k) == wanted[k] for k in ("count", "years"))
        kept = "same" if found.get("schema") == wanted["schema"] else found.get("revision")
        if same and kept:
            template = start_postgres()  # for the user, binaries and run_as
            template.stop("immediate")
            shutil.rmtree(template.datadir, ignore_errors=True)
            server = PostgresServer("127.0.0.1", free_port(), template.user, keep,
                                    template.bindir, template.run_as)
            server.start()
            return server, kept
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
    server = start_postgres()
    if keep:
        server.stop("fast")
        shutil.move(server.datadir, keep)
        server.datadir = keep
        server.start()
    return server, None


def kept_marker(keep: str) -> dict:
    """What bench.json in a kept cluster says it holds."""
    with open(os.path.join(keep, "bench.json")) as f:
        return json.load(f)


def migrate(app, revision: str) -> float:
    """Upgrade a kept cluster made by ``create_all`` at migration ``revision`` to the
    migrations' head (what `flask db upgrade` does in production); seconds taken."""
    from flask_migrate import stamp, upgrade

    started = time.perf_counter()
    with app.app_context():
        stamp(revision=revision)
        upgrade()
    return time.perf_counter() - started


def timed(client, url: str, runs: int) -> tuple[float, int, int]:
    times, size, status = [], 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, buffered=True)
        body = response.get_data()
        times.append(time.perf_counter() - started)
        size, status = len(body), response.status_code
    return statistics.median(times), status, size


def explain(app, client, urls: list[str], plans: bool = True) -> None:
    """Print every statement over 20 ms that ``urls`` run, timed inside the request (so
    with its SET LOCAL work_mem/jit; for a streamed export, the time to open the cursor),
    and with ``plans`` its EXPLAIN (ANALYZE, BUFFERS), run outside the request."""
    from sqlalchemy import event

    from extensions import db

    seen: list[tuple[str, object, float]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters,
                     time.perf_counter() - conn.info.pop("bench_started")))

    for url in urls:
        seen.clear()
        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        try:
            client.get(url, buffered=True).get_data()
        finally:
            event.remove(db.engine, "before_cursor_execute", before)
            event.remove(db.engine, "after_cursor_execute", after)
        print(f"\n## {url}: {len(seen)} statements, "
              f"{sum(t for *_, t in seen) * 1000:.0f} ms in cursor.execute")
        for statement, parameters, seconds in seen:
            if seconds < .02 or not statement.lstrip().upper().startswith("SELECT"):
                continue
            print(f"\n-- {seconds * 1000:.0f} ms in the request\n{statement}\n-- {parameters}")
            if not plans:
                continue
            raw = db.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                print("\n".join(row[0] for row in cursor.fetchall()))
            finally:
                raw.close()


NIGHT_EVENTS = """
INSERT INTO referral_events (referral_id, seq, kind, at, actor_label, from_state, to_state,
    reason, data, prev_hash, hash)
SELECT e.referral_id, e.seq + 1, 'message', e.at + interval '1 day', 'bench', e.to_state,
       e.to_state, 'bench night', '{}'::json, e.hash, md5(e.hash) || md5(e.referral_id::text)
FROM (SELECT DISTINCT ON (referral_id) referral_id, seq, at, to_state, hash
      FROM referral_events
      WHERE referral_id IN (SELECT id FROM referrals ORDER BY random() LIMIT :changed)
      ORDER BY referral_id, seq DESC) AS e
"""


def nightly_check(app, changed: int, profile: bool = False, lines: int = 2) -> None:
    """Anchor, keep a clean baseline, let ``changed`` referrals move and anchor again
    (``lines`` anchors in all, the changes spread between them), and time the nightly
    check; print its row of the table."""
    from extensions import db
    from models import IntegrityRun
    from workflow import access_log
    from workflow.audit import anchors, nightly
    from workflow.times import now as utcnow

    key, log = app.config["ANCHOR_KEY_FILE"], app.config["ANCHOR_LOG"]
    started = time.perf_counter()
    first = anchors.anchor(key, log)
    anchored = time.perf_counter() - started
    db.session.add(IntegrityRun(  # what last night's clean check would have kept
        started_at=utcnow(), finished_at=utcnow(), full=True,
        anchor_root=first["tree_head"]["root"], anchor_at=first["tree_head"]["at"],
        xid=nightly._snapshot_xmin(), referrals_checked=first["tree_head"]["referrals"]))
    db.session.commit()
    hours = max(1, lines - 1)  # the night's anchors after the baseline's
    for hour in range(hours):
        share = changed // hours + (1 if hour < changed % hours else 0)
        db.session.execute(text(NIGHT_EVENTS), {"changed": share})
        db.session.commit()
        for n in range(share):
            access_log.record("referral.view", "ok", email=f"bench{n}@test.nhs.uk",
                              detail="bench night")
        anchors.anchor(key, log)
    size = os.path.getsize(log) / 1e6
    started = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        report = profiler.runcall(nightly.run)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    else:
        report = nightly.run()
    seconds = time.perf_counter() - started
    print(f"\nanchoring {first['tree_head']['referrals']:,} referrals: {anchored:.0f} s; "
          f"anchors file {size:.0f} MB for {hours + 1} anchors")
    print(f"| nightly check after {changed:,} referrals moved (full={report.full}): "
          f"{report.referrals_checked:,} referrals, {report.events_checked:,} events walked, "
          f"{len(report.problems):,} problems (placeholder hashes) | {seconds:.1f} s, once "
          "| < 60 s |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--years", type=int, default=4, help="referrals spread over")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of each SQL statement of both requests")
    parser.add_argument("--statements", action="store_true",
                        help="print each SQL statement over 20 ms with its time in the request")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the loaded cluster in DIR and reuse it when it matches")
    parser.add_argument("--verify", action="store_true",
                        help="also time the integrity check (flask audit verify) once")
    parser.add_argument("--nightly", action="store_true",
                        help="also time the incremental nightly check after --changed "
                             "referrals moved")
    parser.add_argument("--profile", action="store_true",
                        help="with --nightly: print the check's cProfile (slower)")
    parser.add_argument("--anchors", type=int, default=2,
                        help="with --nightly: the anchors-file lines the check reads, the "
                             "baseline's included (a night of hourly anchors: 25)")
    parser.add_argument("--changed", type=int, default=1000,
                        help="referrals that get a new event before --nightly")
    args = parser.parse_args(argv)

    from app import create_app

    keep = os.path.abspath(args.keep) if args.keep else None
    with create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}).app_context():
        wanted = {"count": args.count, "years": args.years, "schema": schema_fingerprint()}
        from workflow.readiness import migrations_head

        wanted_revision = migrations_head()
    server, kept = open_cluster(keep, wanted)
    loaded_before = kept is not None
    instance = tempfile.mkdtemp(prefix="gh-bench-")
    try:
        url = server.url("gh_bench")
        if not loaded_before:
            server._admin('CREATE DATABASE "gh_bench"')
        app = create_app({
            "TESTING": True, "GOLDENHOUR_ENV": "test", "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            "WTF_CSRF_ENABLED": False, "SCHEDULER_IN_PROCESS": False,
            "REQUIRE_2FA_ROLES": frozenset(),  # the demo admin/audit lead sign in by password
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "ANCHOR_KEY_FILE": os.path.join(instance, "anchor-key"),
            "ANCHOR_LOG": os.path.join(instance, "anchors.jsonl"),
        })
        with open(app.config["ANCHOR_KEY_FILE"], "wb") as f:
            f.write(os.urandom(32))  # a raw Ed25519 key, thrown away with the instance
        app.instance_path = instance
        if kept not in (None, "same"):
            print(f"migrating the kept cluster from {kept} to {wanted_revision}: "
                  f"{migrate(app, kept):.0f} s")
        if kept is not None and not kept_marker(keep).get("linked_studies"):
            print(f"linking studies to the kept cluster's transfers: {link_studies(app):.0f} s")
        if loaded_before:
            print(f"reusing the cluster in {keep} ({args.count:,} referrals)")
        else:
            started = time.perf_counter()
            loaded = load(app, args.count, args.years)
            print(f"loaded {args.count:,} referrals over {args.years} years in "
                  f"{time.perf_counter() - started:.0f} s: "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in loaded.items()))
        if keep:  # what the kept cluster holds now, for the next run
            with open(os.path.join(keep, "bench.json"), "w") as f:
                json.dump({**wanted, "revision": wanted_revision, "linked_studies": True}, f)
        with app.app_context():
            from extensions import db

            sizes = db.session.execute(text(
                "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname IN "
                "('referrals', 'referral_events', 'pages', 'deliveries', 'linked_studies') "
                "ORDER BY relname"))
            print("rows: " + ", ".join(f"{n} {c:,}" for n, c in sizes))
        client = app.test_client()
        with app.app_context():
            client.post("/login", data={"email": AUDIT_LEAD, "password": "goldenhour-demo"})
            year = timed(client, "/audit/?date_from=2025-01-01&date_to=2025-12-31", args.runs)
            month = timed(client, "/audit/export/referrals.csv?date_from=2025-03-01"
                                  "&date_to=2025-03-31", args.runs)
            if args.explain or args.statements:
                explain(app, client, ["/audit/?date_from=2025-01-01&date_to=2025-12-31",
                                      "/audit/export/referrals.csv?date_from=2025-03-01"
                                      "&date_to=2025-03-31"], plans=args.explain)
        per_year = args.count // args.years
        print(f"\n| measure ({args.count:,} referrals, ~{per_year:,} a year) | median of "
              f"{args.runs} | target |")
        print("|---|---|---|")
        print(f"| dashboard, one year (HTTP {year[1]}, {year[2]:,} bytes) | "
              f"{year[0] * 1000:.0f} ms | ≤ 1000 ms |")
        print(f"| referral CSV, one month (HTTP {month[1]}, {month[2]:,} bytes) | "
              f"{month[0] * 1000:.0f} ms | ≤ 1000 ms |")
        if args.verify:
            with app.app_context():
                from workflow.audit.integrity import verify_all

                started = time.perf_counter()
                report = verify_all()
                print(f"| integrity check: {report.referrals_checked:,} referrals, "
                      f"{report.events_checked:,} events (placeholder hashes) | "
                      f"{time.perf_counter() - started:.0f} s, once | before 06:00 |")
        if args.nightly:
            with app.app_context():
                nightly_check(app, args.changed, args.profile, args.anchors)
    finally:
        server.stop("fast" if keep else "immediate")
        if not keep:
            shutil.rmtree(server.datadir, ignore_errors=True)
        shutil.rmtree(instance, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
