"""goldenhour: the application factory. `python app.py` runs a development server."""

from __future__ import annotations

import logging
import os
import sqlite3

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from config import engine_options, instance_path, load_config
from extensions import REPLICA, csrf, db, login_manager, migrate


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL, a busy timeout and foreign keys for every SQLite connection.

    The sqlite3 module's own transaction handling is switched off so that every
    transaction begins IMMEDIATE (see _sqlite_begin): writers queue on the busy timeout
    instead of failing with "database is locked" when a read upgrades to a write.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_app(config: dict | None = None) -> Flask:
    """Build the app. ``config`` overrides what the environment says (tests use it).

    Raises config.ConfigError when an environment variable is missing or malformed.
    """
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path())
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(load_config(instance_path=app.instance_path))
    if config:
        app.config.update(config)
        if "SQLALCHEMY_DATABASE_URI" in config and "SQLALCHEMY_ENGINE_OPTIONS" not in config:
            app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
                config["SQLALCHEMY_DATABASE_URI"]
            )
        if "PUBLIC_BASE_URL" in config and "SESSION_COOKIE_SECURE" not in config:
            app.config["SESSION_COOKIE_SECURE"] = config["PUBLIC_BASE_URL"].startswith("https://")
    if app.config["TRUSTED_PROXIES"]:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    db.init_app(app)
    # init_app gives every bind a MetaData of its own, on the one `db` shared by every
    # app in the process. The replica mirrors the primary's schema and has no tables of
    # its own: without this, create_all/drop_all would try to run on it (and, after one
    # app with a replica, fail in every later app without one).
    db.metadatas.pop(REPLICA, None)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)

    import models  # noqa: F401 - register the tables with the metadata
    from integrations.pager import build_channels
    from views import register
    from workflow import wiring

    wiring.wire()  # who reacts to which referral event
    register(app)
    _configure_logging(app)
    app.extensions["goldenhour.channels"] = build_channels(app.config)
    return app


def serve(app: Flask, port: int) -> None:
    """Development server; with SCHEDULER_IN_PROCESS the paging sweep runs alongside."""
    if app.config["SCHEDULER_IN_PROCESS"]:
        from workflow import scheduler

        scheduler.start_in_process(app)
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False)


def _configure_logging(app: Flask) -> None:
    from views import request_log

    request_log.install()  # no NHS number or patient id in a request line
    if app.config.get("LOG_FORMAT") == "json":
        from views import log_format

        log_format.use_json()
    elif not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


if __name__ == "__main__":
    serve(create_app(), int(os.environ.get("PORT", "5000")))
