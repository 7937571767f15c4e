"""The DICOMweb client against a real Orthanc: search, fetch, store, and every way a PACS fails."""

from __future__ import annotations

import io
import time
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.uid import generate_uid

from integrations.imaging import inspect, render
from integrations.pacs import DicomWebClient, PacsError, _stream_parts

pytestmark = pytest.mark.orthanc

DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
SERIES = sorted((DATA / "series" / "ge_hispeed_head_ct").glob("*.dcm"))
HEAD_CT_PATIENT = "QMNx85rKkkg"
# Other tests on the same Orthanc add studies for this patient: pick the head CT by UID.
HEAD_CT_STUDY = pydicom.dcmread(SERIES[0], stop_before_pixels=True).StudyInstanceUID


def head_ct_study(pacs):
    """The head CT's study summary among the patient's studies."""
    [study] = [s for s in pacs.search_studies(patient_id=HEAD_CT_PATIENT)
               if s.study_uid == HEAD_CT_STUDY]
    return study


def client_for(server, **options) -> DicomWebClient:
    options.setdefault("auth", server.auth if hasattr(server, "auth") else None)
    return DicomWebClient(server.base_url, name="Pilgrim", **options)


def restudied(path: Path, *, patient_id: str, study_date: str, accession: str) -> bytes:
    """A copy of a sample slice as a new study of ``patient_id`` on ``study_date``."""
    ds = pydicom.dcmread(path)
    ds.PatientID, ds.StudyDate, ds.StudyTime = patient_id, study_date, "101500"
    ds.AccessionNumber = accession
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def head_ct(orthanc):
    """The 28-slice head CT, stored through our STOW-RS client once for this module."""
    orthanc.start()
    results = client_for(orthanc).store([(p.name, p.read_bytes()) for p in SERIES])
    return results


@pytest.fixture
def pacs(running_orthanc):
    return client_for(running_orthanc)


def test_it_stores_the_head_ct_series_by_stow_and_reports_each_file(head_ct):
    assert [r.label for r in head_ct] == [p.name for p in SERIES]
    assert all(r.stored for r in head_ct), [r.reason for r in head_ct if not r.stored]
    assert len({r.sop_uid for r in head_ct}) == 28


def test_it_finds_the_patients_studies_newest_first(pacs):
    patient = f"GH-{generate_uid()[-10:]}"
    dates = ["20190304", "20250601", "20240115"]
    files = [(d, restudied(SERIES[5], patient_id=patient, study_date=d, accession=f"ACC{d}"))
             for d in dates]
    assert all(r.stored for r in pacs.store(files))

    studies = pacs.search_studies(patient_id=patient)
    assert [s.study_date for s in studies] == [date(2025, 6, 1), date(2024, 1, 15),
                                               date(2019, 3, 4)]
    newest = studies[0]
    assert (newest.patient_id, newest.modalities, newest.accession_number) == (
        patient, ("CT",), "ACC20250601")
    assert (newest.series_count, newest.instance_count) == (1, 1)

    by_accession = pacs.search_studies(accession_number="ACC20240115")
    assert [s.study_date for s in by_accession] == [date(2024, 1, 15)]
    assert pacs.search_studies(patient_id="nobody-has-this-id") == []


def test_it_lists_the_series_and_instances_of_the_head_ct(pacs, head_ct):
    study = head_ct_study(pacs)
    assert (study.series_count, study.instance_count) == (1, 28)
    [series] = pacs.series(study.study_uid)
    assert (series.modality, series.instance_count) == ("CT", 28)
    instances = pacs.instances(study.study_uid, series.series_uid)
    assert len(instances) == 28
    assert [i.number for i in instances] == sorted(i.number for i in instances)
    assert {i.sop_uid for i in instances} == {r.sop_uid for r in head_ct}


def test_it_fetches_an_instance_and_renders_it(pacs, head_ct):
    study = head_ct_study(pacs)
    [series] = pacs.series(study.study_uid)
    middle = pacs.instances(study.study_uid, series.series_uid)[14]
    data = pacs.fetch_instance(study.study_uid, series.series_uid, middle.sop_uid)
    assert inspect(data).sop_uid == middle.sop_uid
    image = np.asarray(Image.open(io.BytesIO(render(data, preset="brain"))))
    assert image.shape == (512, 512) and len(np.unique(image)) > 50


def test_it_fetches_a_whole_series_in_one_request(pacs, head_ct, pacs_proxy, orthanc):
    study = head_ct_study(pacs)
    [series] = pacs.series(study.study_uid)
    via_proxy = client_for(pacs_proxy, auth=orthanc.auth)
    before = pacs_proxy.hits
    first, *rest = via_proxy.iter_series(study.study_uid, series.series_uid)
    assert pacs_proxy.hits == before + 1
    assert {inspect(f).sop_uid for f in [first, *rest]} == {r.sop_uid for r in head_ct}
    one = pacs.fetch_instance(study.study_uid, series.series_uid, inspect(first).sop_uid)
    assert one == first  # the same bytes as the instance fetched alone


def multipart_answer(parts: list[bytes], boundary: str = "b0undary") -> requests.Response:
    answer = requests.Response()
    answer.status_code = 200
    answer.headers["Content-Type"] = (f'multipart/related; type="application/dicom"; '
                                      f"boundary={boundary}")
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                    + part + b"\r\n" for part in parts)
    answer._content = body + f"--{boundary}--\r\n".encode()
    return answer


