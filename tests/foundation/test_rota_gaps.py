"""Rota cover: a stretch in the next 72 hours when a hub service's tier would page
nobody is on the admin status page, counted on /ready, in `flask rota gaps`, and in one email
to the duty manager and admins; the demo network's rota keeps itself covered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from flask import current_app
from sqlalchemy import delete, select, update

from extensions import db
from models import HubService, RotaGap, RotaShift, User
from tests.clock import SUITE_NIGHT
from workflow import scheduler
from workflow.paging import rota_cover
from workflow.paging.sweep import heartbeat
from workflow.seed import DEMO_PASSWORD
from workflow.times import now

pytestmark = pytest.mark.clock
DUTY = "duty.manager@qmc.demo.nhs.uk"
ADMIN = "admin@em.demo.nhs.uk"
DAY = "stroke.day@qmc.demo.nhs.uk"
# The day shift after the suite's night: 08:00-20:00 GMT on Monday 30 November, which
# starts 29 hours after 03:00 on the Sunday.
MONDAY_DAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def app_config(smtp_server):
    return smtp_server.app_config()


def stroke_service() -> HubService:
    return db.session.scalar(select(HubService).where(HubService.name.like("Stroke%")))


def _drop_monday_day_shift() -> None:
    """Tier 1 of the stroke service on Monday's day shift: nobody."""
    db.session.execute(delete(RotaShift).where(
        RotaShift.hub_service_id == stroke_service().id, RotaShift.tier == 1,
        RotaShift.starts_at == MONDAY_DAY))
    db.session.commit()


def _check() -> int:
    db.session.commit()
    return scheduler.check_rota_cover(current_app._get_current_object())


@pytest.mark.parametrize("at", [
    pytest.param(None, id="the-suite-night"),
    pytest.param(None, marks=pytest.mark.clock("2027-03-27T22:00:00+00:00"), id="before-march"),
    pytest.param(None, marks=pytest.mark.clock("2027-10-30T23:30:00+00:00"), id="october-0030"),
    pytest.param(None, marks=pytest.mark.clock("2028-02-28T21:00:00+00:00"), id="leap-day"),
    pytest.param(None, marks=pytest.mark.clock("2027-12-31T23:59:00+00:00"), id="new-year"),
])
def test_the_demo_network_seeded_on_any_date_has_no_gap_in_the_next_72_hours(network, at):
    assert rota_cover.find_gaps(now()) == []


def test_a_gap_30_hours_ahead_is_found_with_its_service_tier_times_and_reason(network):
    _drop_monday_day_shift()
    [gap] = rota_cover.find_gaps(now())
    assert (gap.service_id, gap.tier) == (stroke_service().id, 1)
    assert (gap.starts_at, gap.ends_at) == (MONDAY_DAY, MONDAY_DAY + timedelta(hours=12))
    assert gap.starts_at - SUITE_NIGHT == timedelta(hours=29)
    assert gap.describe() == ("Stroke (hyperacute), Queen's Medical Centre, tier 1: "
                              "Mon 30 Nov 2026 08:00 to Mon 30 Nov 2026 20:00 "
                              "(nobody is on the rota)")


def test_a_gap_30_hours_ahead_is_on_the_status_page_in_the_command_and_in_one_email(
        app, network, runner, mailbox):
    _drop_monday_day_shift()
    assert _check() == 1
    assert _check() == 0  # seen again: the same gap, nobody is told twice
    to_duty = [m for m in mailbox.messages if DUTY in m.rcpt_tos]
    assert len(to_duty) == 1
    mail = to_duty[0].message
    assert "Rota gap: Stroke (hyperacute), Queen's Medical Centre, tier 1" in mail["Subject"]
    assert "Mon 30 Nov 2026 08:00" in mail.get_content()
    assert "/admin/rota" in mail.get_content()
    assert [m for m in mailbox.messages if ADMIN in m.rcpt_tos]
    [kept] = db.session.scalars(select(RotaGap)).all()
    assert f"sent to {DUTY}" in kept.email_result

    admin = app.test_client()
    assert admin.login(ADMIN, DEMO_PASSWORD).status_code == 302
    page = admin.get("/admin/status").get_data(as_text=True)
    assert "1 GAP" in page
    assert "Stroke (hyperacute), Queen&#39;s Medical Centre, tier 1: Mon 30 Nov 2026 08:00" \
        in page
    assert f"sent to {DUTY}" in page

    result = runner.invoke(args=["rota", "gaps"])
    assert result.exit_code == 1
    assert "1 gap(s) in the next 72 h" in result.output
    assert "Stroke (hyperacute), Queen's Medical Centre, tier 1: Mon 30 Nov 2026 08:00" \
        in result.output
    assert runner.invoke(args=["rota", "gaps", "--hours", "24"]).exit_code == 0


def test_a_gap_only_deactivated_or_phoneless_people_hold_is_a_gap(network):
    db.session.execute(update(User).where(User.email == DAY).values(active=False))
    db.session.commit()
    reasons = {g.reasons for g in rota_cover.find_gaps(now()) if g.tier == 1}
    assert ("deactivated",) in reasons
    db.session.execute(update(User).where(User.email == DAY).values(active=True, phone=""))
    db.session.commit()
    reasons = {g.reasons for g in rota_cover.find_gaps(now()) if g.tier == 1}
    assert reasons == {("no_phone",)}


def test_a_filled_gap_is_resolved_and_a_new_one_is_told_again(network, mailbox, clock):
    _drop_monday_day_shift()
    _check()
    day = db.session.scalar(select(User).where(User.email == DAY))
    db.session.add(RotaShift(user_id=day.id, hub_service_id=stroke_service().id, tier=1,
                             starts_at=MONDAY_DAY, ends_at=MONDAY_DAY + timedelta(hours=12)))
    db.session.commit()
    _check()
    assert db.session.scalar(select(RotaGap.resolved_at)) == SUITE_NIGHT
    assert rota_cover.open_gaps() == []
    mailbox.clear()
    _drop_monday_day_shift()
    assert _check() == 1
    assert [m for m in mailbox.messages if DUTY in m.rcpt_tos]


def test_ready_counts_the_kept_gaps_and_stays_ready_with_them(network, client):
    heartbeat("sweep")
    assert client.get("/ready").json["checks"]["rota_open_gaps"] == 0
    _drop_monday_day_shift()
    _check()
    answer = client.get("/ready").json
    # A gap is the rota's problem, not this node's: the status page shows it in full.
    assert answer["checks"]["rota_open_gaps"] == 1
    assert answer["checks"]["scheduler"] == "ok"


@pytest.mark.parametrize("app_config", [{"DEMO_ROTA": True}])
def test_the_demo_rota_extends_itself_on_every_check(network, clock):
    clock.shift(timedelta(days=10))
    assert rota_cover.find_gaps(now())  # a week's rota seeded ten days ago has run out
    _check()
    assert rota_cover.find_gaps(now()) == []


def test_a_trusts_own_rota_is_never_topped_up(app, make_user, clock):
    from workflow.seed import extend_demo_rota

    make_user(roles=["specialist"])
    assert extend_demo_rota() == 0
    assert db.session.scalar(select(RotaShift.id)) is None


def test_the_scheduler_runs_the_cover_check(app):
    background = BackgroundScheduler()
    scheduler._add_job(background, current_app._get_current_object())
    assert background.get_job("rota_cover") is not None
