"""The dashboard's numbers on the hand-built set (see conftest.py for the table)."""

from __future__ import annotations

import re

import pytest

from tests.audit.conftest import at
from workflow.audit import stats as audit_stats
from workflow.errors import ValidationFailed

AUDIT = "audit@em.demo.nhs.uk"
DEMO_PASSWORD = "goldenhour-demo"


def board(**args):
    return audit_stats.dashboard(audit_stats.parse_filters(args))


def measures(result) -> dict[str, tuple]:
    return {m.key: (m.count, m.median, m.p90) for m in result.measures}


def test_medians_and_90th_percentiles_equal_the_hand_computed_values(audit_set):
    found = measures(board())
    expected = {
        "first_page": (5, 2, 3.6),
        "acknowledge": (5, 10, 35),
        "first_image": (2, 10, 11.6),
        "decision": (5, 40, 62),
        "departure": (3, 25, 33),
        "door_in_door_out": (3, 75, 115),
        "onset_decision": (3, 100, 108),
    }
    for key, (count, median, p90) in expected.items():
        assert found[key][0] == count, key
        assert found[key][1] == pytest.approx(median), key
        assert found[key][2] == pytest.approx(p90), key


def test_shares_and_outlier_counts_are_counted_over_all_referrals(audit_set):
    result = board()
    assert result.referrals == 5
    assert (result.transfers, result.unanswered, result.escalated) == (3, 1, 1)
    assert (result.slow_acknowledge, result.slow_decision) == (2, 3)
    assert result.share(result.transfers) == pytest.approx(0.6)


def test_breakdowns_by_month_and_by_site_count_and_take_medians(audit_set):
    result = board()
    assert [(g.key, g.referrals) for g in result.by_month] == [
        ("2026-01", 2), ("2026-02", 2), ("2026-03", 1)]
    sites = {g.key: g for g in result.by_site}
    assert (sites["PIL"].referrals, sites["PIL"].transfers) == (3, 1)
    assert sites["PIL"].median_acknowledge == pytest.approx(10)
    assert sites["LCH"].median_decision == pytest.approx(32.5)


def test_an_image_kpi_without_any_image_views_says_no_data(make_referral, client):
    make_referral(at("2026-01-10T10:00"), page=1, ack=5, decision=20)
    assert measures(board())["first_image"] == (0, None, None)
    client.login(AUDIT, DEMO_PASSWORD)
    page = client.get("/audit/")
    assert page.status_code == 200
    assert "no data" in page.get_data(as_text=True)


@pytest.mark.parametrize(("args", "references"), [
    ({"hospital": "LCH"}, {"A3", "A5"}),
    ({"specialty": "major_trauma"}, {"A5"}),
    ({"outcome": "transfer"}, {"A1", "A3", "A5"}),
    ({"date_from": "2026-02-01", "date_to": "2026-02-28"}, {"A3", "A4"}),
    ({"date_to": "2026-01-10"}, {"A1"}),
    ({"hub": "QMC", "state": "closed"}, {"A1", "A2", "A3", "A4", "A5"}),
    ({"hub": "LRI"}, set()),
])
def test_filters_narrow_the_referrals_counted_and_listed(audit_set, args, references):
    filters = audit_stats.parse_filters(args)
    assert audit_stats.dashboard(filters).referrals == len(references)
    assert {r.reference for r in audit_stats.referral_list(filters)} == references


def test_dates_are_london_dates_so_a_summer_half_past_midnight_is_the_next_day(make_referral):
    make_referral(at("2026-06-30T23:30"), reference="BST")  # 00:30 on 1 July in London
    assert board(date_from="2026-07-01", date_to="2026-07-01").referrals == 1
    assert board(date_from="2026-06-30", date_to="2026-06-30").referrals == 0


def test_the_referral_list_flags_slow_acknowledge_slow_decision_and_unanswered(audit_set):
    listed = {r.reference: r for r in audit_stats.referral_list(audit_stats.Filters())}
    assert listed["A1"].flags == ()
    assert listed["A2"].flags == ("decision > 30 min",)
    assert listed["A4"].flags == ("unanswered", "acknowledge > 15 min", "decision > 30 min")


@pytest.mark.parametrize(("args", "field", "message"), [
    ({"date_from": "2026-13-01"}, "date_from", "'2026-13-01' is not a date like 2026-03-31."),
    ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, "date_to",
     "The end date 2026-02-01 is before the start date 2026-03-01."),
    ({"hospital": "XYZ"}, "hospital", "'XYZ' is not a hospital in this network."),
    ({"hub": "NOPE"}, "hub", "'NOPE' is not a hospital in this network."),
    ({"specialty": "cardio"}, "specialty", "'cardio' is not a specialty in this network."),
    ({"outcome": "maybe"}, "outcome", "'maybe' is not one of advice only, not accepted, "
                                      "transfer, treat locally."),
    ({"state": "lost"}, "state", "'lost' is not one of "),
])
def test_a_bad_filter_is_refused_with_a_message_for_that_field(network, args, field, message):
    with pytest.raises(ValidationFailed) as caught:
        audit_stats.parse_filters(args)
    assert caught.value.errors[field].startswith(message)


def test_the_dashboard_shows_bad_filters_on_the_form_with_422_not_a_crash(network, client):
    client.login(AUDIT, DEMO_PASSWORD)
    page = client.get("/audit/?date_from=2026-13-01&hospital=%3Cscript%3E")
    text = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "&#39;2026-13-01&#39; is not a date like 2026-03-31." in text
    assert "is not a hospital in this network." in text
    assert "<script>" not in text


def test_the_dashboard_shows_tiles_svg_charts_and_links_each_referral_to_its_timeline(
        audit_set, client):
    client.login(AUDIT, DEMO_PASSWORD)
    page = client.get("/audit/?date_from=2026-01-01&date_to=2026-12-31")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    # referrals by month, decision by site, door-in-door-out by month
    assert text.count("<svg") == 3
    # drawn on the server: no chart script, only the layout's own (form focus)
    assert re.findall(r"<script[^>]*>", text) == [
        '<script src="/static/js/focus-errors.js" defer>']
    assert "Referrals by month" in text and "2026-02" in text
    assert f'href="/referrals/{audit_set["A4"].id}"' in text
    assert "unanswered" in text and "acknowledge &gt; 15 min" in text
    timeline = client.get(f"/referrals/{audit_set['A4'].id}")
    assert timeline.status_code == 200
