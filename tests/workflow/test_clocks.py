"""Clocks and stroke treatment windows, on frozen time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from extensions import db
from models import Referral
from tests.clock import SUITE_NIGHT
from tests.workflow.helpers import REFERRER, STROKE_SPECIALISTS, stroke_payload, user
from workflow.referrals import actions as referrals
from workflow.referrals import clocks
from workflow.referrals.input import parse_new_referral
from workflow.times import parse_local

NOW = SUITE_NIGHT


def _windows(onset_minutes_ago: int | None, travel: int | None, certainty="precise"):
    onset = NOW - timedelta(minutes=onset_minutes_ago) if onset_minutes_ago is not None \
        else None
    return {w.name: w for w in clocks.windows(onset, certainty, NOW, travel)}


def test_three_hours_after_onset_thrombolysis_is_open_now_but_not_after_a_100_minute_drive():
    w = _windows(180, travel=100)
    assert (w["thrombolysis"].open_now, w["thrombolysis"].minutes_left) == (True, 90)
    assert w["thrombolysis"].open_on_arrival is False
    assert (w["thrombectomy"].minutes_left, w["thrombectomy"].open_on_arrival) == (180, True)
    assert (w["thrombectomy_extended"].minutes_left,
            w["thrombectomy_extended"].open_on_arrival) == (21 * 60, True)
    assert w["thrombolysis"].closes_at == (NOW + timedelta(minutes=90)).isoformat()


@pytest.mark.parametrize("minutes_ago, name, open_now", [
    (269, "thrombolysis", True), (270, "thrombolysis", False),
    (359, "thrombectomy", True), (360, "thrombectomy", False),
    (24 * 60 - 1, "thrombectomy_extended", True), (24 * 60, "thrombectomy_extended", False),
])
def test_each_window_closes_at_its_hour(minutes_ago, name, open_now):
    assert _windows(minutes_ago, travel=0)[name].open_now is open_now


def test_an_unknown_onset_gives_no_windows():
    for w in [*_windows(None, travel=30).values(),
              *_windows(60, travel=30, certainty="unknown").values()]:
        assert (w.minutes_left, w.open_now, w.open_on_arrival, w.closes_at) == \
            (None, None, None, None)


def test_without_a_travel_time_on_arrival_is_unknown():
    assert _windows(60, travel=None)["thrombolysis"].open_on_arrival is None


@pytest.mark.clock
def test_the_referral_clocks_count_minutes_from_each_milestone(network, clock):
    # onset 01:00 and arrival 01:40 in November are GMT (UTC).
    referral = referrals.raise_referral(user(REFERRER), stroke_payload())
    rid = referral.id
    clock.move_to("2026-11-29T03:10:00+00:00", tick=False)
    referrals.acknowledge(rid, user(STROKE_SPECIALISTS[0]))
    clock.move_to("2026-11-29T03:25:00+00:00", tick=False)
    db.session.expire_all()
    referral = db.session.get(Referral, rid)
    c = clocks.referral_clocks(referral, datetime.now(UTC))
    assert (c["since_onset"], c["since_arrival"], c["since_referral"],
            c["since_acknowledge"], c["referral_to_acknowledge"]) == (145, 105, 25, 15, 10)
    assert c["travel_minutes_to_hub"] == 100  # PIL -> QMC in the demo network
    thrombolysis = next(w for w in c["windows"] if w["name"] == "thrombolysis")
    assert (thrombolysis["minutes_left"], thrombolysis["open_now"],
            thrombolysis["open_on_arrival"]) == (125, True, True)
    assert c["referral_to_decision"] is None and c["door_in_door_out"] is None


@pytest.mark.clock
def test_the_clocks_stop_when_the_referral_ends(network, clock):
    rid = referrals.raise_referral(user(REFERRER), stroke_payload()).id
    clock.move_to("2026-11-29T03:30:00+00:00", tick=False)
    referrals.cancel(rid, user(REFERRER), {"reason": "Symptoms resolved"})
    clock.move_to("2026-11-29T09:00:00+00:00", tick=False)
    db.session.expire_all()
    c = clocks.referral_clocks(db.session.get(Referral, rid), datetime.now(UTC))
    assert c["since_referral"] == 30


@pytest.mark.clock
def test_an_unknown_onset_referral_has_no_onset_clock(network, clock):
    payload = stroke_payload(onset_certainty="unknown")
    del payload["onset_at"]
    referral = referrals.raise_referral(user(REFERRER), payload)
    c = clocks.referral_clocks(referral, datetime.now(UTC))
    assert c["since_onset"] is None
    assert all(w["minutes_left"] is None for w in c["windows"])


def test_a_naive_summer_time_is_london_bst_and_stored_an_hour_earlier_in_utc():
    assert parse_local("2026-07-01T14:30") == datetime(2026, 7, 1, 13, 30, tzinfo=UTC)
    assert parse_local("2026-12-01T14:30") == datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
    summer_now = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
    parsed = parse_new_referral(
        stroke_payload(onset_at="2026-07-01T14:30", arrived_at="2026-07-01T15:10"),
        summer_now, {"stroke"}, {"PIL"})
    assert parsed.onset_at == datetime(2026, 7, 1, 13, 30, tzinfo=UTC)
    assert parsed.arrived_at == datetime(2026, 7, 1, 14, 10, tzinfo=UTC)


@pytest.mark.clock("2026-07-01T16:00:00+00:00")
def test_a_summer_referral_is_stored_in_utc(network, clock):
    rid = referrals.raise_referral(user(REFERRER), stroke_payload(
        onset_at="2026-07-01T14:30", arrived_at="2026-07-01T15:10")).id
    db.session.expire_all()
    referral = db.session.get(Referral, rid)
    assert referral.onset_at == datetime(2026, 7, 1, 13, 30, tzinfo=UTC)
    assert referral.onset_at.utcoffset() == timedelta(0)
