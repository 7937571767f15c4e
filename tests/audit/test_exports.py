"""CSV exports: columns, values, spreadsheet-formula injection, and the access log."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from extensions import db
from models import AccessLog, Referral
from tests.audit.conftest import at
from views.audit import REFERRAL_COLUMNS

AUDIT = "audit@em.demo.nhs.uk"
DEMO_PASSWORD = "goldenhour-demo"


# buffered=True: the test client reads each streamed export inside the request's context.


def rows(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def audit_client(client, network):
    client.login(AUDIT, DEMO_PASSWORD)
    return client


def test_the_referral_csv_has_ssnap_style_timestamps_for_a_known_referral(audit_set,
                                                                           audit_client):
    response = audit_client.get("/audit/export/referrals.csv", buffered=True)
    header = response.get_data(as_text=True).splitlines()[0]
    assert header == ",".join(REFERRAL_COLUMNS)
    found = {r["reference"]: r for r in rows(response)}
    assert list(found) == ["A1", "A2", "A3", "A4", "A5"]
    assert found["A1"] == {
        "reference": "A1", "specialty": "stroke", "referring_hospital": "PIL", "hub": "QMC",
        "clock_start": "2026-01-10T09:30:00Z", "onset": "2026-01-10T08:30:00Z",
        "onset_certainty": "precise", "arrival": "2026-01-10T09:30:00Z",
        "referral": "2026-01-10T10:00:00Z", "first_page": "2026-01-10T10:01:00Z",
        "acknowledge": "2026-01-10T10:05:00Z", "first_image_viewed": "2026-01-10T10:08:00Z",
        "decision": "2026-01-10T10:20:00Z", "outcome": "transfer",
        "departure": "2026-01-10T10:45:00Z", "arrival_at_hub": "",
    }
    assert found["A3"]["onset"] == "" and found["A3"]["onset_certainty"] == "unknown"


def test_the_referral_csv_is_filtered_like_the_dashboard(audit_set, audit_client):
    response = audit_client.get("/audit/export/referrals.csv?date_from=2026-02-01"
                                "&date_to=2026-02-28&hospital=LCH", buffered=True)
    assert [r["reference"] for r in rows(response)] == ["A3"]


def test_a_bad_filter_on_an_export_is_a_422_with_the_message(network, audit_client):
    response = audit_client.get("/audit/export/referrals.csv?date_to=2026-13-01", buffered=True)
    assert response.status_code == 422
    assert "date_to: '2026-13-01' is not a date like 2026-03-31." in response.get_data(
        as_text=True)


@pytest.mark.parametrize("formula", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)"])
def test_a_cell_starting_like_a_formula_is_neutralised(make_referral, audit_client, formula):
    referral = make_referral(at("2026-01-10T10:00"), reference="F1")
    db.session.get(Referral, referral.id).reference = formula[:32]
    db.session.commit()
    exported = rows(audit_client.get("/audit/export/referrals.csv", buffered=True))
    assert exported[0]["reference"] == "'" + formula[:32]


def test_the_access_log_csv_lists_rows_with_formula_text_neutralised(network, audit_client):
    db.session.add(AccessLog(at=at("2026-01-10T10:00"), action="login", outcome="failure",
                             email="=cmd|' /C calc'!A0"))
    db.session.commit()
    exported = rows(audit_client.get("/audit/export/access-log.csv?date_from=2026-01-10"
                                     "&date_to=2026-01-10", buffered=True))
    assert [(r["action"], r["email"]) for r in exported] == [("login", "'=cmd|' /C calc'!A0")]
    assert exported[0]["at"] == "2026-01-10T10:00:00Z"


@pytest.mark.parametrize("path", ["/audit/export/referrals.csv",
                                  "/audit/export/access-log.csv?hospital=PIL"])
def test_every_export_leaves_an_access_log_row(audit_set, audit_client, path):
    audit_client.get(path, buffered=True)
    db.session.expire_all()
    logged = db.session.scalars(select(AccessLog).where(AccessLog.action == "audit.export")).all()
    assert [(row.email, row.outcome) for row in logged] == [(AUDIT, "ok")]
    assert path.split("/")[-1].split("?")[0] in logged[0].detail
    assert logged[0].role == "audit_lead" and logged[0].at is not None


def test_the_referral_csv_made_in_sql_is_byte_identical_to_the_python_one(
        audit_set, make_referral, audit_client):
    # On PostgreSQL the cells are made in SQL (views.audit._csv_chunks); the per-cell
    # Python path (_csv_lines over export_rows) is the reference: same bytes, including
    # truncated fractional seconds, quoting, a formula-like cell and empty cells.
    from views.audit import _csv_lines
    from workflow.audit import stats as audit_stats

    make_referral(at("2026-03-05T10:00:59.999999"), reference='-A,"q"', ack=1.5,
                  decision=2.25, outcome="advice_only", onset=-61, certainty="estimated")
    make_referral(at("2026-03-06T23:59:59.5"), reference="@x\ty")
    db.session.commit()
    body = audit_client.get("/audit/export/referrals.csv", buffered=True).get_data()
    with audit_client.application.test_request_context():
        filters = audit_stats.parse_filters({})
        expected = "".join(_csv_lines(REFERRAL_COLUMNS, audit_stats.export_rows(filters)))
    assert body == expected.encode()
    lines = body.decode().split("\r\n")
    assert lines[0] == ",".join(REFERRAL_COLUMNS) and len(lines) == 1 + 7 + 1
    assert lines[6].startswith('"\'-A,""q""",stroke,PIL,QMC,')
    assert "2026-03-05T10:00:59Z" in lines[6]
