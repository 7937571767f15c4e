"""UK wall-clock times across the clock changes: a time that happens twice (the last
Sunday of October, 01:00-02:00) or never (the last Sunday of March, 01:00-02:00) is
refused with both meanings named, or chosen explicitly; never guessed."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from extensions import db
from models import Referral
from tests.workflow.helpers import REFERRER, bearer, stroke_form, stroke_payload
from workflow.paging import rota
from workflow.seed import DEMO_PASSWORD
from workflow.times import (
    AmbiguousLocalTime,
    NonexistentLocalTime,
    format_local,
    parse_local,
    wall_choices,
)

# 02:30 GMT on Sunday 31 October 2027: both 01:40s are past.
AFTER_OCTOBER_CHANGE = "2027-10-31T02:30:00+00:00"
# 03:00 BST on Sunday 28 March 2027.
AFTER_MARCH_CHANGE = "2027-03-28T02:00:00+00:00"


def test_the_october_hour_happens_twice_and_both_meanings_are_named():
    with pytest.raises(AmbiguousLocalTime) as caught:
        parse_local("2027-10-31T01:40")
    assert caught.value.choices == (datetime(2027, 10, 31, 0, 40, tzinfo=UTC),
                                    datetime(2027, 10, 31, 1, 40, tzinfo=UTC))
    message = str(caught.value)
    assert "happens twice" in message
    assert "01:40 BST, the first (2027-10-31T01:40+01:00)" in message
    assert "01:40 GMT, the second (2027-10-31T01:40+00:00)" in message


def test_the_march_hour_does_not_exist():
    with pytest.raises(NonexistentLocalTime, match="01:30 on Sun 28 Mar 2027 does not exist"):
        parse_local("2027-03-28T01:30")


@pytest.mark.parametrize("text, instant", [
    ("2027-10-31T00:50", datetime(2027, 10, 30, 23, 50, tzinfo=UTC)),  # BST
    ("2027-10-31T02:00", datetime(2027, 10, 31, 2, 0, tzinfo=UTC)),  # GMT again
    ("2027-10-31T01:40+01:00", datetime(2027, 10, 31, 0, 40, tzinfo=UTC)),
    ("2027-10-31T01:40+00:00", datetime(2027, 10, 31, 1, 40, tzinfo=UTC)),
    ("2027-03-28T00:59", datetime(2027, 3, 28, 0, 59, tzinfo=UTC)),  # GMT
    ("2027-03-28T02:00", datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),  # BST
])
def test_times_either_side_of_the_changes_and_times_with_offsets_are_one_instant(text,
                                                                                 instant):
    assert parse_local(text) == instant


def test_a_time_that_happens_twice_is_shown_with_its_zone_and_others_are_not():
    assert format_local(datetime(2027, 10, 31, 0, 40, tzinfo=UTC)) == "Sun 31 Oct 2027 01:40 BST"
    assert format_local(datetime(2027, 10, 31, 1, 40, tzinfo=UTC)) == "Sun 31 Oct 2027 01:40 GMT"
    assert format_local(datetime(2027, 10, 30, 23, 50, tzinfo=UTC)) == "Sun 31 Oct 2027 00:50"
    assert format_local(datetime(2027, 10, 31, 1, 40, tzinfo=UTC), "%d %b") == "31 Oct"


def test_the_form_offers_both_meanings_of_a_time_that_happens_twice():
    assert [value for value, _label in wall_choices("2027-10-31T01:40")] == [
        "2027-10-31T01:40+01:00", "2027-10-31T01:40+00:00"]
    assert wall_choices("2027-10-31T02:40") == []
    assert wall_choices("2027-10-31T01:40+00:00") == []
    assert wall_choices("not a time") == []


# --- The stroke of the October night, through the API ---------------------------------


def october_stroke(**over) -> dict:
    return stroke_payload(onset_at="2027-10-31T00:50", **over)


@pytest.mark.clock(AFTER_OCTOBER_CHANGE)
def test_an_arrival_at_a_time_that_happens_twice_is_refused_naming_both(network, client):
    response = client.post("/api/v1/referrals", json=october_stroke(arrived_at="2027-10-31T01:40"),
                           headers=bearer(REFERRER))
    assert response.status_code == 422
    message = response.json["errors"]["arrived_at"]
    assert "happens twice" in message and "+01:00" in message and "+00:00" in message
    assert db.session.scalar(select(Referral.id)) is None


@pytest.mark.clock(AFTER_OCTOBER_CHANGE)
@pytest.mark.parametrize("offset, arrived_utc, since_arrival", [
    ("+01:00", datetime(2027, 10, 31, 0, 40, tzinfo=UTC), 110),  # the first 01:40 (BST)
    ("+00:00", datetime(2027, 10, 31, 1, 40, tzinfo=UTC), 50),  # the second (GMT)
])
def test_the_october_stroke_counts_its_clocks_from_the_chosen_arrival(network, client, offset,
                                                                      arrived_utc,
                                                                      since_arrival):
    created = client.post("/api/v1/referrals", headers=bearer(REFERRER),
                          json=october_stroke(arrived_at=f"2027-10-31T01:40{offset}"))
    assert created.status_code == 201, created.json
    body = created.json
    # Onset 00:50 BST is 23:50 UTC on the 30th: 2 h 40 min before 02:30 GMT.
    assert body["onset_at"] == "2027-10-30T23:50:00+00:00"
    assert body["arrived_at"] == arrived_utc.isoformat()
    clocks = body["clocks"]
    assert (clocks["since_onset"], clocks["since_arrival"]) == (160, since_arrival)
    thrombolysis = next(w for w in clocks["windows"] if w["name"] == "thrombolysis")
    # 4 h 30 min from 23:50 UTC: 04:20 UTC, which is 04:20 GMT that morning.
    assert thrombolysis["closes_at"] == "2027-10-31T04:20:00+00:00"
    assert thrombolysis["minutes_left"] == 110


@pytest.mark.clock(AFTER_MARCH_CHANGE)
def test_an_onset_at_a_time_that_never_happened_is_refused(network, client):
    response = client.post("/api/v1/referrals", headers=bearer(REFERRER), json=stroke_payload(
        onset_at="2027-03-28T01:30", arrived_at="2027-03-28T02:40"))
    assert response.status_code == 422
    assert "does not exist in UK time" in response.json["errors"]["onset_at"]


# --- The same night on the form ----------------------------------------------------------


def _form(**over) -> dict:
    return stroke_form(**{"onset_at": "2027-10-31T00:50", "arrived_at": "2027-10-31T01:40",
                          **over})


@pytest.fixture
def referrer(app, network):
    client = app.test_client()
    assert client.login(REFERRER, DEMO_PASSWORD).status_code == 302
    return client


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.clock(AFTER_OCTOBER_CHANGE)
def test_the_form_asks_which_01_40_and_stores_the_one_chosen(referrer):
    asked = referrer.post("/referrals/new", data=_form())
    assert asked.status_code == 422
    page = asked.get_data(as_text=True)
    assert "happens twice" in _text(page)
    assert 'name="arrived_at.zone" value="2027-10-31T01:40+01:00"' in page
    assert 'name="arrived_at.zone" value="2027-10-31T01:40+00:00"' in page
    assert db.session.scalar(select(Referral.id)) is None

    sent = referrer.post("/referrals/new", data=_form(**{
        "arrived_at.zone": "2027-10-31T01:40+00:00"}))
    assert sent.status_code == 302, sent.get_data(as_text=True)
    referral = db.session.scalar(select(Referral))
    assert referral.arrived_at == datetime(2027, 10, 31, 1, 40, tzinfo=UTC)
    shown = _text(referrer.get(f"/referrals/{referral.id}").get_data(as_text=True))
    assert "Since arrival 50 min" in shown
    assert "Since onset (precise) 2 h 40 min" in shown
    assert "Onset Sun 31 Oct 2027 00:50 · arrived Sun 31 Oct 2027 01:40 GMT" in shown


@pytest.mark.clock(AFTER_OCTOBER_CHANGE)
def test_a_choice_for_another_time_than_the_one_in_the_field_counts_for_nothing(referrer):
    response = referrer.post("/referrals/new", data=_form(**{
        "arrived_at": "2027-10-31T01:45", "arrived_at.zone": "2027-10-31T01:40+00:00"}))
    assert response.status_code == 422
    assert db.session.scalar(select(Referral.id)) is None


@pytest.mark.clock("2027-10-31T01:20:00+00:00")  # the second 01:20 (GMT)
def test_in_the_hour_that_happens_twice_the_forms_arrival_now_says_which(referrer):
    page = referrer.get("/referrals/new").get_data(as_text=True)
    assert 'value="2027-10-31T01:20"' in page
    assert re.search(r'name="arrived_at.zone" value="2027-10-31T01:20\+00:00" checked', page)


# --- Rota files -------------------------------------------------------------------------


def test_a_rota_row_starting_at_a_time_that_happens_twice_names_its_line(network):
    text = "email,hub,specialty,tier,start,end\n" + ("stroke.night@qmc.demo.nhs.uk,QMC,stroke,1,"
                          "2027-10-31 01:30,2027-10-31 08:00\n")
    with pytest.raises(rota.RotaImportError) as caught:
        rota.import_csv(text)
    [bad] = caught.value.bad_rows
    assert bad.line == 2 and "happens twice" in bad.message
