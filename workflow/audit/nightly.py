"""The nightly integrity check: only what changed since the last verified anchor.

The full walk (`integrity.verify_all`) hashes every event of every referral: minutes
at a million referrals. Most of them have not changed for months, and their chain
heads are in every anchor since, signed outside the database. So each night, against
the anchor the last clean run verified (the baseline) and every anchor written since:

- every referral's current head is compared with its head in those anchors: a
  referral deleted, an event removed, or a chain rewritten and resealed (every hash
  recomputed) shows as a head that is gone or differs, and is named;
- the referrals whose head moved since the baseline, or that are new, are walked in
  full (chain, derived columns, records), as are those with a gap in their seqs;
- on PostgreSQL, every row of the evidence and of the columns copied from it that was
  written after the baseline run looked (its xmin is younger than that run's
  snapshot) puts its referral in the walk: an edit in place that left the hashes
  alone is a new row version, whatever the referral's head says;
- the access log is walked from the row the baseline anchored, and that row and each
  later anchored row must still have the anchored hash;
- the latest anchor's root is rebuilt from the database's heads.

docs/ARCHITECTURE.md ("Incremental verification") says what this proves and what
only the full walk (`flask audit verify --full`) does. Without PostgreSQL, an anchors
file, or a clean earlier run against an anchor that is still in the file, the night
walks in full.
"""

from __future__ import annotations

from sqlalchemy import and_, func, literal_column, select, text

from extensions import db
from integrations import anchor_log
from models import (
    AccessLog,
    AuditFact,
    Decision,
    DecisionRecord,
    IntegrityRun,
    Referral,
    ReferralEvent,
)
from workflow import access_log
from workflow.audit import anchors, derived, records
from workflow.audit import clocks as audit_clocks
from workflow.audit.integrity import REFERRAL_READ, IntegrityReport, check_referrals, verify_all
from workflow.times import now as utcnow

WALK_CHUNK = 500
# The tables whose rows say what a referral's evidence is: a row version written
# since the baseline puts its referral in the walk.
WATCHED = ((ReferralEvent.__table__, "referral_id"), (Referral.__table__, "id"),
           (Decision.__table__, "referral_id"), (DecisionRecord.__table__, "referral_id"),
           (AuditFact.__table__, "referral_id"))


def _snapshot_xmin() -> int | None:
    """The oldest transaction still running as this run's snapshot was taken (64-bit):
    every change this run cannot see was made by it or a later one."""
    if db.engine.dialect.name != "postgresql":
        return None
    return db.session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
                                  "::bigint"))


def _baseline() -> IntegrityRun | None:
    return db.session.scalar(
        select(IntegrityRun).where(IntegrityRun.finished_at.is_not(None),
                                   IntegrityRun.problems == 0, IntegrityRun.anchor_root != "",
                                   IntegrityRun.xid.is_not(None))
        .order_by(IntegrityRun.id.desc()).limit(1))


def _keep(started, full: bool, entry: dict | None, xid: int | None,
          report: IntegrityReport) -> None:
    head = (entry or {}).get("tree_head") or {}
    db.session.rollback()
    db.session.add(IntegrityRun(
        started_at=started, finished_at=utcnow(), full=full, anchor_root=head.get("root", ""),
        anchor_at=head.get("at", ""), xid=xid, referrals_checked=report.referrals_checked,
        events_checked=report.events_checked, problems=len(report.problems),
        first_problem=(report.problems[0] if report.problems else "")[:500]))
    db.session.commit()


def run(full: bool = False) -> IntegrityReport:
    """The nightly check (and `flask audit verify`): since the baseline when there is
    one, else (or with ``full``) the full walk. Keeps what it checked as an
    IntegrityRun, the next night's baseline when it found nothing. ``report.full``
    says which it was. Raises only what the database raises."""
    started, xid = utcnow(), _snapshot_xmin()
    _, log_file = anchors.configured()
    baseline = None if full or xid is None or not log_file else _baseline()
    report, vanished = None, None
    if baseline is not None:
        try:
            entries = anchor_log.read_all(log_file)
        except anchor_log.AnchorLogError:
            entries = []  # the full walk names it
        found = [i for i, e in enumerate(entries)
                 if e.get("tree_head", {}).get("root") == baseline.anchor_root
                 and e["tree_head"].get("at") == baseline.anchor_at]
        if found:
            report = verify_since(entries[found[-1]:], baseline.xid)
            latest = entries[-1]
        else:
            vanished = (f"anchors: the anchor of {baseline.anchor_at} (root "
                        f"{baseline.anchor_root}) that the check of {baseline.started_at} "
                        "verified is no longer in the anchors file")
    if report is None:
        try:
            latest = anchor_log.read_last(log_file) if log_file else None
        except anchor_log.AnchorLogError:
            latest = None
        report = verify_all()
        if vanished:
            report.problems.insert(0, vanished)
    _keep(started, report.full, latest, xid, report)
    return report


