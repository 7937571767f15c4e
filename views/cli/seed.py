"""`flask seed-demo`."""

from __future__ import annotations

import click

from workflow.demo_history import seed_history
from workflow.seed import DEMO_PASSWORD, demo_logins, seed_demo


@click.command("seed-demo")
@click.option("--quiet", is_flag=True, help="Do not print the demo logins.")
@click.option("--no-history", is_flag=True,
              help="Without the past weeks' referrals (for the audit dashboard).")
def seed_demo_command(quiet: bool, no_history: bool) -> None:
    """Create the demo network, users, a 7-day rota and a few weeks of past referrals
    (safe to run again: nothing is written twice)."""
    counts = seed_demo()
    if not no_history:
        counts["past referrals added"] = seed_history()
    click.echo("Demo network ready: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if not quiet:
        click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, what in demo_logins():
            click.echo(f"  {email:<40} {what}")
