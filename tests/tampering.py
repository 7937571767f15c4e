"""Tampering as the evidence tables' owner can: past their append-only triggers.

The triggers (models/append_only.py) hold the app's own role. The tables' owner or a
superuser can switch them off; that is the tamperer these tests play, to prove the
hash chains and the anchors catch what the triggers cannot stop.
"""

from __future__ import annotations

from sqlalchemy import text

from extensions import db
from models.append_only import TABLES


def tamper(statement, **params) -> None:
    """Run ``statement`` (SQL text or a SQLAlchemy statement) with the append-only
    triggers off for its transaction (PostgreSQL), and commit."""
    if isinstance(statement, str):
        statement = text(statement)
    owner = db.session.get_bind().dialect.name == "postgresql"
    if owner:
        for table in TABLES:
            db.session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    db.session.execute(statement, params)
    if owner:
        for table in TABLES:
            db.session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
    db.session.commit()
