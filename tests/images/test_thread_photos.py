"""Photos in the referral's thread (workflow/imaging/photos.py): checked by their bytes,
stored in the referring hospital's PACS (the real Orthanc) as Secondary Capture
instances with no EXIF or GPS, shown in the thread and the viewer; a refused photo
posts nothing."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from extensions import db
from models import LinkedStudy, ReferralEvent
from tests.images.conftest import point_pilgrim_at
from tests.images.test_search_link_render import PASSWORD, SPECIALIST
from tests.paging.helpers import REFERRER, user
from workflow.imaging import photos
from workflow.referrals import actions

pytestmark = pytest.mark.orthanc
CAMERA = "SecretPhone 12"  # EXIF Make: must not reach the PACS


def camera_jpeg(width=64, height=48, *, gps=True) -> bytes:
    """A phone-camera JPEG: left half red, right half blue, with EXIF make, model and
    a GPS position (the hospital car park)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (220, 20, 20)
    pixels[:, width // 2:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x010F] = CAMERA  # Make
    exif[0x0110] = "Model X"  # Model
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 58.0, 41.0), 3: "W", 4: (0.0, 1.0, 12.0)}
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def png(width, height) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (0, 120, 0)).save(out, "PNG")
    return out.getvalue()


def send(client, referral_id, data: bytes, filename="photo.jpg", text="ECG attached"):
    fields = MultiDict([("text", text),
                        ("photo", FileStorage(io.BytesIO(data), filename=filename))])
    boundary, body = encode_multipart(fields)
    return client.post(f"/referrals/{referral_id}/thread", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


@pytest.fixture
def photo_study(referral, pilgrim):
    """The referral's photo study UID; the study is deleted from Orthanc afterwards."""
    study_uid, _ = photos.photo_study_uids(referral)
    db.session.commit()  # SQLite: hold no transaction while a live server works
    yield study_uid
    for hit in requests.post(f"{pilgrim.rest_url}/tools/lookup", data=study_uid,
                             auth=pilgrim.auth, timeout=10).json():
        if hit["Type"] == "Study":
            requests.delete(f"{pilgrim.rest_url}/studies/{hit['ID']}", auth=pilgrim.auth,
                            timeout=10)


def orthanc_id(orthanc, sop_uid: str) -> str:
    [hit] = [h for h in requests.post(f"{orthanc.rest_url}/tools/lookup", data=sop_uid,
                                      auth=orthanc.auth, timeout=10).json()
             if h["Type"] == "Instance"]
    return hit["ID"]


def orthanc_instance(orthanc, sop_uid: str) -> bytes:
    answer = requests.get(f"{orthanc.rest_url}/instances/{orthanc_id(orthanc, sop_uid)}/file",
                          auth=orthanc.auth, timeout=10)
    answer.raise_for_status()
    return answer.content


def messages(referral_id: int) -> list[ReferralEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral_id, ReferralEvent.kind == "message")))


def test_a_photo_with_gps_reaches_orthanc_with_no_exif_and_shows_in_thread_and_viewer(
        referral, pilgrim, photo_study, client):
    original = camera_jpeg()
    assert CAMERA.encode() in original and b"Exif" in original  # what must be dropped
    actions.acknowledge(referral.id, user(SPECIALIST))
    client.login(SPECIALIST, PASSWORD)
    answer = send(client, referral.id, original)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    [message] = messages(referral.id)
    photo = message.data["photo"]
    assert message.reason == "ECG attached"
    assert photo["study_uid"] == photo_study and photo["hospital"] == "PIL"

    stored = orthanc_instance(pilgrim, photo["sop_uid"])
    for trace in (CAMERA.encode(), b"Model X", b"Exif", b"GPS"):
        assert trace not in stored
    ds = pydicom.dcmread(io.BytesIO(stored))
    # Compressed: JPEG Baseline, encapsulated, encoded afresh (no APP1 Exif segment).
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds["PixelData"].is_undefined_length and ds.PhotometricInterpretation == "YBR_FULL_422"
    assert ds.LossyImageCompression == "01"
    [frame] = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    assert frame.startswith(b"\xff\xd8") and b"\xff\xe1" not in frame.split(b"\xff\xda")[0]
    assert ds.SOPClassUID == photos.SECONDARY_CAPTURE
    assert ds.StudyInstanceUID == photo_study
    assert ds.PatientID == referral.nhs_number
    assert ds.OtherPatientIDs == referral.local_number
    assert str(ds.PatientName) == f"{referral.family_name.upper()}^{referral.given_name}"
    assert not [e for e in ds.iterall() if e.tag.group in (0x0009, 0x0011)]  # no private
    pixels = ds.pixel_array
    assert pixels.shape == (48, 64, 3)
    assert abs(int(pixels[10, 5, 0]) - 220) < 12 and abs(int(pixels[10, 60, 2]) - 220) < 12

    # Orthanc decodes and renders it itself.
    rendered = requests.get(f"{pilgrim.rest_url}/instances/{orthanc_id(pilgrim, photo['sop_uid'])}"
                            "/preview", auth=pilgrim.auth, timeout=10,
                            headers={"Accept": "image/png"})
    assert rendered.status_code == 200
    shown = np.asarray(Image.open(io.BytesIO(rendered.content)).convert("RGB"))
    assert shown.shape == (48, 64, 3)
    assert abs(int(shown[10, 5, 0]) - 220) < 12 and abs(int(shown[10, 60, 2]) - 220) < 12

    # In the thread, through the app's image route; in the viewer's listing.
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert f'data-photo-sop="{photo["sop_uid"]}"' in page
    src = page.split(f'data-photo-sop="{photo["sop_uid"]}"')[0].rsplit('src="', 1)[1]
    image = client.get(src.split('"', 1)[0].replace("&amp;", "&"))
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    viewed = np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"))
    assert abs(int(viewed[10, 5, 0]) - 220) < 16 and abs(int(viewed[10, 60, 2]) - 220) < 16
    listing = client.get(f"/api/v1/referrals/{referral.id}/studies").get_json()
    [study] = [s for s in listing["studies"] if s["study_uid"] == photo_study]
    assert [i["sop_uid"] for s in study["series"] for i in s["instances"]] == \
        [photo["sop_uid"]]

    # The API lists the message with its photo's UIDs and its receipts.
    [entry] = client.get(f"/api/v1/referrals/{referral.id}/messages").get_json()["messages"]
    assert entry["photo"]["sop_uid"] == photo["sop_uid"]
    assert entry["photo"]["study_uid"] == photo_study
    assert (entry["photo"]["rows"], entry["photo"]["columns"]) == (48, 64)
    assert user(REFERRER).name in {r["name"] for r in entry["receipts"]}

    # A second photo joins the same study.
    assert send(client, referral.id, png(30, 20), filename="wound.png").status_code == 302
    linked = db.session.scalar(select(LinkedStudy).where(
        LinkedStudy.referral_id == referral.id, LinkedStudy.study_uid == photo_study))
    assert linked.instance_count == 2 and linked.series_count == 1


