"""One sweep claims and sends several pages at once on PostgreSQL, never more than
SEND_WORKERS, and a loop that blows up loses nothing (the lease brings its page back)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from extensions import db
from models import Delivery, EscalationPolicy, HubService, Specialty
from tests.conftest import make_app
from tests.paging.helpers import raise_stroke, run_sweep
from workflow.paging import delivery as sender

pytestmark = [pytest.mark.postgres, pytest.mark.prism]
SMS_ONLY = [{"who": "tier1", "channels": ["sms"], "wait_minutes": 5, "repeat": 0}]
STALL = 0.6  # seconds Twilio takes to answer each send


def pool_app(postgres_url, tmp_path, twilio, workers: int):
    from workflow.seed import seed_demo

    app = make_app(postgres_url, tmp_path, SEND_WORKERS=workers, **twilio.app_config())
    ctx = app.app_context()
    ctx.push()
    db.create_all()
    seed_demo()
    services = db.session.scalars(select(HubService.id).join(Specialty)
                                  .where(Specialty.code == "stroke")).all()
    db.session.add_all(EscalationPolicy(hub_service_id=s, steps=SMS_ONLY) for s in services)
    db.session.commit()
    return app, ctx


@pytest.fixture
def with_workers(postgres_server, tmp_path, twilio):
    made = []

    def build(workers: int):
        url = postgres_server.create_database(f"gh_pool{workers}")
        made.append(pool_app(url, tmp_path / f"w{workers}", twilio, workers))
        return made[-1][0]

    yield build
    for _, ctx in made:
        db.session.remove()
        db.engine.dispose()
        ctx.pop()


def most_in_flight(arrivals: list[float], window: float) -> int:
    """The most requests that arrived within ``window`` seconds of one another."""
    arrivals = sorted(arrivals)
    return max(sum(1 for t in arrivals[i:] if t - start < window)
               for i, start in enumerate(arrivals))


def test_one_sweep_sends_pages_side_by_side(with_workers, twilio):
    with_workers(8)
    ids = [raise_stroke().id for _ in range(6)]
    twilio.stall(STALL)
    result = run_sweep()
    assert (result.claimed, result.sent, result.failed) == (6, 6, 0)
    arrivals = [seen.at for seen in twilio.sent("Messages")]
    assert len(arrivals) == 6
    # One at a time, each request would arrive STALL after the one before.
    assert most_in_flight(arrivals, STALL * 0.8) >= 3
    db.session.expire_all()
    statuses = db.session.scalars(select(Delivery.status)
                                  .where(Delivery.referral_id.in_(ids))).all()
    assert len(statuses) == 6 and not {"sending", "failed"} & set(statuses), statuses


def test_never_more_than_send_workers_at_once(with_workers, twilio):
    with_workers(2)
    for _ in range(6):
        raise_stroke()
    twilio.stall(STALL)
    result = run_sweep()
    assert result.sent == 6
    assert most_in_flight([seen.at for seen in twilio.sent("Messages")], STALL * 0.8) == 2


def test_a_send_that_raises_stays_sending_for_the_lease(with_workers, twilio, monkeypatch):
    with_workers(4)
    first, second = raise_stroke(), raise_stroke()
    first_id = first.id  # read here: the loops' threads must not touch this session
    real_send = sender.send

    def send(delivery_id, channels):
        if db.session.get(Delivery, delivery_id).referral_id == first_id:
            raise RuntimeError("database went away mid-send")
        return real_send(delivery_id, channels)

    monkeypatch.setattr(sender, "send", send)
    with pytest.raises(RuntimeError, match="database went away"):
        run_sweep()  # raised once every loop has finished: the other page still went
    db.session.expire_all()
    statuses = dict(db.session.execute(select(Delivery.referral_id, Delivery.status)).all())
    assert statuses[first.id] == "sending"  # the lease resends it (tests/paging row 2)
    assert statuses[second.id] not in ("sending", "failed")
    assert len(twilio.sent("Messages")) == 1


def test_no_more_loops_than_pages_due(with_workers, twilio, monkeypatch):
    """An idle tick starts no threads; two due pages start two loops, not eight."""
    from workflow.paging import workers as sweep_workers

    started = []
    real_run_loops = sweep_workers.run_loops

    def run_loops(count, loop):
        started.append(count)
        return real_run_loops(count, loop)

    monkeypatch.setattr(sweep_workers, "run_loops", run_loops)
    with_workers(8)
    assert run_sweep().claimed == 0
    raise_stroke(), raise_stroke()
    result = run_sweep()
    assert (result.claimed, result.sent) == (2, 2)
    assert started == [0, 2]
