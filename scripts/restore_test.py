"""`make restore-test`: prove a backup restores. Dump the database with pg_dump, restore
the dump into a new PostgreSQL cluster, and require `flask audit verify` to pass there
(every event chain, stored record, the access log and published anchors) and every
table to hold as many rows as the original.

    DATABASE_URL=postgresql://.../goldenhour make restore-test   # a given database
    make restore-test      # `make serve`'s database if it runs (SERVE_PG_PORT, 5433),
                           # else a throw-away one with the demo network

Exits 0 when the restore verifies, 1 naming what failed. The new cluster lives in a
temp dir and is removed afterwards. Uses the PostgreSQL server binaries of this machine
(pg_dump, pg_restore, initdb, pg_ctl).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.services.postgres import PostgresServer, _pg_bin, start_postgres  # noqa: E402

BIN = Path(sys.executable).parent


@dataclass
class RestoreResult:
    ok: bool
    verify_output: str
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (source, restored)
    problems: list[str] = field(default_factory=list)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def table_counts(url: str) -> dict[str, int]:
    with psycopg.connect(libpq(url)) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _pg_tool(name: str) -> str:
    bindir = _pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (pg_dump, initdb) not found")
    return os.path.join(bindir, name)


def dump(url: str, path: Path) -> None:
    """pg_dump --format=custom of ``url`` into ``path``. Raises CalledProcessError."""
    subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--file", str(path),
                    "--dbname", libpq(url)], check=True, capture_output=True, timeout=600)


def restore(path: Path, server: PostgresServer) -> str:
    """Restore the dump into a new database of ``server``; return its URL."""
    url = server.create_database("gh_restored")
    subprocess.run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname",
                    libpq(url), str(path)], check=True, capture_output=True, timeout=600)
    return url


def verify(url: str) -> subprocess.CompletedProcess:
    """`flask audit verify --full` against ``url`` (a fresh process, as an operator runs
    it: after a restore, the whole walk, not the nightly check since an anchor)."""
    env = {**os.environ, "DATABASE_URL": libpq(url), "FLASK_APP": "app.py",
           "GOLDENHOUR_ENV": os.environ.get("GOLDENHOUR_ENV", "development"),
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(BIN / "flask"), "audit", "verify", "--full"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def restore_and_verify(source_url: str, workdir: Path) -> RestoreResult:
    """Dump ``source_url``, restore it into a new cluster, verify it there."""
    path = workdir / "goldenhour.dump"
    dump(source_url, path)
    server = start_postgres()
    try:
        restored = restore(path, server)
        # Counted before the check, which keeps a row of its own (integrity_runs).
        before, after = table_counts(source_url), table_counts(restored)
        checked = verify(restored)
    finally:
        server.stop("immediate")
        shutil.rmtree(server.datadir, ignore_errors=True)
    result = RestoreResult(checked.returncode == 0, (checked.stdout + checked.stderr).strip())
    for name in sorted(set(before) | set(after)):
        result.tables[name] = (before.get(name, -1), after.get(name, -1))
        if before.get(name) != after.get(name):
            result.problems.append(f"table {name}: {before.get(name)} rows in the source, "
                                   f"{after.get(name)} restored")
    if not result.ok:
        result.problems.append(f"flask audit verify failed on the restored copy: "
                               f"{result.verify_output[-1500:]}")
    result.ok = not result.problems
    return result


def _serve_url() -> str | None:
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    url = f"postgresql://{user}@127.0.0.1:{os.environ.get('SERVE_PG_PORT', '5433')}/goldenhour"
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return None
    return url


def _demo_source(workdir: Path) -> tuple[str, PostgresServer]:
    """A throw-away cluster with a migrated database holding the demo network."""
    server = start_postgres()
    url = server.create_database("gh_source")
    env = {**os.environ, "DATABASE_URL": libpq(url), "FLASK_APP": "app.py",
           "GOLDENHOUR_ENV": "development", "SECRET_KEY": "restore-test-" + "x" * 40,
           "PYTHONPATH": str(ROOT)}
    for command in (["db", "upgrade"], ["seed-demo", "--quiet"]):
        subprocess.run([str(BIN / "flask"), *command], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
    return url, server


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gh-restore-test-"))
    source_server = None
    try:
        source = os.environ.get("DATABASE_URL") or _serve_url()
        if source is None:
            print("restore-test: no DATABASE_URL and `make serve` is not running; "
                  "using a throw-away database with the demo network")
            source, source_server = _demo_source(workdir)
        print(f"restore-test: dumping {source.split('@')[-1]} ...", flush=True)
        result = restore_and_verify(source, workdir)
    finally:
        if source_server is not None:
            source_server.stop("immediate")
            shutil.rmtree(source_server.datadir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    rows = sum(restored for _, restored in result.tables.values())
    print(f"restore-test: {len(result.tables)} tables, {rows} rows restored; "
          f"audit verify: {result.verify_output.splitlines()[-1] if result.verify_output else '-'}")
    if not result.ok:
        for problem in result.problems:
            print(f"restore-test: FAILED: {problem}", file=sys.stderr)
        sys.exit(1)
    print("restore-test: OK")


if __name__ == "__main__":
    main()
