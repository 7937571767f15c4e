"""Single sign-on by OpenID Connect (NHS CIS2): the button's two routes.

Off unless GOLDENHOUR_OIDC_ISSUER is set: then the sign-in page shows no button and
both routes are 404. What the browser brings back is believed only for ``code`` and
``state``; the rest of the sign-in (nonce, PKCE verifier, where to go next) waits in
the signed session cookie between the two legs, once.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from integrations.oidc import OpenIDProvider, settings_from
from views.access import client_address
from views.auth import sign_in_by_sso
from workflow.accounts import sso

bp = Blueprint("sso", __name__)
PENDING = "sso_pending"


def init_app(app) -> None:
    settings = settings_from(app.config)
    app.extensions["goldenhour.oidc"] = OpenIDProvider(settings) if settings else None


def _provider() -> OpenIDProvider:
    """The configured identity provider; abort(404) when single sign-on is off."""
    provider = current_app.extensions.get("goldenhour.oidc")
    if provider is None:
        abort(404)
    return provider


def _redirect_uri() -> str:
    # The address registered with the identity provider: the public one, not whatever
    # Host header this request came with.
    return current_app.config["PUBLIC_BASE_URL"] + url_for("sso.callback")


@bp.app_context_processor
def _sign_in_button():
    provider = current_app.extensions.get("goldenhour.oidc")
    return {"sso_label": provider.settings.label if provider else None}


def _refused(exc: sso.SSORefused):
    return render_template("auth/sso_refused.html", message=exc.message), exc.status


@bp.get("/login/sso")
def start():
    provider = _provider()
    try:
        url, pending = sso.begin(provider, _redirect_uri(), client_address())
    except sso.SSORefused as exc:
        return _refused(exc)
    session[PENDING] = {**pending, "next": request.args.get("next")}
    return redirect(url)


@bp.get("/login/sso/callback")
def callback():
    provider = _provider()
    pending = session.pop(PENDING, None)  # one use, whatever happens next
    args = request.args
    try:
        user = sso.complete(
            provider, pending, redirect_uri=_redirect_uri(), code=args.get("code"),
            state=args.get("state"), returned_issuer=args.get("iss"),
            error=args.get("error"), error_description=args.get("error_description"),
            address=client_address())
    except sso.SSORefused as exc:
        return _refused(exc)
    return sign_in_by_sso(user, pending.get("next"))
