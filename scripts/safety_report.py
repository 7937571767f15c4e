"""`make safety-report`: run the tests the hazard log names and render the safety case
report with their live results (default var/safety-case.pdf).

Exit status 0 when the report was written (uncontrolled hazards are in the report and
on stdout); 1 when the hazard log is malformed or the PDF cannot be rendered; with
--strict, also 1 when any hazard is not fully controlled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import safety_case  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=Path, default=safety_case.HAZARD_LOG)
    parser.add_argument("--out", type=Path, default=safety_case.ROOT / "var" / "safety-case.pdf")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 unless every hazard is controlled")
    args = parser.parse_args(argv)
    try:
        hazards = safety_case.load(args.hazards)
    except (OSError, safety_case.HazardLogError) as exc:
        print(f"safety-report: {exc}", file=sys.stderr)
        return 1
    ids = safety_case.test_ids(hazards)
    print(f"safety-report: running {len(ids)} tests named by {len(hazards)} hazards")
    with tempfile.TemporaryDirectory() as work:
        results = safety_case.run(ids, Path(work))
    assessed = safety_case.assess(hazards, results)
    from integrations.pdf import PdfError

    try:
        pdf = safety_case.render_pdf(assessed, datetime.now(UTC), safety_case.commit())
    except PdfError as exc:
        print(f"safety-report: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(pdf)
    for r in assessed:
        print(f"  {r.hazard.id} {r.hazard.name}: {r.status} (risk {r.current_risk})")
        for c in r.controls:
            if not c.controlled:
                print(f"      uncontrolled: {c.control.description} ({c.why})")
    controlled = sum(r.status == "controlled" for r in assessed)
    print(f"safety-report: {controlled} of {len(assessed)} hazards controlled; "
          f"wrote {args.out}")
    return 1 if args.strict and controlled < len(assessed) else 0


if __name__ == "__main__":
    sys.exit(main())
