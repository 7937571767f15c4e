"""The evidence anchored outside the database: the access log's chain, signed Merkle
roots in an append-only file, what `flask audit verify` finds against them, and an
inclusion proof checked by tools/verify_proof.py alone."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from extensions import db
from models import AccessLog, ReferralEvent
from tests.paging.helpers import raise_stroke, user
from tests.records.test_audit_verify import run_sql
from tests.tampering import as_owner
from workflow import access_log
from workflow.audit import anchors
from workflow.audit.integrity import verify_all
from workflow.referrals import actions as referrals
from workflow.referrals.chain import GENESIS, seal, verify_referral

ROOT = Path(__file__).resolve().parents[2]
SPECIALIST = "stroke.night@qmc.demo.nhs.uk"
pytestmark = pytest.mark.clock()


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def app_config(tmp_path, signing_key) -> dict:
    key_file = tmp_path / "anchor-key.pem"
    key_file.write_bytes(signing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return {"ANCHOR_KEY_FILE": str(key_file), "ANCHOR_LOG": str(tmp_path / "anchors.jsonl")}


def anchor(app) -> dict:
    return anchors.anchor(app.config["ANCHOR_KEY_FILE"], app.config["ANCHOR_LOG"])


def referral_with_three_events() -> int:
    referral = raise_stroke()
    referrals.acknowledge(referral.id, user(SPECIALIST))
    referrals.post_message(referral.id, user(SPECIALIST), {"text": "Looking now."})
    return referral.id


def log_rows(count: int) -> list[int]:
    return [access_log.record("referral.view", "ok", email=f"viewer{n}@test.nhs.uk",
                              address="10.0.0.1", detail=f"view {n}").id
            for n in range(count)]


def problems() -> list[str]:
    db.session.expire_all()
    return verify_all().problems


def test_access_log_rows_are_chained_in_order(network):
    log_rows(3)
    rows = db.session.scalars(select(AccessLog).order_by(AccessLog.seq)).all()
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == access_log.GENESIS
    assert [row.prev_hash for row in rows[1:]] == [row.hash for row in rows[:-1]]
    assert problems() == []


def test_it_names_an_edited_access_log_row(network):
    _, second, _ = log_rows(3)
    run_sql("UPDATE access_log SET detail = 'nothing' WHERE id = :id", id=second)
    seq = db.session.get(AccessLog, second).seq
    assert problems() == [f"access log: row {second} (seq {seq}): its content was changed "
                          "after it was written"]


def test_it_names_a_deleted_access_log_row(network):
    _, second, third = log_rows(3)
    seq = db.session.get(AccessLog, second).seq
    run_sql("DELETE FROM access_log WHERE id = :id", id=second)
    assert problems() == [f"access log: row {third} (seq {seq + 1}): expected seq {seq}: "
                          f"rows {seq}..{seq} were deleted"]


def test_a_deleted_last_access_log_row_is_caught_by_the_anchor(app, network):
    last = log_rows(2)[-1]
    seq = db.session.get(AccessLog, last).seq
    anchor(app)
    run_sql("DELETE FROM access_log WHERE id = :id", id=last)
    assert problems() == [f"access log: row seq {seq}, its head anchored at "
                          "2026-11-29T03:00:00.000000Z, is missing (deleted)"]


def test_an_anchor_of_an_intact_database_verifies(app, network, runner):
    referral_with_three_events()
    entry = anchor(app)
    assert entry["tree_head"]["referrals"] == 1
    assert entry["tree_head"]["tree_size"] == 2
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_it_names_a_referral_deleted_with_all_its_rows_after_anchoring(app, network):
    kept, deleted = referral_with_three_events(), referral_with_three_events()
    anchor(app)
    raw = db.engine.raw_connection()  # the tamperer removes every trace, keys off
    try:
        cursor = raw.cursor()
        if db.engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA foreign_keys=OFF")
        else:
            cursor.execute("SET session_replication_role = replica")
        for table in ("referral_events", "pages", "decisions", "decision_records",
                      "referrals"):
            column = "id" if table == "referrals" else "referral_id"
            cursor.execute(f"DELETE FROM {table} WHERE {column} = {deleted}")  # noqa: S608
        raw.commit()
    finally:
        raw.invalidate()
    found = problems()
    assert (f"referral {deleted}: anchored at 2026-11-29T03:00:00.000000Z (head seq 3) but "
            "is now missing") in found
    assert not any(f"referral {kept}" in problem for problem in found)


def test_it_names_a_referral_whose_chain_was_resealed_after_an_edit(app, network, runner):
    referral_id = referral_with_three_events()
    anchor(app)
    events = db.session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.seq)).all()
    with as_owner():
        events[1].reason = "a better story"
        prev = GENESIS
        for event in events:  # recompute every hash: the chain alone now looks intact
            seal(event, prev)
            prev = event.hash
    assert verify_referral(referral_id) is None
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert (f"referral {referral_id}: event seq 3 differs from the head anchored at "
            "2026-11-29T03:00:00.000000Z: its chain was rewritten") in result.output


def test_an_altered_anchor_line_is_named(app, network):
    referral_with_three_events()
    anchor(app)
    path = Path(app.config["ANCHOR_LOG"])
    entry = json.loads(path.read_text())
    entry["tree_head"]["referrals"] = 7
    path.write_text(json.dumps(entry) + "\n")
    assert problems() == ["anchor at 2026-11-29T03:00:00.000000Z: its signature does not "
                          "verify (the line was altered)"]


def verify_proof(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "verify_proof.py"),
                           str(path), *extra], capture_output=True, text=True, timeout=60,
                          cwd=path.parent)


def test_an_inclusion_proof_checks_alone_and_fails_once_altered(app, network, runner,
                                                                 tmp_path, signing_key):
    ids = [referral_with_three_events() for _ in range(5)]
    anchor(app)
    result = runner.invoke(args=["audit", "proof", str(ids[2])])
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    assert proof["leaf"].startswith(f"{ids[2]}:3:")
    good = tmp_path / "proof.json"
    good.write_text(result.output)
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    checked = verify_proof(good, "--public-key", public)
    assert checked.returncode == 0 and checked.stdout.startswith("ok"), checked.stdout

    alterations = {
        "leaf": lambda p: p.update(leaf=p["leaf"].replace(":3:", ":2:")),
        "path": lambda p: p["path"].__setitem__(0, "00" * 32),
        "root": lambda p: p["tree_head"].update(root="11" * 32),
        "index": lambda p: p.update(leaf_index=p["leaf_index"] + 1),
    }
    for name, alter in alterations.items():
        altered = json.loads(result.output)
        alter(altered)
        bad = tmp_path / f"proof-{name}.json"
        bad.write_text(json.dumps(altered))
        checked = verify_proof(bad)
        assert checked.returncode == 1 and "FAILED" in checked.stdout, (name, checked.stdout)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    assert verify_proof(good, "--public-key", other).returncode == 1


def test_every_leaf_has_a_proof_that_leads_to_the_root():
    for size in range(1, 12):
        leaves = [anchors.leaf_hash(f"{n}:1:x".encode()) for n in range(size)]
        root = anchors.merkle_root(leaves)
        sys.path.insert(0, str(ROOT / "tools"))
        try:
            import verify_proof
        finally:
            sys.path.pop(0)
        for index in range(size):
            path = anchors.inclusion_path(index, leaves)
            assert verify_proof.root_from_path(f"{index}:1:x".encode(), index, size,
                                               path) == root


def test_no_key_material_is_in_the_database(app, network, signing_key):
    referral_with_three_events()
    anchor(app)
    raw = signing_key.private_bytes(serialization.Encoding.Raw,
                                    serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    pem = Path(app.config["ANCHOR_KEY_FILE"]).read_text()
    body = "".join(pem.strip().splitlines()[1:-1])
    secrets = {raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(),
               base64.urlsafe_b64encode(raw).decode().rstrip("="), body, repr(raw)[2:-1]}
    dump = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(text(f'SELECT * FROM "{table.name}"')):  # noqa: S608
            dump.append(" ".join(str(value) for value in row))
    dump_text = "\n".join(dump)
    assert len(dump) > 50  # the demo network, a referral and its log really were read
    assert not [secret for secret in secrets if secret in dump_text]


def test_the_scheduler_anchors_hourly_when_a_key_is_configured(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    from workflow.scheduler import _add_job

    scheduler = BackgroundScheduler()
    _add_job(scheduler, app)
    assert scheduler.get_job("anchor").trigger.interval.total_seconds() == 3600
    app.config["ANCHOR_KEY_FILE"] = ""
    without = BackgroundScheduler()
    _add_job(without, app)
    assert without.get_job("anchor") is None


def test_a_key_file_that_is_not_there_stops_the_start_up(tmp_path):
    from config import ConfigError, load_config

    missing = tmp_path / "no-such-key.pem"
    with pytest.raises(ConfigError, match="GOLDENHOUR_ANCHOR_KEY_FILE names .*no-such-key"):
        load_config({"GOLDENHOUR_ANCHOR_KEY_FILE": str(missing)}, instance_path=tmp_path)


def test_anchor_without_a_key_configured_says_what_to_set(app, runner):
    app.config["ANCHOR_KEY_FILE"] = ""
    result = runner.invoke(args=["audit", "anchor"])
    assert result.exit_code != 0
    assert "set GOLDENHOUR_ANCHOR_KEY_FILE and GOLDENHOUR_ANCHOR_LOG" in result.output


def test_a_raw_32_byte_key_file_signs_too(app, network, tmp_path, runner):
    raw_key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "raw.key"
    key_file.write_bytes(raw_key.private_bytes(serialization.Encoding.Raw,
                                               serialization.PrivateFormat.Raw,
                                               serialization.NoEncryption()))
    app.config["ANCHOR_KEY_FILE"] = str(key_file)
    result = runner.invoke(args=["audit", "anchor"])
    assert result.exit_code == 0, result.output
    assert "at 2026-11-29T03:00:00.000000Z: root" in result.output
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
