"""Tampering as the evidence tables' owner can: past their append-only triggers.

The triggers (models/append_only.py) hold the app's own role. The tables' owner or a
superuser can switch them off; that is the tamperer these tests play, to prove the
hash chains and the anchors catch what the triggers cannot stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from extensions import db
from models.append_only import TABLES


def _triggers(action: str) -> None:
    connection = db.session.connection()  # no autoflush: the edits wait for the flush
    if connection.dialect.name == "postgresql":
        for table in TABLES:
            connection.execute(text(f"ALTER TABLE {table} {action} TRIGGER USER"))


@contextmanager
def as_owner() -> Iterator[None]:
    """Flush and commit what the block changes (ORM edits or statements) with the
    append-only triggers off for the transaction (PostgreSQL)."""
    _triggers("DISABLE")
    yield
    db.session.flush()
    _triggers("ENABLE")
    db.session.commit()


def tamper(statement, **params) -> None:
    """Run ``statement`` (SQL text or a SQLAlchemy statement) as the owner; commit."""
    with as_owner():
        db.session.execute(text(statement) if isinstance(statement, str) else statement,
                           params)