def chunked(data: bytes, size: int):
    return (data[at:at + size] for at in range(0, len(data), size))


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_a_streamed_multipart_answer_is_cut_into_its_parts_whatever_the_chunks(size):
    parts = [b"first\r\n--not the boundary", b"", b"\r\n" * 5 + b"third", bytes(range(256))]
    answer = multipart_answer(parts)
    fail = lambda message: PacsError(message, hospital="Pilgrim")  # noqa: E731
    assert list(_stream_parts(answer, fail, chunked(answer.content, size))) == parts


def test_a_series_answer_cut_short_is_an_error_not_fewer_files():
    answer = multipart_answer([b"one", b"two"])
    fail = lambda message: PacsError(message, hospital="Pilgrim")  # noqa: E731
    cut = answer.content[:answer.content.index(b"two") + 2]
    with pytest.raises(PacsError, match="ended before its last part"):
        list(_stream_parts(answer, fail, chunked(cut, 5)))


def test_it_reads_series_metadata_and_raw_frames(pacs, head_ct):
    study = head_ct_study(pacs)
    [series] = pacs.series(study.study_uid)
    metadata = pacs.series_metadata(study.study_uid, series.series_uid)
    # "SeriesMetadata": "MainDicomTags" makes Orthanc answer from its index: UIDs, no Rows.
    assert {m.SOPInstanceUID for m in metadata} == {r.sop_uid for r in head_ct}
    assert len(pacs.study_metadata(study.study_uid)) == 28
    [frame] = pacs.fetch_frames(study.study_uid, series.series_uid,
                                metadata[0].SOPInstanceUID, [1])
    assert len(frame) == 512 * 512 * 2


def test_a_file_the_pacs_rejects_is_reported_and_the_others_are_stored(pacs):
    good = restudied(SERIES[0], patient_id="GH-MIXED", study_date="20250101", accession="M1")
    results = pacs.store([
        ("good.dcm", good),
        ("no_uids.dcm", (DATA / "syntaxes" / "leadtools_jpeg_baseline_gray8.dcm").read_bytes()),
        ("not_dicom.dcm", (DATA / "malformed" / "not_dicom.dcm").read_bytes()),
    ])
    assert [(r.label, r.stored) for r in results] == [
        ("good.dcm", True), ("no_uids.dcm", False), ("not_dicom.dcm", False)]
    # Orthanc's STOW-RS answer lists neither file; its own REST API says why.
    assert all(r.reason.startswith("the PACS refused it: Bad file format")
               for r in results[1:]), [r.reason for r in results]
    assert pacs.search_studies(patient_id="GH-MIXED")[0].instance_count == 1


def test_a_wrong_password_is_reported_as_refused_credentials(running_orthanc):
    pacs = client_for(running_orthanc, auth=(running_orthanc.username, "wrong"))
    with pytest.raises(PacsError) as refused:
        pacs.search_studies(patient_id=HEAD_CT_PATIENT)
    assert refused.value.message == "Pilgrim PACS refused the credentials (401)"
    assert refused.value.permanent and refused.value.hospital == "Pilgrim"


def test_a_bearer_token_is_sent_instead_of_a_password(running_orthanc):
    # Orthanc only knows basic auth, so a token is refused: proof it replaced the password.
    with pytest.raises(PacsError, match=r"\(401\)"):
        client_for(running_orthanc, auth="some-token").ping()
    assert client_for(running_orthanc).ping() < 2


def test_a_stopped_pacs_is_reported_as_not_answering_within_the_timeout(orthanc):
    pacs = client_for(orthanc, timeout=2.0, retries=2, backoff=0.05)
    orthanc.stop()
    try:
        started = time.monotonic()
        with pytest.raises(PacsError) as down:
            pacs.search_studies(patient_id=HEAD_CT_PATIENT)
        assert time.monotonic() - started < 2.0
        assert down.value.message.startswith("Pilgrim PACS did not answer")
        assert not down.value.permanent
    finally:
        orthanc.start()
    assert pacs.search_studies(patient_id="nobody-has-this-id") == []


def test_a_pacs_slower_than_the_timeout_is_reported_within_the_timeout(pacs_proxy, orthanc):
    pacs_proxy.delay = 3.0
    pacs = client_for(pacs_proxy, auth=orthanc.auth, timeout=1.0, retries=2)
    started = time.monotonic()
    with pytest.raises(PacsError) as slow:
        pacs.search_studies(patient_id=HEAD_CT_PATIENT)
    assert time.monotonic() - started < 1.5
    assert slow.value.message == "Pilgrim PACS did not answer within 1 s"
    assert pacs_proxy.hits == 1, "a timeout is not retried"


def test_a_pacs_answering_500_is_retried_a_bounded_number_of_times(pacs_proxy, orthanc):
    pacs_proxy.fail_status = 500
    pacs = client_for(pacs_proxy, auth=orthanc.auth, retries=2, backoff=0.01)
    with pytest.raises(PacsError) as failing:
        pacs.search_studies(patient_id=HEAD_CT_PATIENT)
    assert failing.value.message == "Pilgrim PACS answered 500"
    assert (failing.value.status, failing.value.permanent) == (500, False)
    assert pacs_proxy.hits == 3


def test_a_401_is_not_retried(pacs_proxy, orthanc):
    pacs = client_for(pacs_proxy, auth=("someone", "else"), retries=2, backoff=0.01)
    with pytest.raises(PacsError, match=r"\(401\)"):
        pacs.series("1.2.3")
    assert pacs_proxy.hits == 1


def test_the_proxy_passes_requests_through_when_told_nothing(pacs_proxy, orthanc, head_ct):
    pacs = client_for(pacs_proxy, auth=orthanc.auth)
    assert head_ct_study(pacs).instance_count == 28
