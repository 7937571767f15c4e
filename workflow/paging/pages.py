"""What a page is and where it stands: the words stored in `pages.kind` and `pages.status`.

Escalation pages are numbered by their step (0, 1, ...) and the exhausted page follows
the last step. The other kinds are out of band: each has a fixed negative step that
only keeps the unique (referral, step, attempt) key apart from the escalation's steps;
nothing reads meaning into it.
"""

from __future__ import annotations

import enum


class PageKind(enum.StrEnum):
    ESCALATION = "escalation"  # a step of the escalation policy
    EXHAUSTED = "exhausted"    # after the last step: the referral becomes unanswered
    HANDOVER = "handover"      # a colleague handed the page
    NOTICE = "notice"          # telling someone what happened (accepted, decided, images)
    ALARM = "alarm"            # nobody accepted: the duty manager and the referrer
    REALARM = "realarm"        # still nobody: the duty manager and consultant, again


class PageStatus(enum.StrEnum):
    DUE = "due"
    CLAIMED = "claimed"
    CANCELLED = "cancelled"


# The kinds that make up the escalation itself: stopped by acknowledge, moved on by a
# failed step.
ESCALATING = (PageKind.ESCALATION, PageKind.EXHAUSTED)
# The kinds that ask someone to accept (their link acknowledges; their images are warmed).
ASKING = (PageKind.ESCALATION, PageKind.HANDOVER)
OUT_OF_BAND_STEP = {PageKind.HANDOVER: -1, PageKind.NOTICE: -2, PageKind.ALARM: -3,
                    PageKind.REALARM: -4}
# "Page again" restarts the escalation: each round's pages number their attempts from
# round * ROUND, so the (referral, step, attempt) key stays unique across rounds.
ROUND = 1000
# Cancelled when someone accepts or the referrer cancels.
STOPPED_BY_ANSWER = (*ESCALATING, PageKind.REALARM)
