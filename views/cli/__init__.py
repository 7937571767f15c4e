"""Command-line tools for admins: `flask users ...`, `flask seed-demo`, `flask images ...`,
`flask rota gaps`."""

from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    from views.cli.audit import audit_cli
    from views.cli.docs import docs_cli
    from views.cli.images import images_cli
    from views.cli.rota import rota_cli
    from views.cli.scheduler import scheduler_cli
    from views.cli.seed import seed_demo_command
    from views.cli.users import users_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(docs_cli)
    app.cli.add_command(images_cli)
    app.cli.add_command(rota_cli)
