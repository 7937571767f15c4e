"""The installable app and its push pages: the web app manifest, the service worker
(served from the site's root so that its scope is the whole app), and the browser
subscriptions the webpush channel pages."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_from_directory, url_for
from flask_login import current_user

from integrations.pager.base import push_host
from views.access import client_address, requires
from views.bodies import caps_body
from workflow import access_log
from workflow.paging import push

bp = Blueprint("push", __name__)

# A browser's PushSubscription.toJSON() is about 400 bytes; nothing bigger is one.
SUBSCRIPTION_MAX_BYTES = 4096


@bp.get("/manifest.webmanifest")
def manifest():
    """The web app manifest: installable, opening on the pager."""
    icon = "img/icon-{0}.png"
    body = {
        "name": "goldenhour", "short_name": "goldenhour",
        "description": "Urgent teleconsultation for the regional network",
        "start_url": url_for("paging.inbox"), "scope": "/", "display": "standalone",
        "background_color": "#10151c", "theme_color": "#10151c",
        "icons": [{"src": url_for("static", filename=icon.format(size)),
                   "sizes": f"{size}x{size}", "type": "image/png", "purpose": "any maskable"}
                  for size in (192, 512)],
    }
    return current_app.json.response(body), 200, {"Content-Type": "application/manifest+json"}


@bp.get("/sw.js")
def service_worker() -> Response:
    """static/sw.js at the root, so that it may control every page of the app."""
    response = send_from_directory(current_app.static_folder, "sw.js",
                                   mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.post("/push/subscriptions")
@requires("pager.inbox")
@caps_body(SUBSCRIPTION_MAX_BYTES)
def subscribe():
    """This browser takes pages by Web Push from now on. 201; 422 naming a bad field."""
    allow_local = current_app.config["GOLDENHOUR_ENV"] != "production"
    row = push.subscribe(current_user, request.get_json(silent=True), allow_local=allow_local)
    access_log.record("push.subscribe", "ok", user=current_user, address=client_address(),
                      detail=push_host(row.endpoint))
    return {"id": row.id, "channel": "webpush"}, 201


@bp.delete("/push/subscriptions")
@requires("pager.inbox")
@caps_body(SUBSCRIPTION_MAX_BYTES)
def unsubscribe():
    """This browser takes no more pushes. 204 (also when it had none)."""
    body = request.get_json(silent=True)
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    if isinstance(endpoint, str) and push.unsubscribe(current_user, endpoint):
        access_log.record("push.unsubscribe", "ok", user=current_user,
                          address=client_address(), detail=push_host(endpoint))
    return "", 204
