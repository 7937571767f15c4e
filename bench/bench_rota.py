"""Rota CSV import: a year's rota for every demo hub specialist, through the admin page.

    .venv/bin/python bench/bench_rota.py [--days 365] [--database sqlite|postgres]

Seeds the demo network into a new database (a SQLite file, or with ``--database
postgres`` a throw-away PostgreSQL cluster), writes a CSV with one 12-hour shift a day
for every (specialist, hub, specialty) the demo rota names, tiers alternating, and
uploads it twice as the admin through POST /admin/rota (Flask test client): the first
upload adds every shift, the second finds them all present and adds none. Prints the
rows and both times.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import func, select  # noqa: E402

ADMIN = "admin@em.demo.nhs.uk"


def year_of_shifts(days: int) -> str:
    """CSV text: one 12-hour shift a day for each person the demo rota names."""
    from extensions import db
    from models import HubService, RotaShift, User

    named = db.session.execute(
        select(User.email, HubService).join(RotaShift, RotaShift.user_id == User.id)
        .join(HubService, HubService.id == RotaShift.hub_service_id).distinct()).all()
    people = sorted({(email, s.hospital.code, s.specialty.code) for email, s in named})
    first = datetime(2031, 1, 1, 8)
    rows = ["email,hub,specialty,tier,start,end"]
    for day in range(days):
        for n, (email, hub, specialty) in enumerate(people):
            start = first + timedelta(days=day, hours=12 * (n % 2))
            rows.append(f"{email},{hub},{specialty},{1 + n % 2},{start:%Y-%m-%d %H:%M},"
                        f"{start + timedelta(hours=12):%Y-%m-%d %H:%M}")
    return "\n".join(rows) + "\n"


def upload(client, text: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.post("/admin/rota", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(text.encode()), "rota.csv")})
    return time.perf_counter() - started, response.status_code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args(argv)

    from app import create_app
    from extensions import db
    from models import RotaShift
    from workflow.seed import seed_demo

    instance, server = tempfile.mkdtemp(prefix="gh-bench-rota-"), None
    try:
        url = f"sqlite:///{instance}/rota.sqlite3"
        if args.database == "postgres":
            from tests.services.postgres import start_postgres

            server = start_postgres()
            url = server.create_database("gh_rota")
        app = create_app({
            "TESTING": True, "GOLDENHOUR_ENV": "test", "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            "WTF_CSRF_ENABLED": False, "SCHEDULER_IN_PROCESS": False,
            "REQUIRE_2FA_ROLES": frozenset(),  # the demo admin/audit lead sign in by password
        })
        app.instance_path = instance
        with app.app_context():
            db.create_all()
            seed_demo()
            text = year_of_shifts(args.days)
            client = app.test_client()
            client.post("/login", data={"email": ADMIN, "password": "goldenhour-demo"})
            before = db.session.scalar(select(func.count(RotaShift.id)))
            first, status1 = upload(client, text)
            added = db.session.scalar(select(func.count(RotaShift.id))) - before
            again, status2 = upload(client, text)
            rows = text.count("\n") - 1
            print(f"| rota import on {args.database}, {rows:,} rows ({args.days} days) | "
                  f"first upload (HTTP {status1}, {added:,} added) {first:.1f} s | "
                  f"again (HTTP {status2}, none added) {again:.1f} s |")
            db.session.remove()
            db.engine.dispose()
    finally:
        if server is not None:
            server.stop("immediate")
            shutil.rmtree(server.datadir, ignore_errors=True)
        shutil.rmtree(instance, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
