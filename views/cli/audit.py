"""`flask audit verify`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

audit_cli = AppGroup("audit", help="Audit and integrity.")


@audit_cli.command("verify")
def verify():
    """Check every event chain and stored record; exit 1 naming the first problems."""
    from workflow.audit.integrity import verify_all

    report = verify_all()
    if report.ok:
        click.echo(f"OK: {report.referrals_checked} referrals, {report.events_checked} events, "
                   "chains intact")
        return
    for problem in report.problems[:20]:
        click.echo(f"TAMPERED: {problem}", err=True)
    if len(report.problems) > 20:
        click.echo(f"... and {len(report.problems) - 20} more", err=True)
    raise SystemExit(1)
