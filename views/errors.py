"""Error pages: a clear message for every refusal, never a traceback."""

from __future__ import annotations

import logging

from flask import g, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import InterfaceError as DatabaseInterfaceError
from werkzeug.exceptions import HTTPException

from views import bodies
from workflow.errors import DomainError, ValidationFailed

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in to continue.",
    403: "Your role or hospital does not give you access to this page.",
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    409: "Someone else changed this first. Reload to see the latest.",
    422: "Some fields need attention.",
    500: "Something went wrong on our side. It has been logged; try again.",
    503: "The service cannot reach its database just now. Nothing from this request "
         "was confirmed as saved: wait a few seconds and try again.",
}
# A database that is restarting or unreachable: the request is refused with 503 and
# Retry-After, so a user (or a load balancer, or an API client) knows to try again.
DATABASE_AWAY = (OperationalError, DisconnectionError, DatabaseInterfaceError)
RETRY_AFTER_SECONDS = 5


def _wants_json() -> bool:
    # A client that sends JSON reads JSON back, also from the health check.
    return request.path.startswith(("/api/", "/webhooks/")) or request.is_json or (
        request.accept_mimetypes.best == "application/json"
    )


def _respond(status: int, message: str, errors: dict | None = None,
             details: dict | None = None):
    if _wants_json():
        body = {**(details or {}), "error": message}
        if errors:
            body["errors"] = errors
        return body, status
    return render_template("error.html", status=status, message=message), status


def refuse_unstorable_text() -> None:
    """Text no database stores, in a query, form or JSON field: a NUL character
    (PostgreSQL refuses it outright) or a lone surrogate (JSON can carry \\ud800). It
    is bad input, named by its field path, before any view reads it. A JSON body is
    read here only for a signed-in user or an open route (see views.bodies).
    Raises ValidationFailed (422), or what bodies.check_open_json_body raises."""
    found: dict[str, str] = {}
    fields = request.args
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = request.values
    for name, value in fields.items(multi=True):
        if problem := bodies.unstorable(name) or bodies.unstorable(value):
            found[bodies.printable(name)] = problem
    if found:
        raise ValidationFailed(found)
    bodies.check_open_json_body()


def init_app(app) -> None:
    app.before_request(refuse_unstorable_text)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return _respond(
            400,
            "This form was sent without a valid security token (it may have been open too "
            "long, or cookies are blocked). Reload the page and try again.",
        )

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        errors = exc.errors if isinstance(exc, ValidationFailed) else None
        return _respond(exc.status, str(exc), errors, exc.details())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if status == 413:  # a streamed body ran past this route's limit
            return _respond(413, bodies.too_large_message())
        message = MESSAGES.get(status, exc.description or "Request refused.")
        return _respond(status, message)

    def database_away(exc: Exception):
        log.warning("database unavailable on %s %s: %s", request.method, request.path,
                    type(getattr(exc, "orig", None) or exc).__name__)
        _forget_failed_work()
        response = _respond(503, MESSAGES[503])
        return response[0], 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    for kind in DATABASE_AWAY:
        app.register_error_handler(kind, database_away)

    # Registered after Flask-SQLAlchemy's own (db.init_app): Flask runs the later first.
    app.teardown_appcontext(_end_session)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, MESSAGES[500])


def _end_session(_exc: BaseException | None) -> None:
    """End the request's (or job's) session, rolling back what it left open. When the
    database went away after the answer was made, that ROLLBACK fails; outside every
    error handler, gunicorn would then send a 500 in place of the answer (an
    acknowledge that was committed, or the 503 that says to try again). The lost
    connection is the pool's to replace: the answer stands. Raises nothing for a lost
    database; anything else, as Flask-SQLAlchemy's own teardown would."""
    from extensions import db

    try:
        db.session.remove()
    except DATABASE_AWAY as exc:
        log.warning("database lost while ending a request or job (its answer stands): %s",
                    type(getattr(exc, "orig", None) or exc).__name__)
        # The failed ROLLBACK invalidated the connection and closed the transaction; this
        # second remove has nothing left to roll back: it closes and forgets the session
        # (tests/foundation/test_lost_connection.py).
        db.session.remove()


def _forget_failed_work() -> None:
    """After a lost database: end the session's broken transaction, and render the
    error page as nobody signed in (the user could not be loaded without the database;
    the page's navigation would otherwise ask for it again)."""
    from extensions import db, login_manager

    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is gone; the pool replaces it
        db.session.close()
    g._login_user = login_manager.anonymous_user()
