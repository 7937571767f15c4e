"""`flask seed-demo`."""

from __future__ import annotations

import click

from workflow.seed import DEMO_PASSWORD, demo_logins, seed_demo


@click.command("seed-demo")
@click.option("--quiet", is_flag=True, help="Do not print the demo logins.")
def seed_demo_command(quiet: bool) -> None:
    """Create the demo network, users and a 7-day rota (safe to run again)."""
    counts = seed_demo()
    click.echo("Demo network ready: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if not quiet:
        click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, what in demo_logins():
            click.echo(f"  {email:<40} {what}")
