"""The hazard log and the safety case report: all twelve hazards with every field, every
test a control names exists, and a control is controlled only when its tests pass."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from tools import safety_case

ROOT = Path(__file__).resolve().parents[2]
HAZARDS = {
    "Missed page", "Rota gap", "Wrong patient's images", "Wrong referral acknowledged",
    "Stale decision shown", "Wrong destination", "Clock error across the UK clock changes",
    "PACS returns another patient's study", "Duplicate referral",
    "Decision made on incomplete imaging (a study still arriving)", "Record altered",
    "Images unavailable",
}

TINY_TESTS = '''
import pytest

def test_good():
    assert 1 + 1 == 2

def test_bad():
    assert 1 + 1 == 3

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_all_cases_pass(n):
    assert n > 0

@pytest.mark.parametrize("n", [1, -1])
def test_one_case_fails(n):
    assert n > 0
'''

TINY_LOG = '''
[[hazard]]
id = "T{n}"
name = "{name}"
cause = "a cause"
effect = "an effect"
severity = "major"
likelihood = "medium"
initial_risk = 3
residual_severity = "major"
residual_likelihood = "very_low"
residual_risk = 2
{controls}
'''


def control(*tests: str, note: str = "") -> str:
    listed = ", ".join(f'"test_tiny.py::{t}"' for t in tests)
    return (f'  [[hazard.control]]\n  description = "proved by {", ".join(tests) or "nothing"}"'
            f'\n  tests = [{listed}]\n' + (f'  note = "{note}"\n' if note else ""))


def tiny_log(tmp_path: Path, hazards: dict[str, list[str]]) -> Path:
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS, encoding="utf-8")
    text = "".join(TINY_LOG.format(n=n, name=name, controls="".join(controls))
                   for n, (name, controls) in enumerate(hazards.items(), start=1))
    path = tmp_path / "hazards.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_hazard_log_has_all_twelve_hazards_with_every_field():
    hazards = safety_case.load()
    assert {h.name for h in hazards} == HAZARDS
    for h in hazards:
        for name in ("cause", "effect", "severity", "likelihood", "residual_severity",
                     "residual_likelihood"):
            assert getattr(h, name).strip(), (h.id, name)
        assert h.initial_risk == safety_case.risk(h.severity, h.likelihood), h.id
        assert h.residual_risk <= h.initial_risk, h.id
        assert h.controls, h.id
        for c in h.controls:
            assert c.tests or c.note, (h.id, c.description)


def test_every_test_the_log_names_is_collected_by_pytest():
    ids = safety_case.test_ids(safety_case.load())
    assert len(ids) > 40
    found = safety_case.collected(ids, ROOT)
    assert [i for i, nodes in found.items() if not nodes] == []


@pytest.mark.parametrize("change, words", [
    (("initial_risk = 3", "initial_risk = 1"), "T1: initial_risk is 1 but the matrix gives 3"),
    (('cause = "a cause"', 'cause = ""'), "T1: missing cause"),
    (('severity = "major"', 'severity = "grave"'), "unknown severity 'grave'"),
    (('tests = ["test_tiny.py::test_good"]', "tests = []"), "control 1: no tests, so a note"),
    (('tests = ["test_tiny.py::test_good"]', 'tests = ["test_good"]'), "pytest node ids"),
])
def test_a_malformed_log_is_refused_naming_the_hazard_and_field(tmp_path, change, words):
    path = tiny_log(tmp_path, {"Tiny": [control("test_good")]})
    path.write_text(path.read_text().replace(*change, 1), encoding="utf-8")
    with pytest.raises(safety_case.HazardLogError, match=re.escape(words)):
        safety_case.load(path)


@pytest.fixture
def assessed(tmp_path):
    path = tiny_log(tmp_path, {
        "All passing": [control("test_good"), control("test_all_cases_pass")],
        "One failing": [control("test_good"), control("test_bad")],
        "Nothing proves it": [control("test_no_such_test"), control(note="tests to come"),
                              control("test_skipped"), control("test_one_case_fails")],
    })
    hazards = safety_case.load(path)
    results = safety_case.run(safety_case.test_ids(hazards), tmp_path, root=tmp_path)
    return results, safety_case.assess(hazards, results)


def test_passed_is_controlled_and_failed_missing_or_skipped_is_not(assessed):
    results, (passing, failing, unproved) = assessed
    assert results == {
        "test_tiny.py::test_good": "passed", "test_tiny.py::test_all_cases_pass": "passed",
        "test_tiny.py::test_bad": "failed", "test_tiny.py::test_no_such_test": "missing",
        "test_tiny.py::test_skipped": "skipped", "test_tiny.py::test_one_case_fails": "failed",
    }
    assert [c.controlled for c in passing.controls] == [True, True]
    assert (passing.status, passing.current_risk) == ("controlled", 2)
    assert [c.controlled for c in failing.controls] == [True, False]
    assert (failing.status, failing.current_risk) == ("partly controlled", 3)
    assert not any(c.controlled for c in unproved.controls)
    assert (unproved.status, unproved.current_risk) == ("uncontrolled", 3)
    assert [c.why for c in unproved.controls] == [
        "test_no_such_test: missing", "no test proves it", "test_skipped: skipped",
        "test_one_case_fails: failed"]


def test_the_pdf_names_each_hazard_and_each_controls_live_status(assessed):
    _, hazards = assessed
    pdf = safety_case.render_pdf(hazards, datetime(2026, 12, 2, 21, 0, tzinfo=UTC), "abc123")
    text = " ".join(" ".join(page.extract_text().split())
                    for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "clinical safety case report" in text and "2026-12-02 21:00 UTC" in text
    assert "commit abc123" in text and "1 of 3 hazards controlled" in text
    for name, status in (("All passing", "controlled"), ("One failing", "partly controlled"),
                         ("Nothing proves it", "uncontrolled")):
        assert f"{name} — {status}" in text, name
    assert "test_tiny.py::test_bad: failed" in text
    assert "test_tiny.py::test_no_such_test: missing" in text
    assert "no test proves it" in text and "tests to come" in text


def test_the_plans_matrix_is_the_one_the_report_applies():
    plan = (ROOT / "docs" / "safety" / "PLAN.md").read_text(encoding="utf-8")
    rows = {}
    for line in plan.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key = cells[0].lower().replace(" ", "_").strip("*")
        if key in safety_case.LIKELIHOODS and len(cells) == 6:
            rows[key] = tuple(int(c) for c in cells[1:])
    assert rows == safety_case.MATRIX
