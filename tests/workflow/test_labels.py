"""One table of human labels: it covers every stored value a reader can meet, and the
decision record uses it (no internal names in the PDF)."""

from __future__ import annotations

import io
import types

import pytest
from pypdf import PdfReader

from extensions import db
from integrations.pager.base import DeliveryStatus
from tests.paging.helpers import raise_stroke, run_sweep, user
from tests.workflow.helpers import SIGNED
from workflow.audit import records
from workflow.paging.escalation import CHANNELS
from workflow.referrals import actions as referrals
from workflow.referrals import input as referral_input
from workflow.referrals import labels
from workflow.referrals.clinical import FIELDS
from workflow.referrals.states import MOVES, Outcome, State

SPECIALIST = "stroke.night@qmc.demo.nhs.uk"


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.mark.parametrize(("table", "values"), [
    (labels.STATES, list(State)),
    (labels.OUTCOMES, list(Outcome)),
    (labels.EVENTS, sorted({m.event for m in MOVES} | {"raise"})),
    (labels.CHANNELS, list(CHANNELS)),
    (labels.ONSET_CERTAINTY, list(referral_input.ONSET_CERTAINTY)),
    (labels.ONSET_CERTAINTY_SHORT, list(referral_input.ONSET_CERTAINTY)),
    (labels.TRANSFER_URGENCY, list(referral_input.TRANSFER_URGENCY)),
    (labels.SEXES, list(referral_input.SEXES)),
    (labels.DELIVERY_STATUS, list(DeliveryStatus)),
], ids=["states", "outcomes", "events", "channels", "certainty", "certainty-short",
        "transfer-urgency", "sexes", "delivery-status"])
def test_the_table_names_every_value_of_every_enum(table, values):
    missing = [v for v in values if v not in table]
    assert missing == []
    assert all("_" not in table[v] for v in values)


def test_every_clinical_field_is_named_as_the_form_names_it():
    for specialty, fields in FIELDS.items():
        for f in fields:
            assert labels.field(f.key) == f.label or any(
                other.key == f.key and labels.field(f.key) == other.label
                for others in FIELDS.values() for other in others), (specialty, f.key)
            assert "_" not in labels.field(f.key)
    assert labels.field("nihss") == "NIHSS"
    assert labels.field("pre_stroke_mrs") == "Pre-stroke mRS"


def test_a_voice_call_is_placed_when_delivered_and_answered_only_when_answered():
    assert labels.delivery_status("voice", "delivered") == "Call placed"
    assert labels.delivery_status("voice", "sent") == "Call placed"
    assert labels.delivery_status("voice", "in-progress") == "Answered"
    assert labels.delivery_status("sms", "delivered") == "Delivered"
    assert labels.channel("in_app") == "In app"
    assert labels.event("escalation_exhausted") == "Nobody answered"


def test_the_onset_clock_says_last_known_well_once():
    assert labels.since_onset("during_sleep") == "Since last known well"
    assert labels.certainty_short("during_sleep") == "during sleep"
    assert labels.since_onset("precise") == "Since onset"


def _record_pdf(content: dict, record) -> str:
    stand_in = types.SimpleNamespace(id=record.id, content=content,
                                     content_sha256=record.content_sha256,
                                     referral_id=record.referral_id)
    return pdf_text(records.render_record(stand_in))


def test_the_decision_record_shows_no_internal_names(network):
    referral = raise_stroke(onset_certainty="during_sleep",
                            onset_at=referral_input_now_minus(90))
    run_sweep()  # SMS, voice and in-app pages go out before anyone accepts
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.perform("decide", referral.id, user(SPECIALIST), {
        "outcome": "treat_locally", "rationale": "No occlusion.",
        "advice": "Aspirin 300 mg.", **SIGNED})
    record = records.latest(referral.id)
    content = dict(record.content)
    assert {p["channel"] for p in content["pages"]} >= {"sms", "voice"}
    content["pages"] = [*content["pages"], {**content["pages"][0], "channel": "in_app",
                                            "status": "delivered"}]
    # A record written before the fields had labels shows them labelled all the same,
    # and a timeline that ran out of people names it for a reader.
    old = {k: v for k, v in content.items() if k != "clinical_rows"}
    old["timeline"] = [*content["timeline"], {
        "seq": 99, "at": content["timeline"][-1]["at"], "kind": "escalation_exhausted",
        "by": "system", "from": "awaiting_specialist", "to": "unanswered", "hash": "0"}]
    for words in (_record_pdf(content, record), _record_pdf(old, record)):
        flat = " ".join(words.split())
        for internal in ("nihss", "pre stroke mrs", "pre_stroke_mrs", "False", "True",
                         "escalation exhausted", "escalation_exhausted", "in_app",
                         "treat_locally", "treat locally", "awaiting_specialist",
                         "(last known well))", "_"):
            assert internal not in flat, internal
        assert "NIHSS 14" in flat and "Pre-stroke mRS 1" in flat
        assert "Thrombolysis given? No" in flat
        assert "TREAT LOCALLY" in flat
        assert "In app to" in flat and "Voice call to" in flat
        assert "Call placed" in flat or "Call ended" in flat
        assert "Since last known well at decision" in flat
        assert "(during sleep)" in flat
    assert "Nobody answered by system (Paging specialist → Unanswered)" in " ".join(
        _record_pdf(old, record).split())
    db.session.rollback()


def referral_input_now_minus(minutes: int) -> str:
    from datetime import timedelta

    from workflow.times import now

    return (now() - timedelta(minutes=minutes)).replace(microsecond=0).isoformat()
