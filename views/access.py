"""Request helpers shared by the blueprints: the client address and permission checks."""

from __future__ import annotations

from functools import wraps

from flask import abort, request
from flask_login import current_user

from workflow import access_log
from workflow.accounts import policy


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
