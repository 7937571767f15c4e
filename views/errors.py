"""Error pages: a clear message for every refusal, never a traceback."""

from __future__ import annotations

import logging

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from workflow.errors import DomainError, ValidationFailed

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


def refuse_nul_characters() -> None:
    """A NUL character in a query or form field: no database stores one (PostgreSQL
    refuses it outright), so it is bad input, named, before any view reads the field.
    Raises ValidationFailed (422)."""
    fields = request.args
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = request.values
    bad = {name: "This field contains a NUL character." for name, value
           in fields.items(multi=True) if "\x00" in name or "\x00" in value}
    if bad:
        raise ValidationFailed({name.replace("\x00", "\\0"): message
                                for name, message in bad.items()})


def init_app(app) -> None:
    app.before_request(refuse_nul_characters)

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
