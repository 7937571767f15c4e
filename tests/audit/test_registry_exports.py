"""Registry exports: the SSNAP stroke CSV and the NMTR trauma CSV have the columns
docs/EXPORTS.md lists (read from the document), SSNAP's codes, UK local times either
side of the clock changes, and the existing exports' access checks and trace."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from extensions import db
from models import AccessLog, Decision, Hospital, LinkedStudy, Referral, User
from tests.audit.conftest import at

ROOT = Path(__file__).resolve().parents[2]
AUDIT = "audit@em.demo.nhs.uk"
DEMO_PASSWORD = "goldenhour-demo"


def documented_columns(heading: str) -> list[str]:
    """The first column of the table under ``heading`` in docs/EXPORTS.md."""
    lines = (ROOT / "docs" / "EXPORTS.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    columns = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        first = line.strip().strip("|").split("|")[0].strip() if line.startswith("|") else ""
        if first.startswith("`") and first.endswith("`"):
            columns.append(first.strip("`"))
    return columns


def export(client, name: str, query: str = "") -> tuple[list[str], list[dict]]:
    response = client.get(f"/audit/export/{name}{query}", buffered=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


@pytest.fixture
def audit_client(client, network):
    client.login(AUDIT, DEMO_PASSWORD)
    return client


def with_clinical(referral: Referral, **clinical) -> Referral:
    db.session.get(Referral, referral.id).clinical = clinical
    db.session.commit()
    return referral


def link_study(referral: Referral, modality: str, study_date: str, study_time: str) -> None:
    hospital = db.session.scalar(select(Hospital).where(Hospital.code == "PIL"))
    db.session.add(LinkedStudy(
        referral_id=referral.id, hospital_id=hospital.id,
        study_uid=f"1.2.826.0.1.{referral.id}.{len(study_time)}{study_time}",
        modalities=modality, study_date=study_date,
        snapshot={"study_date": study_date, "study_time": study_time,
                  "modalities": [modality]}))
    db.session.commit()


def test_the_ssnap_header_is_the_column_list_of_docs_exports(audit_client):
    header, _ = export(audit_client, "ssnap.csv")
    documented = documented_columns("## SSNAP stroke CSV")
    assert header == documented
    assert {"S1NHSNumber", "S1OnsetTimeType", "S2Thrombolysis", "TransferToDateTime"} \
        <= set(header)


def test_the_nmtr_header_is_the_column_list_of_docs_exports(audit_client):
    header, _ = export(audit_client, "nmtr.csv")
    assert header == documented_columns("## NMTR trauma CSV")
    assert len(header) > 10


def test_stroke_referrals_carry_ssnaps_codes(make_referral, audit_client):
    precise = with_clinical(
        make_referral(at("2026-01-10T10:00"), reference="S1", onset=-90, door_in=-30,
                      decision=20, outcome="transfer", departed=25),
        nihss=14, pre_stroke_mrs=1, thrombolysis_given=True,
        thrombolysis_at="2026-01-10T10:10:00+00:00", imaging=["CT", "CTA"])
    link_study(precise, "CT", "20260110", "093512.250")
    link_study(precise, "CT", "20260110", "094400")
    with_clinical(make_referral(at("2026-01-11T10:00"), reference="S2", onset=-60,
                                certainty="estimated", door_in=-20),
                  nihss=4, pre_stroke_mrs=0, thrombolysis_given=False)
    make_referral(at("2026-01-12T10:00"), reference="S3", door_in=-10)
    make_referral(at("2026-01-13T10:00"), reference="S4", onset=-400,
                  certainty="during_sleep", door_in=-20)
    make_referral(at("2026-01-14T10:00"), reference="T1", specialty="major_trauma")
    _, rows = export(audit_client, "ssnap.csv")
    assert len(rows) == 4  # the trauma referral is not SSNAP's
    s1, s2, s3, s4 = rows
    assert s1 == {
        "S1NHSNumber": "9434765919", "S1OnsetDateTime": "10/01/2026 08:30",
        "S1OnsetTimeType": "P", "S1FirstArrivalDateTime": "10/01/2026 09:30",
        "S1PatientClockStartDateTime": "10/01/2026 09:30", "S2RankinBeforeStroke": "1",
        "S2NihssArrival": "14", "S2BrainImagingDateTime": "10/01/2026 09:35",
        "S2Thrombolysis": "Y", "S2ThrombolysisDateTime": "10/01/2026 10:10",
        "TransferToDateTime": "10/01/2026 10:45",
    }
    assert (s2["S1OnsetTimeType"], s2["S2Thrombolysis"], s2["S2ThrombolysisDateTime"],
            s2["S2RankinBeforeStroke"], s2["TransferToDateTime"]) == ("BE", "N", "", "0", "")
    assert (s3["S1OnsetTimeType"], s3["S1OnsetDateTime"], s3["S2Thrombolysis"],
            s3["S2BrainImagingDateTime"]) == ("NK", "", "", "")
    assert (s4["S1OnsetTimeType"], s4["S1OnsetDateTime"]) == ("BE", "13/01/2026 03:20")


def test_times_are_uk_local_either_side_of_both_clock_changes(make_referral, audit_client):
    # 29 March 2026: 01:00 GMT becomes 02:00 BST. 25 October 2026: 02:00 BST becomes
    # 01:00 GMT, so 00:30 and 01:30 UTC are both 01:30 on the wall.
    make_referral(at("2026-03-29T02:00"), reference="M1", onset=-90, door_in=-30,
                  decision=10, outcome="transfer", departed=5)
    make_referral(at("2026-10-25T02:00"), reference="O1", onset=-90, door_in=-30,
                  decision=10, outcome="transfer", departed=5)
    _, (march, october) = export(audit_client, "ssnap.csv")
    assert (march["S1OnsetDateTime"], march["S1FirstArrivalDateTime"],
            march["TransferToDateTime"]) == ("29/03/2026 00:30", "29/03/2026 02:30",
                                             "29/03/2026 03:15")
    assert (october["S1OnsetDateTime"], october["S1FirstArrivalDateTime"],
            october["TransferToDateTime"]) == ("25/10/2026 01:30", "25/10/2026 01:30",
                                               "25/10/2026 02:15")


def test_the_trauma_export_gives_each_milestone_in_uk_time(make_referral, audit_client):
    referral = with_clinical(
        make_referral(at("2026-07-01T10:00"), reference="T1", specialty="major_trauma",
                      site="LCH", page=1, ack=3, decision=15, outcome="transfer",
                      door_in=-40, departed=10, image=[6]),
        age=34, gcs=9, time_of_injury="2026-07-01T08:50:00+00:00", mechanism="RTC",
        injuries="chest", eta_minutes=None)
    qmc = db.session.scalar(select(Hospital).where(Hospital.code == "QMC"))
    specialist = db.session.scalar(select(User).where(User.email == AUDIT))
    db.session.add(Decision(referral_id=referral.id, outcome="transfer",
                            destination_hospital_id=qmc.id, rationale="splenic injury",
                            decided_by_id=specialist.id, decided_at=at("2026-07-01T10:15")))
    db.session.get(Referral, referral.id).arrived_at_hub = at("2026-07-01T11:20")
    db.session.commit()
    link_study(referral, "CT", "20260701", "102000")
    link_study(referral, "MR", "20260701", "100000")  # not a CT
    make_referral(at("2026-07-02T10:00"), reference="S1")  # stroke: not the NMTR's
    hub = db.session.get(Referral, referral.id).hub_service.hospital
    _, rows = export(audit_client, "nmtr.csv")
    assert rows == [{
        "Reference": "T1", "NHSNumber": "9434765919", "ReferringHospital": "LCH",
        "ReceivingHospital": hub.code,
        "IncidentDateTime": "01/07/2026 09:50", "ArrivalDateTime": "01/07/2026 10:20",
        "CTDateTime": "01/07/2026 10:20", "ReferralDateTime": "01/07/2026 11:00",
        "ConsultantAcknowledgedDateTime": "01/07/2026 11:03",
        "ImagesViewedDateTime": "01/07/2026 11:06", "DecisionDateTime": "01/07/2026 11:15",
        "Decision": "transfer", "DestinationHospital": "QMC",
        "DepartureDateTime": "01/07/2026 11:25", "ArrivalAtMTCDateTime": "01/07/2026 12:20",
        "GCS": "9", "Age": "34",
    }]


def test_a_cell_starting_like_a_formula_is_neutralised(make_referral, audit_client):
    make_referral(at("2026-01-10T10:00"), reference="=HYPERLINK(1)", specialty="major_trauma")
    _, [row] = export(audit_client, "nmtr.csv")
    assert row["Reference"] == "'=HYPERLINK(1)"


@pytest.mark.parametrize("name", ["ssnap.csv", "nmtr.csv"])
def test_each_registry_export_is_filtered_and_leaves_an_access_log_row(
        make_referral, audit_client, name):
    make_referral(at("2026-01-10T10:00"), reference="J1", specialty="major_trauma")
    make_referral(at("2026-01-10T10:00"), reference="J2")
    make_referral(at("2026-02-10T10:00"), reference="F1", specialty="major_trauma")
    make_referral(at("2026-02-10T10:00"), reference="F2")
    _, rows = export(audit_client, name, "?date_from=2026-02-01&date_to=2026-02-28")
    assert len(rows) == 1
    db.session.expire_all()
    [logged] = db.session.scalars(select(AccessLog).where(AccessLog.action == "audit.export"))
    assert (logged.email, logged.outcome, logged.role) == (AUDIT, "ok", "audit_lead")
    assert logged.detail.startswith(name) and "date_from=2026-02-01" in logged.detail


def test_a_bad_filter_on_a_registry_export_is_a_422_naming_it(audit_client):
    response = audit_client.get("/audit/export/ssnap.csv?date_to=2026-13-01", buffered=True)
    assert response.status_code == 422
    assert "date_to:" in response.get_data(as_text=True)