def _heads() -> dict[int, tuple[int, str, int]]:
    """Every referral with events: id -> (last seq, its hash, how many events)."""
    last = (select(ReferralEvent.referral_id, func.max(ReferralEvent.seq).label("seq"),
                   func.count().label("n"))
            .group_by(ReferralEvent.referral_id).subquery())
    rows = db.session.execute(
        select(ReferralEvent.referral_id, ReferralEvent.seq, ReferralEvent.hash, last.c.n)
        .join(last, and_(last.c.referral_id == ReferralEvent.referral_id,
                         last.c.seq == ReferralEvent.seq)))
    return {r.referral_id: (r.seq, r.hash, r.n) for r in rows}


def _written_since(xid: int) -> set[int]:
    """Referrals with a row in WATCHED written by transaction ``xid`` or later. xmin is
    32 bits: compared modulo 2^32 within the window up to now, so a frozen or a very
    old row can only be walked needlessly, never missed."""
    window = db.session.scalar(text(
        "SELECT (pg_current_xact_id()::text::bigint - :xid) % 4294967296"), {"xid": xid})
    touched: set[int] = set()
    for table, column in WATCHED:
        age = literal_column(f"((xmin::text::bigint - {int(xid)}) % 4294967296 "
                             "+ 4294967296) % 4294967296")
        touched.update(db.session.scalars(
            select(table.c[column]).where(age <= window).distinct()))
    return touched


def _compare(entry: dict, now: dict[int, tuple[int, str, int]], existing: set[int],
             moved: set[int], problems: list[str], named: set[int]) -> list[tuple]:
    """Compare one anchor's heads with the database's: name what is gone or differs;
    return (referral, seq, anchored prefix) of the heads that moved since, whose hash
    must be read."""
    when = entry["tree_head"]["at"]
    to_read = []
    for rid, seq, prefix in entry.get("heads", []):
        if rid in named:
            continue
        current = now.get(rid)
        if rid not in existing:
            named.add(rid)
            problems.append(f"referral {rid}: anchored at {when} (head seq {seq}) but is "
                            "now missing")
        elif current is None or current[0] < seq:
            named.add(rid)
            problems.append(f"referral {rid}: event seq {seq}, its head anchored at {when}, "
                            "is missing")  # the walk or the referral check says more
        elif current[0] == seq:
            if current[1][:anchors.PREFIX] != prefix:
                named.add(rid)
                problems.append(f"referral {rid}: event seq {seq} differs from the head "
                                f"anchored at {when}: its chain was rewritten")
        else:
            moved.add(rid)
            to_read.append((rid, seq, prefix))
    return to_read


