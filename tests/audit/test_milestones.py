"""The audit milestone columns on referrals are written by the workflow as things happen:
the sweep (first page, escalation past step 0, escalation exhausted) and the access
log (first image viewed)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Referral, RotaShift
from tests.paging.helpers import REFERRER, raise_stroke, run_sweep, user
from workflow import access_log
from workflow.times import now

pytestmark = pytest.mark.clock


def reread(referral_id: int) -> Referral:
    db.session.expire_all()
    return db.session.get(Referral, referral_id)


def test_the_sweep_writes_first_page_escalated_and_unanswered(network, clock):
    referral = raise_stroke()
    started = now()
    fresh = reread(referral.id)
    assert (fresh.first_paged_at, fresh.escalated, fresh.unanswered_at) == (None, False, None)
    run_sweep()
    fresh = reread(referral.id)
    assert fresh.first_paged_at == started and not fresh.escalated
    clock.shift(timedelta(minutes=5))
    run_sweep()  # tier 2
    fresh = reread(referral.id)
    assert fresh.escalated and fresh.first_paged_at == started
    for _ in range(2):  # duty manager, then nobody is left
        clock.shift(timedelta(minutes=5))
        run_sweep()
    fresh = reread(referral.id)
    assert fresh.state == "unanswered"
    assert fresh.unanswered_at == started + timedelta(minutes=15)
    assert fresh.first_paged_at == started


def test_a_step_that_reached_nobody_is_not_the_first_page(network, clock):
    from workflow.paging import sweep

    db.session.query(RotaShift).filter(RotaShift.tier == 1).delete()
    db.session.commit()
    referral = raise_stroke()
    page, ids = sweep.claim_next(now())  # tier 1: nobody on the rota
    assert page.step == 0 and ids == []
    assert reread(referral.id).first_paged_at is None
    clock.shift(timedelta(seconds=30))
    page, ids = sweep.claim_next(now())  # tier 2, brought forward
    assert page.step == 1 and ids
    fresh = reread(referral.id)
    assert fresh.first_paged_at == now() and fresh.escalated


def test_the_first_image_view_at_the_hub_is_kept_on_the_referral(network, clock):
    referral = raise_stroke()
    registrar = user("stroke.night@qmc.demo.nhs.uk")
    access_log.record("image.view", "denied", user=registrar, referral_id=referral.id)
    access_log.record("image.list", "ok", user=registrar, referral_id=referral.id)
    # the referrer at Pilgrim looking at their own CT: the images have not reached the hub
    access_log.record("image.view", "ok", user=user(REFERRER), referral_id=referral.id)
    access_log.record("image.view", "ok", user=user("audit@em.demo.nhs.uk"),  # at QMC
                      referral_id=referral.id)
    access_log.record("image.view", "ok", email="x@test.nhs.uk", referral_id=referral.id)
    assert reread(referral.id).first_image_viewed_at is None
    first = now()
    access_log.record("image.view", "ok", user=registrar, referral_id=referral.id)
    clock.shift(timedelta(minutes=3))
    access_log.record("image.view", "ok", user=registrar, referral_id=referral.id)
    assert reread(referral.id).first_image_viewed_at == first
    assert db.session.scalar(select(Referral.version).where(Referral.id == referral.id)) \
        == referral.version  # not a state change
