"""A decision record's PDF is rendered with no transaction open, so a specialist's
acknowledge is never kept waiting by WeasyPrint (on SQLite every transaction takes the
write lock, and the busy timeout would turn a slow render into a 500 after 30 s)."""

import threading

from extensions import db
from tests.paging.helpers import raise_stroke, user
from tests.records.test_decision_record import SPECIALIST, decided
from workflow.audit import records
from workflow.referrals import actions as referrals

WAIT = 10  # seconds: far beyond a free write (milliseconds), far below the busy timeout


def test_an_acknowledge_while_a_record_is_rendering_goes_through(network, app, monkeypatch):
    decided()
    waiting = raise_stroke(question="Second patient").id
    db.session.commit()
    rendering, finish = threading.Event(), threading.Event()
    real_render_pdf = records.render_pdf

    def slow_render_pdf(*args, **kwargs):
        rendering.set()
        finish.wait(WAIT * 3)  # the render is "slow" until the acknowledge is through
        return real_render_pdf(*args, **kwargs)

    monkeypatch.setattr(records, "render_pdf", slow_render_pdf)
    stored = []

    def scheduler():
        with app.app_context():
            stored.append(records.render_pending())
            db.session.remove()

    renderer = threading.Thread(target=scheduler, name="record-renderer")
    renderer.start()
    try:
        assert rendering.wait(WAIT), "the renderer never reached WeasyPrint"
        acknowledged = []

        def specialist():
            with app.app_context():
                referrals.acknowledge(waiting, user(SPECIALIST))
                acknowledged.append(True)
                db.session.remove()

        acknowledging = threading.Thread(target=specialist, name="acknowledge")
        acknowledging.start()
        acknowledging.join(WAIT)
        assert acknowledged == [True], (
            f"the acknowledge waited more than {WAIT} s for the record being rendered")
    finally:
        finish.set()
        renderer.join(WAIT * 3)
    assert stored == [1]
