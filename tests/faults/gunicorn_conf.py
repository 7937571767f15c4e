"""gunicorn settings for the fault tests: each worker names its PostgreSQL connections
``gh-web-<pid>`` (libpq reads PGAPPNAME when it connects), so that a test can find the
worker whose transaction is waiting and kill exactly that one."""

import os


def post_fork(server, worker):
    os.environ["PGAPPNAME"] = f"gh-web-{os.getpid()}"
