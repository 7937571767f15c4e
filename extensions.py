"""Flask extensions, created once here and bound to the app in create_app()."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints so Alembic migrations are stable on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# DATABASE_REPLICA_URL (config.py) becomes this bind: a read-only PostgreSQL replica
# the audit pages and exports read from, inside `reading_replica()`.
REPLICA = "replica"
_replica_reads: ContextVar[bool] = ContextVar("goldenhour_replica_reads", default=False)


class Session(FlaskSession):
    """Flask-SQLAlchemy's session; inside `reading_replica()` every statement goes to
    the replica engine when one is configured (else to the primary as always)."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and _replica_reads.get():
            replica = self._db.engines.get(REPLICA)
            if replica is not None:
                return replica
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


@contextmanager
def reading_replica() -> Iterator[None]:
    """Send this block's statements to the replica (reads only: the replica refuses
    writes). Without DATABASE_REPLICA_URL it changes nothing."""
    previous = _replica_reads.get()
    _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.set(previous)


def from_replica(rows: Iterable) -> Iterator:
    """Iterate ``rows`` (a lazy query's results, e.g. a streamed export) reading each
    from the replica; between items nothing is routed, so the request's own writes
    (the access log) still go to the primary."""
    iterator = iter(rows)
    while True:
        with reading_replica():
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


db = SQLAlchemy(model_class=Base, session_options={"class_": Session})
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
