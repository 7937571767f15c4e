"""Error pages: a clear message for every refusal, never a traceback."""

from __future__ import annotations

import logging

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from workflow.errors import DomainError, ValidationFailed
from workflow.referrals.checks import storable

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in to continue.",
    403: "Your role or hospital does not give you access to this page.",
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    409: "Someone else changed this first. Reload to see the latest.",
    413: "The upload is larger than this server accepts.",
    422: "Some fields need attention.",
    500: "Something went wrong on our side. It has been logged; try again.",
}


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/")) or (
        request.accept_mimetypes.best == "application/json"
    )


def _respond(status: int, message: str, errors: dict | None = None):
    if _wants_json():
        body = {"error": message}
        if errors:
            body["errors"] = errors
        return body, status
    return render_template("error.html", status=status, message=message), status


NUL = "This field contains a NUL character."
BROKEN = "This field contains a broken character (a lone surrogate)."


def _unstorable(value: str) -> str | None:
    """Why no database can store ``value`` (None: it can)."""
    if "\x00" in value:
        return NUL
    return None if storable(value) else BROKEN


def _printable(name: str) -> str:
    """A field name fit to echo back: NUL as \\0, a lone surrogate as \\udXXX."""
    return name.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\0")


def _json_problems(value, path: str, found: dict[str, str]) -> None:
    if isinstance(value, str):
        if problem := _unstorable(value):
            found[path or "body"] = problem
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if problem := _unstorable(key):
                found[_printable(where)] = problem
            else:
                _json_problems(item, where, found)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _json_problems(item, f"{path}.{n}" if path else str(n), found)


def refuse_unstorable_text() -> None:
    """Text no database stores, in a query, form or JSON field: a NUL character
    (PostgreSQL refuses it outright) or a lone surrogate (JSON can carry \\ud800). It
    is bad input, named by its field path, before any view reads it.
    Raises ValidationFailed (422)."""
    found: dict[str, str] = {}
    fields = request.args
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = request.values
    for name, value in fields.items(multi=True):
        if problem := _unstorable(name) or _unstorable(value):
            found[_printable(name)] = problem
    if request.is_json:
        _json_problems(request.get_json(silent=True), "", found)
    if found:
        raise ValidationFailed(found)


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
        return _respond(exc.status, str(exc), errors)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = MESSAGES.get(status, exc.description or "Request refused.")
        return _respond(status, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, MESSAGES[500])
