"""Who reacts to which event: every subscription of the app, in one list.

`create_app` calls `wire()`. Reading `referrals.transition` shows that it runs the
reactions to its event; this list shows which they are. Reactions to the same event
run in the order listed, inside the event's transaction (IN) or after it commits
(AFTER; see workflow.events).
"""

from __future__ import annotations

from workflow import access_log, events, scheduler
from workflow.audit import dido, records
from workflow.events import AFTER_COMMIT as AFTER
from workflow.events import IN_TRANSACTION as IN
from workflow.events import Subscription as On
from workflow.imaging import frames, key_objects
from workflow.paging import escalation
from workflow.referrals import receipts

SUBSCRIPTIONS: tuple[On, ...] = (
    # Raised: the hub service's escalation policy is copied and tier 1 is due now.
    On(IN, "raise", escalation.start),
    # Accepted or cancelled: every escalation page still due is cancelled.
    On(IN, "acknowledge", escalation.stop),
    On(IN, "cancel", escalation.stop),
    # Handed over while paging: the colleague is paged.
    On(IN, "hand_over", escalation.page_colleague),
    # Accepted or decided: the referrer is told (SMS and in-app).
    On(IN, "acknowledge", escalation.tell_referrer),
    On(IN, "decide", escalation.tell_referrer),
    # Every step paged, nobody accepted: the duty manager and the referrer are alarmed.
    On(IN, "escalation_exhausted", escalation.raise_alarm),
    # Paged again by the referrer: repeat alarms stop, tier 1 is due now (a new round).
    On(IN, "page_again", escalation.restart),
    # Decided or amended: a new version of the decision record (its PDF comes later).
    # Decided or amended with key images: a Key Object document for the PACS, pending
    # (listed first: the record names it; the scheduler stores it).
    On(IN, "decide", key_objects.queue),
    On(IN, "addendum", key_objects.queue),
    On(IN, "decide", records.write_record),
    # A message in the thread: a receipt for each person involved (delivered, read later).
    On(IN, "message", receipts.address),
    On(IN, "request_info", receipts.address),
    On(IN, "provide_info", receipts.address),
    # Someone new in the conversation (accepted, handed over): the earlier messages are
    # theirs to read too. (A further tier paged catches up in the sweep's claim.)
    On(IN, "acknowledge", receipts.catch_up),
    On(IN, "hand_over", receipts.catch_up),
    On(IN, "addendum", records.write_record),
    # A commit that made a page due wakes the sweep now, not at its next tick.
    On(AFTER, "raise", scheduler.wake),
    On(AFTER, "acknowledge", scheduler.wake),
    On(AFTER, "decide", scheduler.wake),
    On(AFTER, "hand_over", scheduler.wake),
    On(AFTER, "page_again", scheduler.wake),
    # A page asking a specialist to accept went out, or a study was linked (by a form,
    # the API or a new scan's one tap): warm the images, first slices first.
    On(AFTER, events.SPECIALIST_PAGED, frames.schedule_prefetch),
    On(AFTER, "studies_linked", frames.schedule_prefetch),
)


def wire() -> None:
    """Subscribe every reaction above (and nothing else), seal access-log rows as they
    commit and keep each linked study's time taken as it is written. Safe to call
    again."""
    events.replace(SUBSCRIPTIONS)
    access_log.install()
    dido.install()
