"""docs/STATES.md is generated from the transition table and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from views.cli.docs import states_markdown
from workflow.referrals import states

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "STATES.md"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flask_docs_states_writes_the_diagram_and_every_move(runner, tmp_path):
    out = tmp_path / "STATES.md"
    result = runner.invoke(args=["docs", "states", "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text == states_markdown()
    assert "stateDiagram-v2" in text
    for m in states.MOVES:
        assert f"| {m.source} | {m.event} |" in text
    assert text.count("\n| ") == len(states.MOVES) + 1  # the header and one row per move


def test_the_committed_states_document_is_what_the_command_generates():
    assert COMMITTED.read_text(encoding="utf-8") == states_markdown(), \
        "docs/STATES.md is stale: run `flask docs states` and commit it"
