"""Door-in-door-out, step by step: arrival → CT → images at hub → decision → departure,
on the referral page and as one stacked bar per month on the audit dashboard.

The suite's night is GMT, so UK wall-clock time (a CT's StudyTime) equals UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import LinkedStudy, Referral
from tests.paging.helpers import REFERRER, raise_stroke, user
from tests.workflow.helpers import AUDIT, SIGNED, STROKE_SPECIALISTS
from workflow import access_log
from workflow.audit import dido
from workflow.referrals import actions as referrals
from workflow.seed import DEMO_PASSWORD
from workflow.times import LONDON, now

pytestmark = pytest.mark.clock
SPECIALIST = STROKE_SPECIALISTS[0]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_dicom_study_time_is_read_as_uk_wall_clock_time():
    assert dido.study_time("20261129", "024500.123") == utc("2026-11-29T02:45:00")
    assert dido.study_time("20260701", "0930") == utc("2026-07-01T08:30:00")  # BST
    assert dido.study_time("20261129", "") == utc("2026-11-29T00:00:00")
    assert dido.study_time("", "0930") is None
    assert dido.study_time("2026XX01", "0930") is None
    # 01:30 happens twice on 25 October 2026: the first, in BST
    assert dido.study_time("20261025", "013000") == utc("2026-10-25T00:30:00")


def test_the_steps_add_up_to_the_door_in_door_out_time():
    found = dido.breakdown({"arrived": utc("2026-11-29T02:30"), "ct": utc("2026-11-29T02:45"),
                            "images_at_hub": utc("2026-11-29T03:10"),
                            "decided": utc("2026-11-29T03:30"),
                            "departed": utc("2026-11-29T04:00")})
    assert [(s.key, s.minutes) for s in found.steps] == [
        ("to_ct", 15), ("to_hub_images", 25), ("to_decision", 20), ("to_departure", 30)]
    assert (found.total, found.not_split) == (90, 0)


def test_a_missing_or_out_of_order_step_is_counted_as_not_split():
    """Decided before anyone at the hub opened the images, and no CT linked."""
    found = dido.breakdown({"arrived": utc("2026-11-29T02:30"), "ct": None,
                            "images_at_hub": utc("2026-11-29T03:40"),
                            "decided": utc("2026-11-29T03:30"),
                            "departed": utc("2026-11-29T04:00")})
    assert [s.minutes for s in found.steps] == [None, None, None, 30]
    assert (found.total, found.not_split) == (90, 60)


def transfer(clock, *, ct_time: str | None, hub_views_after: int) -> Referral:
    """A stroke transfer through the real workflow on the frozen clock: arrived 30 min
    before it was raised (02:30), a CT at ``ct_time`` (UK time), the referrer opens an
    image after 2 min and the audit lead, who works at the hub, after 3 min (neither is
    the hub's clinicians), the hub specialist after ``hub_views_after``;
    accepted at +5, decided at +30, departed at +60."""
    raised = now()
    referral = raise_stroke()
    if ct_time:
        db.session.add(LinkedStudy(
            referral_id=referral.id, hospital_id=referral.referring_hospital_id,
            study_uid=f"1.2.826.0.1.3680043.8.498.{referral.id}", description="CT head",
            study_date=raised.strftime("%Y%m%d"), modalities="CT", series_count=1,
            instance_count=30, linked_by_id=user(REFERRER).id,
            snapshot={"study_time": ct_time}))
        db.session.commit()
    specialist = user(SPECIALIST)
    steps = sorted([
        (2, lambda: access_log.record("image.view", "ok", user=user(REFERRER),
                                      referral_id=referral.id, commit=True)),
        (3, lambda: access_log.record("image.view", "ok", user=user(AUDIT),
                                      referral_id=referral.id, commit=True)),
        (5, lambda: referrals.acknowledge(referral.id, specialist)),
        (hub_views_after, lambda: access_log.record("image.view", "ok", user=specialist,
                                                    referral_id=referral.id, commit=True)),
        (30, lambda: referrals.decide(referral.id, specialist, {
            "outcome": "transfer", "destination_hospital": "QMC", "destination_unit": "HASU",
            "transfer_urgency": "immediate", "rationale": "M1 occlusion", **SIGNED})),
        (60, lambda: referrals.depart(referral.id, user(REFERRER))),
    ], key=lambda s: s[0])
    for minute, step in steps:
        clock.move_to(raised + timedelta(minutes=minute), tick=False)
        step()
    db.session.expire_all()
    return db.session.get(Referral, referral.id)


def test_the_referral_page_shows_each_step_of_a_transfer(network, client, clock):
    referral = transfer(clock, ct_time="024500", hub_views_after=10)
    found = dido.for_referral(referral)
    assert found.milestones == {
        "arrived": utc("2026-11-29T02:30"), "ct": utc("2026-11-29T02:45"),
        "images_at_hub": utc("2026-11-29T03:10"),  # the specialist's: not the referrer's
        # nor the audit lead's, though she works at the hub
        "decided": utc("2026-11-29T03:30"), "departed": utc("2026-11-29T04:00")}
    assert [s.minutes for s in found.steps] == [15, 25, 20, 30]
    client.login(REFERRER, DEMO_PASSWORD)
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    section = page[page.index('id="dido"'):]
    section = section[:section.index("</section>")]
    assert "Door-in-door-out: 1 h 30 min" in section
    shown = re.findall(r'<li class="dido-(\w+)"><span>([^<]+)</span>\s*<strong>([^<]+)</strong>',
                       section)
    assert shown == [("to_ct", "Arrival → CT", "15 min"),
                     ("to_hub_images", "CT → images at hub", "25 min"),
                     ("to_decision", "Images at hub → decision", "20 min"),
                     ("to_departure", "Decision → departure", "30 min")]


def test_a_referral_not_transferred_shows_no_breakdown(network, client):
    referral = raise_stroke()
    client.login(REFERRER, DEMO_PASSWORD)
    assert 'id="dido"' not in client.get(f"/referrals/{referral.id}").get_data(as_text=True)


def test_the_dashboard_stacks_the_average_steps_per_month(network, client, clock):
    transfer(clock, ct_time="024500", hub_views_after=10)  # 15 + 25 + 20 + 30
    clock.move_to(utc("2026-11-29T05:00"), tick=False)
    # No CT linked; the hub opens the images after the decision (at +40).
    transfer(clock, ct_time=None, hub_views_after=40)  # -, -, -, 30; 60 not split
    [bar] = dido.bars([])
    assert (bar.label, bar.transfers) == ("2026-11", 2)
    assert [bar.average(k) for k, *_ in dido.STEPS] == [7.5, 12.5, 10, 30]
    assert bar.average("not_split") == 30 and bar.total == 90
    client.login(AUDIT, DEMO_PASSWORD)
    page = client.get("/audit/").get_data(as_text=True)
    table = page[page.index('id="dido-table"'):]
    row = re.search(r"<tr><td>2026-11</td>(.*?)</tr>", table).group(1)
    assert re.findall(r'<td class="num">([^<]+)</td>', row) == [
        "2", "8 min", "12 min", "10 min", "30 min", "30 min", "90 min"]
    chart = page[page.index('class="chart dido-chart"'):page.index('id="dido-table"')]
    widths = {k: float(w) for k, w in re.findall(
        r'<rect class="dido-(\w+)" x="[\d.]+" y="\d+" width="([\d.]+)"', chart)}
    assert set(widths) == {"to_ct", "to_hub_images", "to_decision", "to_departure",
                           "not_split"}
    assert widths["to_departure"] == pytest.approx(2 * widths["to_hub_images"] * 30 / 25,
                                                   rel=0.02)


def test_the_bars_can_be_per_referring_hospital(network, clock):
    transfer(clock, ct_time="024500", hub_views_after=10)
    [bar] = dido.bars([], by="hospital")
    assert (bar.label, bar.transfers, bar.total) == ("PIL", 1, 90)
    with pytest.raises(ValueError, match="month or hospital"):
        dido.bars([], by="hub")


def minutes(text: str, after: float) -> datetime:
    return utc(text) + timedelta(minutes=after)


@pytest.fixture
def varied_transfers(make_referral):
    """Transfers whose steps go every way a real night goes, as (UTC arrival, site,
    linked studies as (StudyDate, StudyTime), images at hub, decided, departed) with the
    last three in minutes after arrival (None: not recorded)."""
    made = []

    def transfer_at(arrived: datetime, site: str, studies, images, decided, departed,
                    outcome: str = "transfer") -> Referral:
        referral = make_referral(arrived + timedelta(minutes=30), site=site, decision=1,
                                 departed=1, outcome=outcome, door_in=-30)
        after = lambda m: arrived + timedelta(minutes=m) if m is not None else None  # noqa: E731
        referral.arrived_at, referral.first_image_viewed_at = arrived, after(images)
        referral.decided_at, referral.departed_at = after(decided), after(departed)
        for n, (day, clock) in enumerate(studies):
            db.session.add(LinkedStudy(
                referral_id=referral.id, hospital_id=referral.referring_hospital_id,
                study_uid=f"1.2.826.0.1.3680043.8.498.{referral.id}.{n}", study_date=day,
                modalities="CT", linked_by_id=referral.referrer_id,
                snapshot={"study_time": clock, "description": "CT head"}))
        db.session.commit()
        made.append(referral)
        return referral

    # In order, in summer (BST): CT at 11:15 BST = 10:15 UTC.
    transfer_at(utc("2026-06-15T10:00:00.250000"), "PIL", [("20260615", "111500.5")],
                40, 60, 90)
    # No study linked, the images never opened at the hub.
    transfer_at(utc("2026-06-16T02:00"), "LCH", [], None, 30, 75)
    # Decided before the hub opened the images (out of order), CT in hhmm form.
    transfer_at(utc("2026-06-17T09:00"), "PIL", [("20260617", "1010")], 50, 30, 80)
    # Only a scan from before arrival (a previous attendance): no CT for this transfer.
    transfer_at(utc("2026-06-18T12:00"), "PIL", [("20260618", "124500")], 20, 35, 70)
    # Several studies: one before arrival, two after; the earliest after arrival counts.
    transfer_at(utc("2026-06-19T08:00"), "LCH",
                [("20260619", "085000"), ("20260619", "093000"), ("20260619", "091200")],
                40, 55, 100)
    # Bad StudyDate (not a date; empty) beside a readable one; a StudyTime of letters
    # reads as midnight of its date (before arrival here).
    transfer_at(utc("2026-06-20T07:00"), "PIL",
                [("2026XX20", "081000"), ("", "081500"), ("20260620", "ab"),
                 ("20260620", "082000.999")], 45, 50, 95)
    # Taken at 01:30 on the night the clocks go back (25 October 2026): read as the first
    # 01:30 (BST, 00:30 UTC), ten minutes after arrival; the hub never opened the images.
    transfer_at(utc("2026-10-25T00:20"), "PIL", [("20261025", "013000")], None, 40, 65)
    # Departed before the decision was recorded (out of order), and no decision at all.
    transfer_at(utc("2026-11-02T15:00"), "LCH", [("20261102", "151000")], 15, 70, 60)
    transfer_at(utc("2026-11-03T15:00"), "PIL", [("20261103", "152000")], 25, None, 60)
    # Either side of a month boundary, in BST (UK midnight is 23:00 UTC) and in GMT.
    transfer_at(utc("2026-05-31T22:59:59"), "PIL", [("20260531", "235959")], 10, 20, 30)
    transfer_at(utc("2026-05-31T23:00:00"), "LCH", [("20260601", "001000")], 15, 25, 45)
    transfer_at(utc("2026-11-30T23:59:59"), "PIL", [("20261201", "001500")], 30, 40, 50)
    transfer_at(utc("2026-12-01T00:00:00"), "LCH", [("20261201", "000500")], 10, 20, 50)
    # Not counted: not departed yet; treated locally.
    transfer_at(utc("2026-06-21T10:00"), "PIL", [("20260621", "101000")], 20, 30, None)
    transfer_at(utc("2026-06-22T10:00"), "PIL", [("20260622", "101000")], 20, 30, 60,
                outcome="treat_locally")
    db.session.expire_all()
    return made


def reference_bars(by: str) -> dict[str, tuple[int, dict[str, float]]]:
    """The bars as the referral page's breakdown gives each transfer, summed in Python."""
    found: dict[str, tuple[int, dict[str, float]]] = {}
    for r in db.session.scalars(select(Referral).where(
            Referral.outcome == "transfer", Referral.departed_at.is_not(None),
            Referral.arrived_at.is_not(None))):
        steps = dido.for_referral(r)
        label = (r.arrived_at.astimezone(LONDON).strftime("%Y-%m") if by == "month"
                 else r.referring_hospital.code)
        count, sums = found.get(label, (0, {}))
        for step in steps.steps:
            sums[step.key] = sums.get(step.key, 0.0) + (step.minutes or 0.0)
        sums["not_split"] = sums.get("not_split", 0.0) + steps.not_split
        found[label] = (count + 1, sums)
    return found


@pytest.mark.parametrize("by", ["month", "hospital"])
def test_the_bars_are_the_referral_breakdowns_summed(varied_transfers, by):
    expected = reference_bars(by)
    for key in (*(k for k, *_ in dido.STEPS), "not_split"):  # every sum is tested
        assert any(sums[key] > 0 for _count, sums in expected.values()), key
    found = dido.bars([], by=by)
    assert [b.label for b in found] == sorted(expected)
    assert {b.label: (b.transfers, b.sums) for b in found} == {
        label: (count, pytest.approx(sums, rel=1e-12)) for label, (count, sums)
        in expected.items()}
    if by == "month":
        assert [(b.label, b.transfers) for b in found] == [
            ("2026-05", 1), ("2026-06", 7), ("2026-10", 1), ("2026-11", 3), ("2026-12", 1)]


def test_a_study_read_in_the_hour_the_clocks_go_back_is_the_first_of_the_two(
        varied_transfers):
    [referral] = [r for r in varied_transfers if r.arrived_at == utc("2026-10-25T00:20")]
    assert dido.for_referral(referral).milestones["ct"] == utc("2026-10-25T00:30")
    [bar] = [b for b in dido.bars([]) if b.label == "2026-10"]
    assert bar.sums["to_ct"] == 10


def test_a_linked_study_keeps_its_time_taken_as_its_snapshot_changes(varied_transfers):
    study = db.session.scalar(select(LinkedStudy).where(LinkedStudy.study_date == "20260615"))
    assert study.taken_at == utc("2026-06-15T10:15")
    study.snapshot = {**study.snapshot, "study_time": "103000"}  # linked again, re-read
    db.session.commit()
    assert db.session.get(LinkedStudy, study.id).taken_at == utc("2026-06-15T09:30")
    study.study_date = "2026XX15"
    db.session.commit()
    assert db.session.get(LinkedStudy, study.id).taken_at is None