def verify_since(entries: list[dict], xid: int) -> IntegrityReport:
    """Check the database against ``entries`` (the baseline's anchor first, then every
    later one) and walk what changed since (the module's docstring). Raises only what
    the database raises; an anchor that no longer matches is a problem, not an error."""
    report = IntegrityReport(full=False)
    problems = report.problems
    try:
        expected_key = anchors.configured_public_key()
    except anchor_log.AnchorLogError as error:
        problems.append(f"anchors: {error}")
        expected_key = None
    for entry in entries:
        if problem := anchors.signature_problem(entry, expected_key):
            problems.append(problem)
    now = _heads()
    existing = set(db.session.scalars(select(Referral.id)))
    baseline = entries[0]
    anchored = {rid: seq for rid, seq, _ in baseline.get("heads", [])}
    moved: set[int] = set()
    named: set[int] = set()
    wanted: dict[tuple[int, int], tuple[str, str]] = {}  # (rid, seq) -> (prefix, when)
    for entry in entries:
        for rid, seq, prefix in _compare(entry, now, existing, moved, problems, named):
            wanted.setdefault((rid, seq), (prefix, entry["tree_head"]["at"]))
    hashes = anchors.event_hashes(sorted(wanted))
    for (rid, seq), (prefix, when) in wanted.items():
        if rid not in named and (hashes.get((rid, seq)) or "")[:anchors.PREFIX] != prefix:
            named.add(rid)
            problems.append(f"referral {rid}: event seq {seq} differs from the head anchored "
                            f"at {when}: its chain was rewritten")
    # Walk: moved or new since the baseline, a gap in the seqs, written since, or a
    # referral without events or events without a referral.
    walk = moved | {rid for rid in now if rid not in anchored}
    walk |= {rid for rid, (seq, _, count) in now.items() if count != seq}
    walk |= _written_since(xid) | (existing - now.keys()) | (now.keys() - existing)
    _walk(sorted(walk - named), report)
    _check_access_log(entries, report)
    # The dashboard's facts: those of the walked referrals; a deleted facts row leaves
    # no row version, so the counts are compared too (the full comparison names it).
    problems.extend(audit_clocks.verify_facts(sorted(walk - named))[1])
    facts = db.session.scalar(select(func.count()).select_from(AuditFact))
    if facts != len(existing):
        problems.append(f"audit facts: {facts} rows for {len(existing)} referrals: a row "
                        "was deleted or added (`flask audit verify --full` names it)")
    # The records noted since: covered by their root's head list, which was just
    # compared with the database (the full walk recomputes each audit path).
    problems.extend(anchors.check_noted_roots(entries, since=baseline["tree_head"]["at"],
                                              paths=False))
    if not named:
        problems.extend(_latest_root(entries[-1], now, hashes))
    return report


def _walk(ids: list[int], report: IntegrityReport) -> None:
    codes = derived.hospital_codes()
    for start in range(0, len(ids), WALK_CHUNK):
        chunk = ids[start:start + WALK_CHUNK]
        rows = db.session.execute(select(*REFERRAL_READ).where(Referral.id.in_(chunk))
                                  .order_by(Referral.id)).all()
        for missing in sorted(set(chunk) - {r.id for r in rows}):
            has_events = db.session.scalar(select(func.count()).where(
                ReferralEvent.referral_id == missing))
            report.problems.append(f"events exist for referral {missing}, which is missing"
                                   if has_events else f"referral {missing} is missing")
        check_referrals(rows, report, codes, ids=[r.id for r in rows])
        report.problems.extend(records.verify_records([r.id for r in rows])[1])


def _check_access_log(entries: list[dict], report: IntegrityReport) -> None:
    """Each anchored access-log head still has its anchored hash; the rows after the
    baseline's head follow it."""
    start = None
    for entry in entries:
        seq, prefix = entry["access_log"]
        stored = access_log.GENESIS if seq == 0 else db.session.scalar(
            select(AccessLog.hash).where(AccessLog.seq == seq))
        when = entry["tree_head"]["at"]
        if stored is None:
            report.problems.append(f"access log: row seq {seq}, its head anchored at {when}, "
                                   "is missing (deleted)")
            return
        if stored[:anchors.PREFIX] != prefix:
            report.problems.append(f"access log: row seq {seq} differs from the head "
                                   f"anchored at {when}: its chain was rewritten")
            return
        start = start or (seq, stored)
    report.problems.extend(access_log.verify(after=start)[1])


def _latest_root(entry: dict, now: dict, hashes: dict) -> list[str]:
    """The latest anchor's root, rebuilt from the database's heads at its seqs."""
    leaves = []
    for rid, seq, _ in entry.get("heads", []):
        digest = now[rid][1] if now[rid][0] == seq else hashes[(rid, seq)]
        leaves.append(anchors.referral_leaf(rid, seq, digest))
    log_seq, _ = entry["access_log"]
    log_hash = access_log.GENESIS if log_seq == 0 else db.session.scalar(
        select(AccessLog.hash).where(AccessLog.seq == log_seq))
    if log_hash is None:
        return []  # named by the access-log check
    leaves.append(anchors.access_log_leaf(log_seq, log_hash))
    root = anchors.merkle_root([anchors.leaf_hash(leaf.encode()) for leaf in leaves])
    if root.hex() != entry["tree_head"]["root"]:
        return [f"anchor at {entry['tree_head']['at']}: the database's heads no longer give "
                "its signed root (the line's head list or the chains were altered)"]
    return []
