"""Flagged key images go back to the hospital's PACS as a DICOM Key Object Selection
document (the real Orthanc), from the scheduler, after the decision is committed."""

from __future__ import annotations

import io
from datetime import timedelta

import pydicom
import pytest
import requests
from sqlalchemy import select

from extensions import db
from models import DecisionRecord, KeyObjectDocument, LinkedStudy, Referral
from tests.images.conftest import PATIENT_ID, SAMPLE_STUDY, point_pilgrim_at
from tests.images.test_search_link_render import PASSWORD, SPECIALIST, link_sample, sops
from tests.paging.helpers import user
from tests.workflow.helpers import SIGNED
from workflow.imaging import frames, key_objects
from workflow.referrals import actions as referrals
from workflow.times import now as utcnow

pytestmark = pytest.mark.orthanc


def kos_in_orthanc(orthanc, sop_uid: str) -> pydicom.Dataset | None:
    hits = requests.post(f"{orthanc.rest_url}/tools/lookup", data=sop_uid, auth=orthanc.auth,
                         timeout=10).json()
    if not hits:
        return None
    data = requests.get(f"{orthanc.rest_url}/instances/{hits[0]['ID']}/file",
                        auth=orthanc.auth, timeout=10).content
    return pydicom.dcmread(io.BytesIO(data))


def flag_and_decide(client, referral, picks):
    link_sample(referral)
    referrals.acknowledge(referral.id, user(SPECIALIST))
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    for index in picks:
        answer = client.post(f"/referrals/{referral.id}/key-images", json={
            "study_uid": SAMPLE_STUDY, "sop_uid": ids[index], "preset": "brain"})
        assert answer.get_json()["flagged"] is True
    referrals.decide(referral.id, user(SPECIALIST), {
        "outcome": "advice_only", "advice": "Repeat CT in 24 h", "rationale": "Small bleed",
        **SIGNED})
    return [ids[i] for i in picks]


def test_a_flagged_key_image_is_stored_in_the_pacs_as_a_key_object(referral, client, pilgrim):
    flagged = flag_and_decide(client, referral, [10, 14])
    [document] = db.session.scalars(select(KeyObjectDocument)).all()
    assert document.status == "pending"  # nothing was sent inside the decision
    assert kos_in_orthanc(pilgrim, document.sop_uid) is None
    record = db.session.scalar(select(DecisionRecord))
    assert record.content["key_objects"] == [{"study_uid": SAMPLE_STUDY,
                                              "sop_uid": document.sop_uid, "hospital": "PIL",
                                              "images": 2}]

    assert key_objects.send_pending() == 1
    db.session.expire_all()
    assert db.session.get(KeyObjectDocument, document.id).status == "stored"
    kos = kos_in_orthanc(pilgrim, document.sop_uid)
    assert kos is not None
    assert kos.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.59" and kos.Modality == "KO"
    assert kos.StudyInstanceUID == SAMPLE_STUDY and kos.PatientID == PATIENT_ID
    images = [item.ReferencedSOPSequence[0] for item in kos.ContentSequence
              if item.ValueType == "IMAGE"]
    assert [i.ReferencedSOPInstanceUID for i in images] == flagged
    assert {i.ReferencedSOPClassUID for i in images} == {"1.2.840.10008.5.1.4.1.1.2"}
    evidence = kos.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == SAMPLE_STUDY
    assert sorted(r.ReferencedSOPInstanceUID
                  for r in evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence) \
        == sorted(flagged)
    # The PACS's own study listing shows it (QIDO-RS), as the hospital's viewer would.
    found = requests.get(f"{pilgrim.base_url}/studies/{SAMPLE_STUDY}/instances",
                         params={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.59"},
                         auth=pilgrim.auth, timeout=10).json()
    assert [f["00080018"]["Value"][0] for f in found] == [document.sop_uid]
    assert key_objects.send_pending() == 0  # stored once
    # Linked again, the study now holds the KO series; the viewer lists only pictures.
    link_sample(referral)
    db.session.expire_all()
    snapshot = db.session.scalar(select(LinkedStudy)).snapshot
    assert sorted(s["modality"] for s in snapshot["series"]) == ["CT", "KO"]
    [listed] = frames.listing(db.session.get(Referral, referral.id))
    assert [s["modality"] for s in listed["series"]] == ["CT"]
    requests.delete(f"{pilgrim.rest_url}/instances/"
                    f"{requests.post(f'{pilgrim.rest_url}/tools/lookup', data=document.sop_uid, auth=pilgrim.auth, timeout=10).json()[0]['ID']}",  # noqa: E501
                    auth=pilgrim.auth, timeout=10)


@pytest.mark.clock("2026-11-29T03:00:05+00:00")
def test_a_pacs_that_is_down_is_tried_again_later(referral, client, pilgrim, pacs_proxy, clock):
    flag_and_decide(client, referral, [5])
    [document] = db.session.scalars(select(KeyObjectDocument)).all()
    frames.wait_for_prefetch()  # the link's warm-up asks the PACS too
    point_pilgrim_at(pacs_proxy.base_url)
    pacs_proxy.fail_status = 503
    assert key_objects.send_pending() == 0
    db.session.expire_all()
    failed = db.session.get(KeyObjectDocument, document.id)
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert "503" in failed.error and failed.next_try_at > utcnow()
    asked = pacs_proxy.hits
    assert key_objects.send_pending() == 0  # not due yet: the PACS is not asked again
    assert pacs_proxy.hits == asked
    pacs_proxy.fail_status = None
    clock.move_to(utcnow() + timedelta(minutes=1), tick=False)
    assert key_objects.send_pending() == 1
    assert kos_in_orthanc(pilgrim, document.sop_uid) is not None
    hit = requests.post(f"{pilgrim.rest_url}/tools/lookup", data=document.sop_uid,
                        auth=pilgrim.auth, timeout=10).json()[0]
    requests.delete(f"{pilgrim.rest_url}/instances/{hit['ID']}", auth=pilgrim.auth, timeout=10)
