"""Request helpers shared by the blueprints: the client address, permission checks, the
one way a view refuses a referral the user may not see, and the check of UIDs in URLs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort, request
from flask_login import current_user
from werkzeug.routing import IntegerConverter

from extensions import db
from integrations.dicom_uid import is_uid
from workflow import access_log
from workflow.accounts import policy
from workflow.errors import NotAllowed
from workflow.referrals import access

T = TypeVar("T")


class DatabaseId(IntegerConverter):
    """``<int:...>`` in a route: a positive id that fits the database's integer column,
    so a larger number matches no route (404) rather than overflowing the driver."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("min", 0)
        kwargs.setdefault("max", access.MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def client_address() -> str:
    """The caller's address (ProxyFix has already applied X-Forwarded-For when trusted)."""
    return (request.remote_addr or "")[:64]


def requires(permission: str):
    """Decorate a view so only users holding ``permission`` reach it.

    Anonymous users are sent to sign in; signed-in users without the permission get a
    403 page (abort(403)) and the refusal is written to the access log.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                from extensions import login_manager

                return login_manager.unauthorized()
            if not policy.allowed(current_user, permission):
                access_log.record(
                    request.endpoint or "view", "denied", user=current_user,
                    address=client_address(), detail=f"needs {permission}: {request.path}"[:500],
                )
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def visible_or_refuse(referral_id: int, action: str, detail: str = "", *,
                      find: Callable[..., T] = access.get_visible) -> T:
    """The referral if the current user may see it: ``find(current_user, referral_id)``,
    the referral by default (the image views read it with their study).

    Raises NotFound (404) when there is none, and NotAllowed (403) after rolling back
    and writing a ``denied`` access-log row for ``action``.
    """
    try:
        return find(current_user, referral_id)
    except NotAllowed:
        db.session.rollback()
        access_log.record(action, "denied", user=current_user, address=client_address(),
                          referral_id=referral_id, detail=detail)
        raise


def refuse_malformed_uids(endpoint: str | None, values: dict | None) -> None:
    """A blueprint's URL value preprocessor: every path segment named ``*_uid`` must be a
    DICOM UID, or the address names nothing. Calls abort(404) before the view runs, so
    nothing is looked up or asked of a PACS."""
    if any(name.endswith("_uid") and not is_uid(value)
           for name, value in (values or {}).items()):
        abort(404)
