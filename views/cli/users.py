"""`flask users create|token|tokens|revoke-tokens|list`."""

from __future__ import annotations

from contextlib import contextmanager

import click
from flask.cli import AppGroup
from sqlalchemy import select

from extensions import db
from models import Role, User
from workflow.accounts import accounts
from workflow.errors import NotFound, ValidationFailed
from workflow.times import now

users_cli = AppGroup("users", help="Manage user accounts and API tokens.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice([r.value for r in Role]), help="Repeat for several roles.")
@click.option("--hospital", default=None, help="Hospital code, e.g. QMC.")
@click.option("--specialty", "specialties", multiple=True, help="Repeat for several.")
@click.option("--phone", default="")
@click.password_option()
def create(email, name, roles, hospital, specialties, phone, password):
    """Create a user."""
    try:
        user = accounts.create_user(email=email, name=name, password=password, roles=list(roles),
                                    hospital_code=hospital, specialties=list(specialties),
                                    phone=phone)
    except ValidationFailed as exc:
        for field, message in exc.errors.items():
            click.echo(f"{field}: {message}", err=True)
        raise SystemExit(1) from None
    click.echo(f"Created {user.email} ({', '.join(sorted(user.roles))}).")


@contextmanager
def _unknown_user_exits():
    """A NotFound (no such user) becomes a one-line error and exit status 1."""
    try:
        yield
    except NotFound as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


@users_cli.command("token")
@click.argument("email")
@click.option("--label", default="", help="What the token is for.")
def token(email, label):
    """Print a new API token for EMAIL (shown once; stored hashed)."""
    with _unknown_user_exits():
        click.echo(accounts.issue_token(email, label))


@users_cli.command("tokens")
@click.argument("email")
def tokens(email):
    """List EMAIL's API tokens: label, created, expires, last used, revoked or expired
    (times in UTC)."""
    with _unknown_user_exits():
        found = accounts.tokens_of(email)
    if not found:
        click.echo(f"{email} has no API tokens.")

    def when(value) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "never"

    at = now()
    for t in found:
        state = f"revoked {when(t.revoked_at)}" if t.revoked_at else \
            "expired" if t.expires_at <= at else "live"
        click.echo(f"{t.label or '(no label)'}: created {when(t.created_at)}, "
                   f"expires {when(t.expires_at)}, last used {when(t.last_used_at)}, {state}")


@users_cli.command("revoke-tokens")
@click.argument("email")
def revoke_tokens(email):
    """Revoke every API token of EMAIL."""
    with _unknown_user_exits():
        count = accounts.revoke_tokens(email)
    click.echo(f"Revoked {count} token(s).")


@users_cli.command("list")
def list_users():
    """List users with their roles and hospital."""
    for user in db.session.scalars(select(User).order_by(User.email)):
        hospital = user.hospital.code if user.hospital else "-"
        state = "" if user.active else " (deactivated)"
        click.echo(f"{user.email}\t{','.join(sorted(user.roles))}\t{hospital}{state}")
