"""Request bodies: how much each route reads, and JSON checked only once the caller is
known.

An anonymous caller must not be able to make the server read, parse or walk a body
before it is told to sign in. So:

- every route reads at most MAX_JSON_BYTES (GOLDENHOUR_MAX_JSON_BYTES, 1 MB); a route
  marked with `takes_upload` reads more, but only for a signed-in user. A Content-Length
  over the limit is refused (413) before anything is read; a streamed body without one
  is cut off at the limit (413) as it is read.
- JSON is parsed by `GuardedRequest.get_json`, which refuses nesting deeper than
  MAX_JSON_DEPTH (400) and text no database stores (422) whoever asks for it; the views
  ask only after `login_required`, the webhooks only after the Twilio signature.
- `check_json_body` parses a JSON body up front, named by its field paths, for a
  signed-in user or on an OPEN_ENDPOINTS route (the health check, the sign-in page).
"""

from __future__ import annotations

from flask import Flask, Request, current_app, request
from flask_login import current_user

from workflow.errors import DomainError, ValidationFailed
from workflow.referrals.checks import storable

MAX_JSON_DEPTH = 32
# Routes anyone may call whose JSON body is checked before the view runs. Every other
# route's body waits for the view (after login_required) or for its own check.
OPEN_ENDPOINTS = frozenset({"home.health", "home.ready", "auth.login", "api.openapi"})

NUL = "This field contains a NUL character."
BROKEN = "This field contains a broken character (a lone surrogate)."


class BodyTooLarge(DomainError):
    """The request body is over this route's limit (HTTP 413); names the limit."""

    status = 413


class JsonTooDeep(DomainError):
    """The JSON body nests more than MAX_JSON_DEPTH arrays and objects (HTTP 400)."""

    status = 400

    def __init__(self) -> None:
        super().__init__(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep; "
                         "send a flatter document.")


def size_text(limit: int) -> str:
    """A byte limit as people say it: 1 MB, 512 MB, 64 KB, 1000 bytes."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def too_large_message(limit: int | None = None) -> str:
    limit = limit if limit is not None else request.max_content_length
    return (f"The request body is larger than this address accepts: at most "
            f"{size_text(limit)} ({limit} bytes).")


def takes_upload(config_key: str | None = None, *, max_bytes: int | None = None):
    """Mark a view whose body may be larger than MAX_JSON_BYTES for a signed-in user:
    the limit is ``app.config[config_key]`` or ``max_bytes``."""

    def mark(view):
        view.body_limit = (config_key, max_bytes)
        return view

    return mark


def caps_body(max_bytes: int):
    """Mark a view that reads at most ``max_bytes`` (below MAX_JSON_BYTES), whoever asks:
    a longer body is refused (413) before it is read."""

    def mark(view):
        view.body_cap = max_bytes
        return view

    return mark


def _limit() -> int:
    config = current_app.config
    view = current_app.view_functions.get(request.endpoint or "")
    config_key, max_bytes = getattr(view, "body_limit", (None, None))
    if (config_key or max_bytes) and current_user.is_authenticated:
        return int(config[config_key]) if config_key else int(max_bytes)
    return min(int(config["MAX_JSON_BYTES"]), getattr(view, "body_cap", 1 << 62))


def limit_body() -> None:
    """Set this request's body limit; refuse a declared length over it unread.

    Raises BodyTooLarge (413)."""
    limit = _limit()
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(too_large_message(limit))


def unstorable(value: str) -> str | None:
    """Why no database can store ``value`` (None: it can)."""
    if "\x00" in value:
        return NUL
    return None if storable(value) else BROKEN


def printable(name: str) -> str:
    """A field name fit to echo back: NUL as \\0, a lone surrogate as \\udXXX."""
    return name.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\0")


def json_problems(value) -> dict[str, str]:
    """Each unstorable string (or key) in a parsed JSON value, by its field path.

    Walks without recursion. Raises JsonTooDeep past MAX_JSON_DEPTH levels."""
    found: dict[str, str] = {}
    pending = [(value, "", 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            if problem := unstorable(item):
                found[path or "body"] = problem
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise JsonTooDeep()
        children = []
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (problem := unstorable(key)):
                found[printable(where)] = problem
            else:
                children.append((child, where, depth + 1))
        pending.extend(reversed(children))
    return found


class GuardedRequest(Request):
    """Flask's request, whose JSON is bounded in depth and storable, or refused."""

    _json_checked = False

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):
        """The parsed JSON body, as Flask's.

        Raises JsonTooDeep (400) for deep nesting, ValidationFailed (422) naming each
        field holding a NUL or a lone surrogate, and werkzeug's RequestEntityTooLarge
        (413) when a streamed body runs past the limit; ``silent`` only silences a
        body that is not JSON at all."""
        try:
            value = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:  # deeper than the parser goes: certainly too deep
            raise JsonTooDeep() from None
        if value is not None and not (cache and self._json_checked):
            found = json_problems(value)
            if found:
                raise ValidationFailed(found)
            self._json_checked = cache
        return value


def check_json_body() -> None:
    """Parse and check a JSON body now (see GuardedRequest.get_json for what raises)."""
    if request.is_json:
        request.get_json(silent=True)


def check_open_json_body() -> None:
    """Check the JSON body of a signed-in user's request, or of an open route's. An
    anonymous request to any other route is left unread: the view refuses it first."""
    if request.is_json and (request.endpoint in OPEN_ENDPOINTS
                            or current_user.is_authenticated):
        check_json_body()


def init_app(app: Flask) -> None:
    app.request_class = GuardedRequest
    # First of all hooks, before CSRF's reads a form: the limit must be set by then.
    app.before_request_funcs.setdefault(None, []).insert(0, limit_body)
