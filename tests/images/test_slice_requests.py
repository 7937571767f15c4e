"""What one image request costs the database, and what it answers when the study, the
instance or the PACS is not there."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from extensions import db
from models import AccessLog, LinkedStudy, PacsEndpoint
from tests.images.test_search_link_render import (
    PASSWORD,
    SPECIALIST,
    frame_url,
    link_sample,
    series_url,
    sops,
)
from workflow.imaging import frames

pytestmark = pytest.mark.orthanc


def _series_uid(referral_id: int) -> str:
    study = db.session.scalar(select(LinkedStudy).where(LinkedStudy.referral_id == referral_id))
    return study.snapshot["series"][0]["series_uid"]


def _queries_of(client, url: str) -> tuple[list[str], object]:
    """The SQL statements one request sends (SQLite's own BEGIN left out), starting
    with an empty database session as a request in the server does."""
    db.session.remove()
    statements: list[str] = []
    record = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        answer = client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return [s for s in statements if not s.startswith("BEGIN")], answer


@pytest.mark.clock  # the access log's once-a-minute row is written by the first request
def test_a_cached_slice_reads_the_session_then_referral_study_and_pacs_in_one_query(
        referral, client):
    link_sample(referral)
    frames.wait_for_prefetch()
    url = frame_url(referral.id, sops(referral.id)[14], format="jpeg")
    client.login(SPECIALIST, PASSWORD)
    assert client.get(url).status_code == 200  # and this minute's image.view row
    queries, answer = _queries_of(client, url)
    assert answer.status_code == 200 and answer.headers["X-Image-Cache"] == "memory"
    # The login session with its user, roles and specialties; then the referral's
    # access facts with the linked study, its hospital and its PACS endpoint.
    assert len(queries) == 2, queries


@pytest.mark.clock
def test_a_cached_run_of_slices_costs_the_same_two_queries(referral, client):
    link_sample(referral)
    frames.wait_for_prefetch()
    url = series_url(referral.id, _series_uid(referral.id), first=1, count=28)
    client.login(SPECIALIST, PASSWORD)
    assert client.get(url).status_code == 200
    frames.wait_for_prefetch()
    queries, answer = _queries_of(client, url)
    assert answer.status_code == 200 and answer.headers["X-Image-Cache-Misses"] == "0"
    assert len(queries) == 2, queries


def test_a_slice_of_a_study_not_linked_or_not_in_it_is_a_404_that_says_which(referral,
                                                                              client):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    other_study = client.get(frame_url(referral.id, ids[0], study_uid="1.2.3"))
    assert other_study.status_code == 404
    assert other_study.get_json()["error"] == "no such study is linked to this referral"
    no_instance = client.get(frame_url(referral.id, "1.2.3.4"))
    assert no_instance.status_code == 404
    assert no_instance.get_json()["error"] == "no such instance in this study"
    series = client.get(series_url(referral.id, "1.2.3.4"))
    assert series.status_code == 404
    assert series.get_json()["error"] == "no such series in this study"
    nobody = client.get(frame_url(999999, ids[0]))
    assert nobody.status_code == 404 and nobody.get_json()["error"] == "no referral 999999"


def test_a_slice_whose_hospital_lost_its_pacs_is_a_404_naming_the_hospital(referral,
                                                                          client):
    link_sample(referral)
    frames.wait_for_prefetch()
    ids = sops(referral.id)
    series_uid = _series_uid(referral.id)
    endpoint = db.session.scalar(select(PacsEndpoint))
    endpoint.base_url = ""
    db.session.commit()
    client.login(SPECIALIST, PASSWORD)
    for url in (frame_url(referral.id, ids[14], format="jpeg"),  # warm in the caches too
                series_url(referral.id, series_uid, count=2)):
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert answer.get_json()["error"] == "Pilgrim Hospital has no PACS endpoint any more"
    db.session.delete(endpoint)
    db.session.commit()
    gone = client.get(frame_url(referral.id, ids[14]))
    assert gone.status_code == 404
    assert gone.get_json()["error"] == "Pilgrim Hospital has no PACS endpoint any more"


def test_another_hospitals_referrer_is_refused_before_being_told_what_is_linked(referral,
                                                                                client):
    link_sample(referral)
    client.login("referrer@lch.demo.nhs.uk", PASSWORD)
    for url in (frame_url(referral.id, sops(referral.id)[0]),
                frame_url(referral.id, "1.2.3.4", study_uid="1.2.3")):
        assert client.get(url).status_code == 403, url
    denied = db.session.scalars(select(AccessLog).filter_by(action="image.view",
                                                            outcome="denied")).all()
    assert len(denied) == 2
