"""A throw-away PostgreSQL cluster on 127.0.0.1, started by the suite in a temp dir.

Uses Debian's server binaries (`initdb`, `pg_ctl`). As root, the cluster runs as the
`postgres` system user (PostgreSQL refuses to run as root). Each pytest-xdist worker
gets its own cluster. `GOLDENHOUR_TEST_POSTGRES_URL` points the suite at an existing
server instead (its user must be allowed to create databases).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

import pytest

from tests.services import free_port, missing_service

PG_BIN_GLOBS = ["/usr/lib/postgresql/*/bin"]


def _pg_bin() -> str | None:
    for pattern in PG_BIN_GLOBS:
        for path in sorted(glob.glob(pattern), reverse=True):
            if os.access(os.path.join(path, "initdb"), os.X_OK):
                return path
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@dataclass
class PostgresServer:
    """A running cluster: `url(dbname)`, `create_database()`, `restart()`, `stop()`."""

    host: str
    port: int
    user: str
    datadir: str = ""
    bindir: str = ""
    run_as: list[str] = field(default_factory=list)
    external_url: str = ""

    def url(self, dbname: str = "postgres") -> str:
        if self.external_url:
            base = self.external_url.rsplit("/", 1)[0]
            return f"{base}/{dbname}"
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        import psycopg

        dsn = self.url("postgres").replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "gh") -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _ctl(self, *args: str) -> None:
        cmd = [*self.run_as, os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.datadir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._ctl("-w", "-t", "30", "-o", options, "-l", os.path.join(self.datadir, "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        if self.datadir and os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            self._ctl("-w", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


def start_postgres() -> PostgresServer:
    """Start a new cluster in a temp dir; raise RuntimeError if it cannot start."""
    bindir = _pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) not found")
    datadir = tempfile.mkdtemp(prefix="gh-pg-")
    run_as: list[str] = []
    user = os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
        run_as, user = ["runuser", "-u", "postgres", "--"], "postgres"
    subprocess.run(
        [*run_as, os.path.join(bindir, "initdb"), "-D", datadir, "-A", "trust", "-U", user,
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )
    server = PostgresServer("127.0.0.1", free_port(), user, datadir, bindir, run_as)
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server():
    external = os.environ.get("GOLDENHOUR_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer("", 0, "", external_url=external)
        return
    try:
        server = start_postgres()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        text = detail.decode(errors="replace")[:300]
        missing_service(f"PostgreSQL could not start: {exc} {text}")
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.datadir, ignore_errors=True)
