"""A study linked from the real PACS (Orthanc) carries the time the door-in-door-out
chart reads."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from extensions import db
from models import LinkedStudy
from tests.images.conftest import (  # noqa: F401  (fixtures)
    PATIENT_ID,
    pacs,
    pilgrim,
    referral,
    uk_today,
)
from tests.paging.helpers import REFERRER, user
from workflow.audit import dido
from workflow.imaging import studies
from workflow.times import LONDON

pytestmark = pytest.mark.orthanc


def test_a_study_linked_from_the_pacs_is_kept_with_its_time_taken(referral):  # noqa: F811
    """Today's study in the test PACS was taken at 03:15 UK time (tests/images)."""
    today = next(s for s in studies.search(patient_ids=[PATIENT_ID]).studies if s.today)
    studies.link(referral.id, user(REFERRER), "PIL", [today.summary.study_uid])
    db.session.expire_all()
    study = db.session.scalar(select(LinkedStudy).where(
        LinkedStudy.study_uid == today.summary.study_uid))
    assert (study.study_date, study.snapshot["study_time"]) == (uk_today(), "031500")
    taken = datetime.strptime(uk_today() + "031500", "%Y%m%d%H%M%S").replace(tzinfo=LONDON)
    assert study.taken_at == taken == dido.study_time(uk_today(), "031500")