@pytest.mark.parametrize(("data", "filename", "said"), [
    (b"GIF89a" + b"\0" * 64, "photo.jpg", "Only JPEG or PNG"),  # the name does not count
    (b"%PDF-1.7 not a photo", "photo.png", "Only JPEG or PNG"),
    (b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024), "big.jpg", "at most 10 MB"),
    (png(4097, 8), "wide.png", "4097×8 pixels; at most 4096×4096"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "broken.png", "could not be read as a PNG"),
])
def test_a_bad_photo_is_refused_on_its_field_and_nothing_is_stored(
        referral, pilgrim, photo_study, client, data, filename, said):
    client.login(REFERRER, PASSWORD)
    answer = send(client, referral.id, data, filename=filename)
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    error = page.split('id="e-msg-photo"', 1)[1].split("</p>", 1)[0]
    assert said in error
    assert messages(referral.id) == []
    assert requests.post(f"{pilgrim.rest_url}/tools/lookup", data=photo_study,
                         auth=pilgrim.auth, timeout=10).json() == []


def test_a_photo_the_pacs_refuses_posts_no_message_and_says_why(
        referral, pilgrim, photo_study, client):
    point_pilgrim_at(pilgrim.base_url, auth=("goldenhour", "wrong password"))
    client.login(REFERRER, PASSWORD)
    answer = send(client, referral.id, camera_jpeg())
    assert answer.status_code == 422
    error = answer.get_data(as_text=True).split('id="e-msg-photo"', 1)[1].split("</p>")[0]
    assert "PACS did not keep the photo" in error and "401" in error
    assert messages(referral.id) == []
    assert db.session.scalar(select(func.count(LinkedStudy.id)).where(
        LinkedStudy.study_uid == photo_study)) == 0


def test_a_message_without_a_photo_still_needs_its_text(referral, client):
    client.login(REFERRER, PASSWORD)
    answer = client.post(f"/referrals/{referral.id}/thread", data={"text": " "})
    assert answer.status_code == 422
    assert "Enter the message" in answer.get_data(as_text=True)


def test_a_phone_sized_photo_is_stored_a_fraction_of_its_uncompressed_size(
        referral, pilgrim, photo_study, client):
    """1600x1200 with texture and noise, as a camera sees paper: the DICOM file Orthanc
    keeps is under a tenth of the 5.8 MB its pixels take uncompressed."""
    rng = np.random.default_rng(17)
    y, x = np.mgrid[0:1200, 0:1600]
    paper = 230 - 40 * (x / 1600) - 60 * ((y % 40) < 2)
    pixels = np.clip(paper[..., None] + rng.normal(0, 2, (1200, 1600, 3)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=92)
    client.login(REFERRER, PASSWORD)
    assert send(client, referral.id, out.getvalue()).status_code == 302
    [message] = messages(referral.id)
    stored = orthanc_instance(pilgrim, message.data["photo"]["sop_uid"])
    assert len(stored) < 1600 * 1200 * 3 / 10, len(stored)
    assert pydicom.dcmread(io.BytesIO(stored)).pixel_array.shape == (1200, 1600, 3)
