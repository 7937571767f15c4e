"""`make serve`: the production shape on one machine, configured by the environment.

A local PostgreSQL cluster (in ``SERVE_PG_DIR``, made once; skipped when DATABASE_URL
is set), `flask db upgrade`, gunicorn with ``WEB_WORKERS`` workers on 127.0.0.1:``PORT``
and ``SCHEDULERS`` `flask scheduler run` processes (one leads, the others stand by; one
that dies is started again, as systemd would). Ctrl-C (or SIGTERM) stops them all,
then the cluster.

    SERVE_PG_DIR=instance/serve-pg PORT=8000 WEB_WORKERS=2 SCHEDULERS=2 make serve
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _pg_bindir() -> Path:
    for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(path, "initdb"), os.X_OK):
            return Path(path)
    found = shutil.which("initdb")
    if not found:
        sys.exit("make serve: PostgreSQL server binaries (initdb) not found; "
                 "install postgresql or set DATABASE_URL")
    return Path(found).parent


def _start_cluster(datadir: Path, port: int) -> tuple[str, list[str]]:
    """Start (making it first if new) the cluster; return its URL and the pg_ctl stop."""
    bindir, run_as, user = _pg_bindir(), [], os.environ.get("USER", "postgres")
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        run_as, user = ["runuser", "-u", "postgres", "--"], "postgres"
    if not (datadir / "PG_VERSION").exists():
        datadir.mkdir(parents=True, exist_ok=True)
        if run_as:
            shutil.chown(datadir, "postgres", "postgres")
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(datadir), "-A", "trust",
                        "-U", user, "-E", "UTF8"], check=True, capture_output=True)
    ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(datadir)]
    subprocess.run([*ctl, "-w", "-t", "30", "-l", str(datadir / "log"), "-o",
                    f"-h 127.0.0.1 -p {port} -k {datadir}", "start"], check=True)
    import psycopg

    with psycopg.connect(f"postgresql://{user}@127.0.0.1:{port}/postgres",
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'goldenhour'").fetchone():
            conn.execute("CREATE DATABASE goldenhour")
    return f"postgresql://{user}@127.0.0.1:{port}/goldenhour", [*ctl, "-w", "-m", "fast", "stop"]


def gunicorn_command(port: int, workers: int, threads: int = 16) -> list[str]:
    """The web server's command line: `make serve` runs it, and so do the benches
    (bench/production.py), so that what they measure is what is deployed."""
    # Threaded workers: each open page holds one live stream (views/live.py). The
    # settings file starts each worker's image render pool when the worker boots.
    return [str(BIN / "gunicorn"), "-w", str(workers), "--worker-class", "gthread",
            "--threads", str(threads), "-b", f"127.0.0.1:{port}",
            "-c", str(ROOT / "scripts" / "gunicorn_conf.py"), "app:create_app()"]


def main() -> None:
    env = os.environ
    port = int(env.get("PORT", "8000"))
    workers = int(env.get("WEB_WORKERS", "2"))
    schedulers = int(env.get("SCHEDULERS", "2"))
    stop_cluster: list[str] = []
    if not env.get("DATABASE_URL"):
        datadir = Path(env.get("SERVE_PG_DIR", str(ROOT / "instance" / "serve-pg"))).resolve()
        env["DATABASE_URL"], stop_cluster = _start_cluster(
            datadir, int(env.get("SERVE_PG_PORT", "5433")))
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    env["SCHEDULER_IN_PROCESS"] = "0"  # the schedulers below send; web workers never do
    flask = [str(BIN / "flask"), "--app", "app"]
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, check=True)
        if env.get("SERVE_SEED_DEMO", "1") == "1":
            subprocess.run([*flask, "seed-demo", "--quiet"], cwd=ROOT, check=True)
        web = subprocess.Popen(gunicorn_command(port, workers, int(env.get("WEB_THREADS", "16"))),
                               cwd=ROOT)
        procs.append(web)
        procs += [subprocess.Popen([*flask, "scheduler", "run"], cwd=ROOT)
                  for _ in range(schedulers)]
        print(f"\n  goldenhour: {workers} web workers at http://127.0.0.1:{port}/ "
              f"(/health, /ready), {schedulers} schedulers. Stop with Ctrl-C.\n", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while web.poll() is None:
            time.sleep(1)
            for i, proc in enumerate(procs[1:], start=1):
                if proc.poll() is not None:  # as systemd's Restart=always would
                    print(f"make serve: scheduler {proc.pid} stopped; starting another",
                          flush=True)
                    procs[i] = subprocess.Popen([*flask, "scheduler", "run"], cwd=ROOT)
        sys.exit("make serve: gunicorn stopped; stopping the schedulers")
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if stop_cluster:
            subprocess.run(stop_cluster, check=False)


if __name__ == "__main__":
    main()
