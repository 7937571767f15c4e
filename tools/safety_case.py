"""The DCB0129 safety case: the hazard log (docs/safety/hazards.toml), the tests its
controls name, their live results, and the PDF report `make safety-report` renders.

A control is *controlled* only when it names tests and every one of them was collected
and passed; a test that failed, errored, was skipped or does not exist leaves it
*uncontrolled*. A hazard claims its residual risk only when all its controls are
controlled; otherwise it keeps its initial risk (docs/safety/PLAN.md, "Acceptance").
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HAZARD_LOG = ROOT / "docs" / "safety" / "hazards.toml"

SEVERITIES = ("minor", "significant", "considerable", "major", "catastrophic")
LIKELIHOODS = ("very_low", "low", "medium", "high", "very_high")
# DCB0129 risk matrix: MATRIX[likelihood][severity] -> rating 1..5.
MATRIX = {
    "very_high": (3, 4, 4, 5, 5),
    "high": (2, 3, 3, 4, 5),
    "medium": (2, 2, 3, 3, 4),
    "low": (1, 2, 2, 3, 4),
    "very_low": (1, 1, 2, 2, 3),
}
RATINGS = {
    1: "Acceptable",
    2: "Acceptable where documented consideration shows further reduction is not practical",
    3: "Undesirable: accepted only where further risk reduction is impractical",
    4: "Unacceptable",
    5: "Unacceptable",
}
HAZARD_FIELDS = ("id", "name", "cause", "effect", "severity", "likelihood",
                 "initial_risk", "residual_severity", "residual_likelihood",
                 "residual_risk", "control")
PASSED = "passed"


class HazardLogError(ValueError):
    """The hazard log is malformed; the message names the hazard and the field."""


def risk(severity: str, likelihood: str) -> int:
    """The matrix rating; raises HazardLogError for a word not in the matrix."""
    if severity not in SEVERITIES:
        raise HazardLogError(f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})")
    if likelihood not in LIKELIHOODS:
        raise HazardLogError(
            f"unknown likelihood {likelihood!r} (one of {', '.join(LIKELIHOODS)})")
    return MATRIX[likelihood][SEVERITIES.index(severity)]


@dataclass(frozen=True)
class Control:
    description: str
    tests: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Hazard:
    id: str
    name: str
    cause: str
    effect: str
    severity: str
    likelihood: str
    initial_risk: int
    residual_severity: str
    residual_likelihood: str
    residual_risk: int
    controls: tuple[Control, ...]


def _hazard(raw: dict, n: int) -> Hazard:
    where = f"hazard {raw.get('id') or n}"
    missing = [f for f in HAZARD_FIELDS if f not in raw or raw[f] in ("", [], None)]
    if missing:
        raise HazardLogError(f"{where}: missing {', '.join(missing)}")
    controls = []
    for i, c in enumerate(raw["control"], start=1):
        tests = c.get("tests")
        if not c.get("description") or not isinstance(tests, list) \
                or not all(isinstance(t, str) and "::" in t for t in tests):
            raise HazardLogError(f"{where}, control {i}: needs a description and tests "
                                 "as a list of pytest node ids (path::name)")
        if not tests and not c.get("note"):
            raise HazardLogError(f"{where}, control {i}: no tests, so a note must say why")
        controls.append(Control(c["description"], tuple(tests), c.get("note", "")))
    try:
        for prefix in ("", "residual_"):
            said = raw[f"{prefix or 'initial_'}risk"]
            rated = risk(raw[f"{prefix}severity"], raw[f"{prefix}likelihood"])
            if said != rated:
                raise HazardLogError(f"{prefix or 'initial_'}risk is {said} but the "
                                     f"matrix gives {rated}")
    except HazardLogError as exc:
        raise HazardLogError(f"{where}: {exc}") from None
    return Hazard(**{f: raw[f] for f in HAZARD_FIELDS if f != "control"},
                  controls=tuple(controls))


def load(path: Path = HAZARD_LOG) -> list[Hazard]:
    """The hazards of a log file. Raises HazardLogError (bad TOML, missing field, a
    risk that disagrees with the matrix, a duplicate id)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise HazardLogError(f"{path.name}: {exc}") from None
    hazards = [_hazard(raw, n) for n, raw in enumerate(data.get("hazard", []), start=1)]
    ids = [h.id for h in hazards]
    if len(set(ids)) != len(ids):
        raise HazardLogError(f"{path.name}: a hazard id is used twice")
    return hazards


def test_ids(hazards: list[Hazard]) -> list[str]:
    """Every pytest node id the controls name, once, sorted."""
    return sorted({t for h in hazards for c in h.controls for t in c.tests})


