"""`flask seed-demo` writes a few weeks of past referrals (through the workflow, as of
when they happened) so the audit dashboard has something to show; once only."""

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from extensions import db
from models import Page, Referral
from workflow.audit.integrity import verify_all
from workflow.demo_history import HISTORY
from workflow.paging.pages import PageStatus
from workflow.seed import DEMO_PASSWORD
from workflow.times import now


def _seed(runner, *args):
    db.session.commit()
    result = runner.invoke(args=["seed-demo", "--quiet", *args])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output


def test_the_demo_has_weeks_of_varied_past_referrals_written_once(runner):
    output = _seed(runner)
    assert f"{len(HISTORY)} past referrals added" in output
    referrals = db.session.scalars(select(Referral)).all()
    assert len(referrals) == len(HISTORY) >= 12
    assert len({r.referring_hospital.code for r in referrals}) >= 4
    assert len({r.specialty.code for r in referrals}) >= 3
    outcomes = Counter(r.outcome or r.state for r in referrals)
    assert {"transfer", "treat_locally", "advice_only", "not_accepted", "cancelled"} <= set(
        outcomes)
    created = sorted(r.created_at for r in referrals)
    assert created[-1] - created[0] >= timedelta(days=21) and created[-1] < now()
    assert len({c.hour for c in created}) >= 8  # nights and days
    answered = [r for r in referrals if r.acknowledged_at]
    assert len({(r.acknowledged_at - r.created_at) for r in answered}) >= 6
    assert all(r.state in ("closed", "cancelled") for r in referrals)
    # Nothing of last month is left to page anyone.
    assert db.session.scalar(select(func.count(Page.id)).where(
        Page.status == PageStatus.DUE)) == 0
    # Written through the workflow: every chain and record checks out.
    report = verify_all()
    assert report.ok, report.problems[:3]
    assert report.referrals_checked == len(HISTORY)

    assert "0 past referrals added" in _seed(runner)
    assert db.session.scalar(select(func.count(Referral.id))) == len(HISTORY)


def test_the_audit_dashboard_shows_the_past_referrals(app, runner):
    _seed(runner)
    client = app.test_client()
    client.login("audit@em.demo.nhs.uk", DEMO_PASSWORD)
    since = (now() - timedelta(days=40)).date().isoformat()
    page = client.get(f"/audit/?from={since}").get_data(as_text=True)
    first = db.session.scalar(select(Referral.reference).order_by(Referral.id))
    assert first in page
    assert "Not accepted" in page or "Transfer" in page


def test_no_history_leaves_the_network_alone(runner):
    _seed(runner, "--no-history")
    assert db.session.scalar(select(func.count(Referral.id))) == 0
