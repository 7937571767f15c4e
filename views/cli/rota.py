"""`flask rota gaps`: where the rota would page nobody, for a cron job or a person."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

from workflow.paging import rota_cover
from workflow.times import now

rota_cli = AppGroup("rota", help="The on-call rota.")


@rota_cli.command("gaps")
@click.option("--hours", type=click.IntRange(1, 24 * 60), default=72, show_default=True,
              help="How far ahead to look.")
def gaps(hours: int) -> None:
    """List every stretch when a hub service's tier would page nobody. Exits 1 when
    there is one, so a monitoring job can alert on it."""
    found = rota_cover.find_gaps(now(), timedelta(hours=hours))
    if not found:
        click.echo(f"The rota covers every hub service and tier for the next {hours} h.")
        return
    click.echo(f"{len(found)} gap(s) in the next {hours} h:")
    for gap in found:
        click.echo(f"  {gap.describe()}")
    raise SystemExit(1)
