"""Upload (good and bad files), prefetch after a page, key images in the record."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from extensions import db
from models import LinkedStudy
from tests.images.conftest import SAMPLE_STUDY, today_study_files
from tests.images.test_search_link_render import PASSWORD, SPECIALIST, frame_url, link_sample, sops
from tests.paging.helpers import REFERRER, run_sweep
from tests.workflow.helpers import SIGNED
from workflow.imaging import frames
from workflow.imaging.cache import caches

pytestmark = pytest.mark.orthanc
DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
BAD_FILES = sorted((DATA / "malformed").glob("*")) + sorted((DATA / "non_image").glob("*"))


def upload(client, referral_id, files):
    # Encoded here, in memory: the test client would spool a large body to a temporary
    # file that it never closes.
    fields = MultiDict([("files", FileStorage(io.BytesIO(data), filename=name))
                        for name, data in files])
    boundary, body = encode_multipart(fields)
    return client.post(f"/referrals/{referral_id}/studies/upload", data=body,
                       headers={"Accept": "application/json"},
                       content_type=f"multipart/form-data; boundary={boundary}")


def test_an_upload_stores_and_links_good_files_and_names_the_bad_ones(referral, client):
    good = today_study_files(2)
    client.login(REFERRER, PASSWORD)
    answer = upload(client, referral.id, [("a.dcm", good[0]), ("b.dcm", good[1]),
                                          ("notes.dcm", b"not an image at all")])
    body = answer.get_json()
    assert answer.status_code == 200, body
    assert body["stored"] == ["a.dcm", "b.dcm"]
    assert body["rejected"] == [{"file": "notes.dcm", "reason": "not a DICOM file"}]
    linked = db.session.scalar(select(LinkedStudy).where(
        LinkedStudy.referral_id == referral.id, LinkedStudy.study_uid == body["linked"][0]))
    assert linked.instance_count == 2


def test_a_zip_upload_goes_through_member_by_member(referral, client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, data in enumerate(today_study_files(2)):
            archive.writestr(f"study/{n}.dcm", data)
        archive.writestr("study/readme.txt", "hello")
    client.login(REFERRER, PASSWORD)
    body = upload(client, referral.id, [("scan.zip", buffer.getvalue())]).get_json()
    assert body["stored"] == ["scan.zip/study/0.dcm", "scan.zip/study/1.dcm"]
    assert [r["file"] for r in body["rejected"]] == ["scan.zip/study/readme.txt"]


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_malformed_or_non_image_file_is_refused_with_a_clear_message(referral, client,
                                                                           path):
    client.login(REFERRER, PASSWORD)
    started = time.monotonic()
    answer = upload(client, referral.id, [(path.name, path.read_bytes())])
    assert time.monotonic() - started < 5
    assert answer.status_code == 422
    [refused] = answer.get_json()["rejected"]
    assert refused["file"] == path.name
    assert refused["reason"] and "Traceback" not in refused["reason"]


def test_prefetch_warms_the_middle_slice_when_a_page_goes_out(referral, client, pilgrim):
    link_sample(referral)
    run_sweep()  # the first page goes out
    frames.wait_for_prefetch(60)
    ids = sops(referral.id)
    from flask import current_app

    cache = caches(current_app._get_current_object())
    middle = frames.frame_spec(SAMPLE_STUDY, ids[len(ids) // 2], preset="brain", fmt="jpeg")
    assert cache.get_frame(middle.key)[0] is not None
    client.login(SPECIALIST, PASSWORD)
    first = client.get(frame_url(referral.id, ids[len(ids) // 2], format="jpeg"))
    assert first.status_code == 200 and first.headers["X-Image-Cache"] in ("memory", "disk")


def test_key_images_go_into_the_decision_record(referral, client):
    from models import DecisionRecord
    from tests.paging.helpers import user
    from workflow.audit import records
    from workflow.referrals import actions as referrals

    link_sample(referral)
    referrals.acknowledge(referral.id, user(SPECIALIST))
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    review = client.get(f"/referrals/{referral.id}/review")
    assert review.status_code == 200 and b"viewer-canvas" in review.data
    flagged = client.post(f"/referrals/{referral.id}/key-images", json={
        "study_uid": SAMPLE_STUDY, "series_uid": "", "sop_uid": ids[10], "preset": "stroke"})
    assert flagged.status_code == 200 and flagged.get_json()["flagged"] is True
    referrals.decide(referral.id, user(SPECIALIST), {
        "outcome": "advice_only", "advice": "Repeat CT in 24 h", "rationale": "Small bleed",
        **SIGNED})
    record = db.session.scalar(select(DecisionRecord))
    [item] = record.content["key_images"]
    assert item["sop_uid"] == ids[10] and item["preset"] == "stroke" and "data_uri" not in item
    assert records.render_pending() == 1
