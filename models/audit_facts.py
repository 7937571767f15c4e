"""One narrow row per referral for the audit dashboard, kept by PostgreSQL itself.

A trigger on `referrals` (AFTER INSERT OR UPDATE, so every writer is covered: the
workflow's conditional UPDATEs, the sweep, the access log, bulk loads) rewrites the
referral's row in the same transaction. ``clocks`` packs what the dashboard reads per
referral, so a year is one index range and one ``string_agg`` (measured: packing the
same values per query cost more than the whole dashboard's budget). Layout, big-endian,
72 bytes (``workflow.audit.clocks.CLOCKS``):

    8 x int8  microseconds since 2000-01-01 UTC (PostgreSQL's own timestamp encoding;
              NULL as -infinity = INT64_MIN): created, first page, acknowledged, first
              image viewed, decided, departed, arrival of a transfer, onset of a stroke
              with a precise or estimated onset
    int4      referring hospital id
    int4      flags: 1 transfer, 2 unanswered, 4 escalated

On SQLite the table exists (one schema for both) but stays empty: the dashboard reads
`referrals` there. `workflow.audit.clocks.mismatched_facts` proves the rows equal what
they are derived from.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, ForeignKey, Index, LargeBinary, String, event
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.types import UTCDateTime

# The same statements are in the migration that created the table (a snapshot).
KEEP_FACTS = ("""
CREATE FUNCTION audit_clocks(r referrals) RETURNS bytea LANGUAGE sql STABLE AS $$
  SELECT timestamp_send(coalesce(r.created_at, '-infinity'))
      || timestamp_send(coalesce(r.first_paged_at, '-infinity'))
      || timestamp_send(coalesce(r.acknowledged_at, '-infinity'))
      || timestamp_send(coalesce(r.first_image_viewed_at, '-infinity'))
      || timestamp_send(coalesce(r.decided_at, '-infinity'))
      || timestamp_send(coalesce(r.departed_at, '-infinity'))
      || timestamp_send(coalesce(CASE WHEN r.outcome = 'transfer' THEN r.arrived_at END,
                                 '-infinity'))
      || timestamp_send(coalesce(CASE WHEN r.onset_certainty IN ('precise', 'estimated')
                                       AND r.specialty_id = (SELECT id FROM specialties
                                                             WHERE code = 'stroke')
                                      THEN r.onset_at END, '-infinity'))
      || int4send(r.referring_hospital_id)
      || int4send(CASE WHEN r.outcome = 'transfer' THEN 1 ELSE 0 END
                  + CASE WHEN r.unanswered_at IS NOT NULL THEN 2 ELSE 0 END
                  + CASE WHEN r.escalated THEN 4 ELSE 0 END)
$$""", """
CREATE FUNCTION keep_audit_facts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_facts (referral_id, raised_at, specialty_id, referring_hospital_id,
                           hub_service_id, outcome, state, clocks)
  VALUES (NEW.id, NEW.created_at, NEW.specialty_id, NEW.referring_hospital_id,
          NEW.hub_service_id, NEW.outcome, NEW.state, audit_clocks(NEW))
  ON CONFLICT (referral_id) DO UPDATE SET
    raised_at = EXCLUDED.raised_at, specialty_id = EXCLUDED.specialty_id,
    referring_hospital_id = EXCLUDED.referring_hospital_id,
    hub_service_id = EXCLUDED.hub_service_id, outcome = EXCLUDED.outcome,
    state = EXCLUDED.state, clocks = EXCLUDED.clocks;
  RETURN NULL;
END $$""", """
CREATE TRIGGER referrals_keep_audit_facts AFTER INSERT OR UPDATE ON referrals
  FOR EACH ROW EXECUTE FUNCTION keep_audit_facts()""")
DROP_FACTS_KEEPER = (
    "DROP TRIGGER IF EXISTS referrals_keep_audit_facts ON referrals",
    "DROP FUNCTION IF EXISTS keep_audit_facts()",
    "DROP FUNCTION IF EXISTS audit_clocks(referrals)",
)


class AuditFact(db.Model):
    """A referral as the audit dashboard counts it (PostgreSQL only, trigger-kept)."""

    __tablename__ = "audit_facts"
    __table_args__ = (Index("ix_audit_facts_raised_at", "raised_at"),)

    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    specialty_id: Mapped[int]
    referring_hospital_id: Mapped[int]
    hub_service_id: Mapped[int]
    outcome: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(32))
    clocks: Mapped[bytes] = mapped_column(LargeBinary)


for _statement in KEEP_FACTS:
    event.listen(AuditFact.__table__, "after_create",
                 DDL(_statement).execute_if(dialect="postgresql"))
for _statement in DROP_FACTS_KEEPER:
    event.listen(AuditFact.__table__, "before_drop",
                 DDL(_statement).execute_if(dialect="postgresql"))
