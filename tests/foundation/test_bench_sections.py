"""`make bench` rewrites each bench's marked section of docs/BENCHMARKS.md and keeps
everything else (bench/sections.py, bench/run_benchmarks.py), on a tiny sample."""

from __future__ import annotations

import pytest

from bench.run_benchmarks import update
from bench.sections import replace_sections, section

DOC = """# Benchmarks

Hand-written notes stay.

<!-- bench:load -->
| kind | p95 ms |
|---|---|
| old | 900 |
<!-- /bench:load -->

## Audit

Notes on the audit bench.
"""


def test_a_printed_section_replaces_the_old_one_and_nothing_else():
    output = "progress line\n" + section("load", "| kind | p95 ms |\n|---|---|\n| new | 120 |")
    text, names = replace_sections(DOC, output + "\nmore progress\n")
    assert names == ["load"]
    assert "| new | 120 |" in text and "| old | 900 |" not in text
    assert text.startswith("# Benchmarks\n\nHand-written notes stay.\n\n<!-- bench:load -->")
    assert text.endswith("## Audit\n\nNotes on the audit bench.\n")
    again, _ = replace_sections(text, output)
    assert again == text  # rewriting the same figures changes nothing


def test_a_new_section_is_appended_and_a_section_with_a_backslash_is_kept_as_is():
    body = r"| path | C:\bench\1 |"
    text, names = replace_sections(DOC, section("rota", body))
    assert names == ["rota"] and text.startswith(DOC.rstrip("\n"))
    assert text.endswith(f"<!-- bench:rota -->\n{body}\n<!-- /bench:rota -->\n")


def test_a_bench_printing_no_section_gets_one_with_machine_date_and_command(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(DOC)
    command = ".venv/bin/python bench/bench_rota.py"
    assert update(doc, "bench_rota.py", command, "365 days: 12 ms\n", "2026-12-02") == \
        ["run:bench_rota.py"]
    first = doc.read_text()
    assert "Measured 2026-12-02 on " in first and f"Reproduce: `{command}`" in first
    assert "```text\n365 days: 12 ms\n```" in first
    update(doc, "bench_rota.py", command, "365 days: 10 ms\n", "2026-12-03")
    second = doc.read_text()
    assert second.count("<!-- bench:run:bench_rota.py -->") == 1
    assert "365 days: 10 ms" in second and "12 ms" not in second
    assert "| old | 900 |" in second  # another bench's section is untouched


def test_a_section_name_must_be_plain():
    with pytest.raises(ValueError, match="bench section name"):
        section("load -->", "x")
