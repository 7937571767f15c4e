"""`flask scheduler run` (the one paging process in production) and `sweep-once`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

scheduler_cli = AppGroup("scheduler", help="The paging sweep.")


@scheduler_cli.command("run")
def run():
    """Run the paging sweep until stopped (one process per installation)."""
    from workflow import scheduler

    click.echo("goldenhour scheduler: sweeping for due pages (Ctrl-C to stop)")
    scheduler.run_forever(current_app._get_current_object())


@scheduler_cli.command("sweep-once")
def sweep_once():
    """Run one sweep now and print what it did."""
    from workflow.paging import sweep

    result = sweep.run_once(current_app.extensions["goldenhour.channels"])
    click.echo(f"claimed {result.claimed}, sent {result.sent}, failed {result.failed}, "
               f"cancelled {result.cancelled}, resent {result.resent}")
