"""Blueprints. Routes are thin: parse input, call one workflow function, render."""

from __future__ import annotations

from flask import Flask
from flask_login import current_user

from workflow.accounts import policy
from workflow.referrals import labels, receipts
from workflow.times import format_local, wall_choices

# (endpoint, label, permission): the navigation, shown only to those allowed.
NAV_ITEMS: list[tuple[str, str, str]] = [
    ("paging.inbox", "Pager", "pager.inbox"),
    ("referrals.new", "New referral", "referral.raise"),
    ("referrals.mine", "My referrals", "referral.raise"),
    ("referrals.worklist", "Worklist", "worklist.view"),
    ("admin.index", "Admin", "admin.manage"),
    ("audit.dashboard", "Audit", "audit.view"),
]


def register(app: Flask) -> None:
    from views import (  # admin_paging adds its routes to admin's blueprint
        admin,
        admin_paging,  # noqa: F401
        api,
        api_fhir,
        audit,
        auth,
        bodies,
        errors,
        headers,
        home,
        live,
        paging,
        push,
        records,
        referrals,
        sso,
        two_factor,
        webhooks,
    )
    from views.access import DatabaseId
    from views.cli import register_cli

    app.url_map.converters["int"] = DatabaseId  # before any route is added
    bodies.init_app(app)
    auth.init_app(app)
    sso.init_app(app)
    errors.init_app(app)
    headers.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(sso.bp)
    app.register_blueprint(two_factor.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(paging.bp)
    app.register_blueprint(push.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(referrals.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(api_fhir.bp)
    register_cli(app)
    # Images: study search and linking, rendered frames, the review page.
    from views import admin_pacs, api_images, review

    app.register_blueprint(admin_pacs.bp)
    app.register_blueprint(api_images.bp)
    app.register_blueprint(review.bp)

    app.add_template_filter(format_local, "local")
    app.add_template_filter(wall_choices, "wall_choices")
    labels.register(app)

    @app.context_processor
    def _template_helpers():
        return {
            "can": lambda permission: policy.allowed(current_user, permission),
            "nav_items": NAV_ITEMS,
            # The thread messages the user has not read, beside the Pager link.
            "unread_messages": lambda: receipts.unread_total(current_user),
        }
