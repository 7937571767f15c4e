"""One clinical field schema: the form, the parser, the record and the OpenAPI document
all read workflow.referrals.clinical, so a bound changed there changes all four."""

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from workflow.referrals import clinical
from workflow.referrals.checks import Errors

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


class Controls(HTMLParser):
    """name -> attributes of every input on a page."""

    def __init__(self, html: str):
        super().__init__()
        self.found: dict[str, dict] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        if tag == "input" and "name" in named:
            self.found[named["name"]] = named


NUMBERS = [(code, f) for code, fields in clinical.FIELDS.items() for f in fields
           if f.kind == "number"]


@pytest.mark.parametrize(("code", "field"), NUMBERS, ids=[f"{c}.{f.key}" for c, f in NUMBERS])
def test_each_number_is_parsed_within_its_bounds(code, field):
    for value, ok in ((field.low, True), (field.high, True), (field.high + 1, False)):
        errors = Errors()
        parsed = clinical.parse(code, {field.key: value}, errors, NOW)
        assert (f"clinical.{field.key}" not in errors) is ok, (value, errors)
        assert parsed[field.key] == (value if ok else None)


def test_the_form_and_the_openapi_document_carry_the_same_bounds(network, client):
    client.login("referrer@pil.demo.nhs.uk", "goldenhour-demo")
    controls = Controls(client.get("/referrals/new").get_data(as_text=True)).found
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    for code, field in NUMBERS:
        control = controls[f"{code}.{field.key}"]
        assert (control["min"], control["max"]) == (str(field.low), str(field.high))
        prop = schemas[f"Clinical_{code}"]["properties"][field.key]
        assert (prop["minimum"], prop["maximum"]) == (field.low, field.high)


def test_a_conditional_field_is_needed_only_when_its_condition_holds():
    errors = Errors()
    clinical.parse("stroke", {"anticoagulant": "apixaban", "thrombolysis_given": False},
                   errors, NOW)
    assert errors["clinical.anticoagulant_last_dose_at"] == \
        "Enter the time of the last anticoagulant dose."
    assert "clinical.thrombolysis_at" not in errors
    errors = Errors()
    clinical.parse("stroke", {"anticoagulant": "none", "thrombolysis_given": "yes"}, errors, NOW)
    assert "clinical.anticoagulant_last_dose_at" not in errors
    assert errors["clinical.thrombolysis_at"] == "Enter the thrombolysis time."


def test_rows_show_labels_and_readable_values_in_form_order():
    stored = {"imaging": ["CT", "CTA"], "nihss": 14, "thrombolysis_given": False,
              "anticoagulant": "none", "thrombolysis_at": None}
    assert clinical.rows("stroke", stored, str) == [
        ("NIHSS", "14"), ("Anticoagulant", "none"), ("Thrombolysis given?", "No"),
        ("Imaging done", "CT, CTA")]