def _pytest(args: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=root, capture_output=True, text=True, check=False)


def _covers(wanted: str, node: str) -> bool:
    # A parametrised test is named without its brackets: it stands for all its cases.
    return node == wanted or node.startswith(wanted + "[")


def collected(ids: list[str], root: Path = ROOT) -> dict[str, list[str]]:
    """For each wanted id, the node ids pytest collects for it ([] when none)."""
    files = sorted({i.split("::")[0] for i in ids if (root / i.split("::")[0]).is_file()})
    nodes: list[str] = []
    if files:
        out = _pytest(["--collect-only", "-q", *files], root).stdout
        nodes = [line.strip() for line in out.splitlines() if "::" in line]
    return {i: [n for n in nodes if _covers(i, n)] for i in ids}


def junit_outcomes(xml_path: Path) -> dict[str, str]:
    """Node id -> passed | failed | error | skipped, from pytest's xunit1 JUnit XML."""
    outcomes: dict[str, str] = {}
    worst = {PASSED: 0, "skipped": 1, "failed": 2, "error": 3}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        path = case.get("file", "")
        module = path.removesuffix(".py").replace("/", ".")
        inner = case.get("classname", "").removeprefix(module).strip(".")
        node = "::".join(p for p in (path, *inner.split("."), case.get("name", "")) if p)
        outcome = PASSED
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed"}.get(child.tag, child.tag)
                outcome = max(outcome, kind, key=worst.get)
        outcomes[node] = max(outcomes.get(node, PASSED), outcome, key=worst.get)
    return outcomes


def run(ids: list[str], work_dir: Path, root: Path = ROOT) -> dict[str, str]:
    """Run exactly the tests ``ids`` name; return id -> passed | failed | error |
    skipped | missing (worst case of a parametrised test)."""
    found = collected(ids, root)
    results = {i: "missing" for i, nodes in found.items() if not nodes}
    present = [i for i, nodes in found.items() if nodes]
    if not present:
        return results
    xml_path = work_dir / "safety-tests.xml"
    _pytest(["-q", "-o", "junit_family=xunit1", f"--junitxml={xml_path}", *present], root)
    outcomes = junit_outcomes(xml_path) if xml_path.is_file() else {}
    worst = ("error", "failed", "skipped", PASSED)
    for i in present:
        seen = {o for n, o in outcomes.items() if _covers(i, n)}
        results[i] = next((w for w in worst if w in seen), "missing")
    return results


@dataclass
class ControlResult:
    control: Control
    results: dict[str, str]

    @property
    def controlled(self) -> bool:
        return bool(self.results) and all(r == PASSED for r in self.results.values())

    @property
    def why(self) -> str:
        if not self.control.tests:
            return "no test proves it"
        bad = [f"{t.split('::')[-1]}: {r}" for t, r in self.results.items() if r != PASSED]
        return "; ".join(bad)


@dataclass
class HazardResult:
    hazard: Hazard
    controls: list[ControlResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        done = sum(c.controlled for c in self.controls)
        if done == len(self.controls):
            return "controlled"
        return "partly controlled" if done else "uncontrolled"

    @property
    def current_risk(self) -> int:
        h = self.hazard
        return h.residual_risk if self.status == "controlled" else h.initial_risk


def assess(hazards: list[Hazard], results: dict[str, str]) -> list[HazardResult]:
    """Each hazard with each control's live test results (missing when not run)."""
    return [HazardResult(h, [ControlResult(c, {t: results.get(t, "missing") for t in c.tests})
                             for c in h.controls]) for h in hazards]


def commit(root: Path = ROOT) -> str:
    """The checked-out commit, '+ changes' when the tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                          capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root,
                           capture_output=True, text=True, check=False).stdout.strip()
    return (head or "unknown") + (" + uncommitted changes" if dirty else "")


def render_html(assessed: list[HazardResult], at: datetime, revision: str) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(ROOT / "tools"),
                      autoescape=select_autoescape(["html"]))
    return env.get_template("safety_case.html").render(
        hazards=assessed, at=at, revision=revision, severities=SEVERITIES,
        likelihoods=tuple(reversed(LIKELIHOODS)), matrix=MATRIX, ratings=RATINGS,
        controlled=sum(h.status == "controlled" for h in assessed))


def render_pdf(assessed: list[HazardResult], at: datetime, revision: str) -> bytes:
    """The safety case report as PDF bytes. Raises integrations.pdf.PdfError."""
    from integrations.pdf import render_pdf as weasyprint_pdf

    pdf, _refused = weasyprint_pdf(render_html(assessed, at, revision), ROOT / "static")
    return pdf
