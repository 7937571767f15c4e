"""A window of the clinician's own (negative centre, decimal width) everywhere a preset
works: one frame, a run of slices, a key image and the review page's viewer."""

from __future__ import annotations

import json
import re

import pytest
import requests
from sqlalchemy import select

from extensions import db
from integrations.imaging import render
from models import KeyImage, LinkedStudy
from tests.images.conftest import SAMPLE_STUDY
from tests.images.test_search_link_render import (
    PASSWORD,
    SPECIALIST,
    frame_url,
    link_sample,
    pixels,
    sops,
)

pytestmark = pytest.mark.orthanc
LUNG = "-670.805,2061.64"


def series_uid(referral_id):
    study = db.session.scalar(select(LinkedStudy).where(LinkedStudy.referral_id == referral_id))
    return study.snapshot["series"][0]["series_uid"]


def sample_file(pacs, sop_uid) -> bytes:
    """The instance as the PACS holds it (what our server renders from)."""
    hit = requests.post(f"{pacs.rest_url}/tools/lookup", data=sop_uid, auth=pacs.auth,
                        timeout=10).json()[0]
    return requests.get(f"{pacs.rest_url}/instances/{hit['ID']}/file", auth=pacs.auth,
                        timeout=10).content


def test_a_negative_center_window_renders_one_frame_and_a_run_of_slices(referral, client,
                                                                       pilgrim):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    answer = client.get(frame_url(referral.id, ids[14], preset="brain") + f"&window={LUNG}")
    assert answer.status_code == 200, answer.get_json()
    expected = render(sample_file(pilgrim, ids[14]), preset=LUNG, fmt="png")
    assert answer.data == expected
    lung_preset = client.get(frame_url(referral.id, ids[14], preset="lung"))
    assert (pixels(lung_preset.data) != pixels(answer.data)).any()
    run = client.get(f"/api/v1/referrals/{referral.id}/studies/{SAMPLE_STUDY}/series/"
                     f"{series_uid(referral.id)}/rendered?first=14&count=3&format=png"
                     f"&window=window={LUNG}")
    assert run.status_code == 200, run.get_json()
    sizes = [int(n) for n in run.headers["X-Frame-Sizes"].split(",")]
    assert run.data[sizes[0]:sizes[0] + sizes[1]] == expected  # slice 15 is ids[14]


@pytest.mark.parametrize("window, field, message", [
    ("-670.805", "window", "window must be two numbers 'center,width'"),
    ("-670.805,0", "window", "window width must be a number above 0"),
    ("_670.805,2061.64", "window", "window center must be a number"),
    ("liver", "preset", "unknown preset 'liver'"),
])
def test_a_bad_window_is_a_422_naming_what_is_wrong(referral, client, window, field, message):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    answer = client.get(frame_url(referral.id, ids[0]) + f"&window={window}")
    assert answer.status_code == 422
    assert message in json.dumps(answer.get_json()[""] if "" in answer.get_json()
                                 else answer.get_json())
    assert field in json.dumps(answer.get_json())


def test_a_key_image_flagged_in_a_custom_window_keeps_it(referral, client):
    link_sample(referral)
    ids = sops(referral.id)
    client.login(SPECIALIST, PASSWORD)
    answer = client.post(f"/referrals/{referral.id}/key-images",
                         json={"study_uid": SAMPLE_STUDY, "sop_uid": ids[3], "frame": 1,
                               "preset": LUNG})
    assert answer.status_code == 200, answer.get_json()
    key = db.session.scalar(select(KeyImage).where(KeyImage.referral_id == referral.id))
    assert key.preset == f"w{LUNG}"
    from workflow.imaging import key_images

    [shown] = key_images.rendered_for_record(referral.id, key_images.identities(referral.id))
    assert shown["note"] == "" and shown["data_uri"].startswith("data:image/png;base64,")


def test_the_review_page_opens_the_viewer_in_the_window_of_its_url(referral, client):
    link_sample(referral)
    client.login(SPECIALIST, PASSWORD)
    page = client.get(f"/referrals/{referral.id}/review?window={LUNG}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    data = json.loads(re.search(r'id="viewer-data">(.*?)</script>', text, re.S).group(1))
    assert data["window"] == LUNG
    assert data["preset_labels"][LUNG] == "Window -670.805/2061.64"
    assert f'<option value="{LUNG}">' in text
    bad = client.get(f"/referrals/{referral.id}/review?window=-670.805")
    assert bad.status_code == 422
    assert "window must be two numbers" in bad.get_data(as_text=True)

