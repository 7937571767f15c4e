"""Reactions to what happens to a referral, all subscribed in one place: workflow/wiring.py.

A reaction runs at one of two moments:

- ``IN_TRANSACTION``: inside the transaction that wrote the referral event, as
  ``reaction(referral, event)``; what it writes commits or rolls back with the event
  (due pages, a decision record).
- ``AFTER_COMMIT``: once that transaction has committed, as ``reaction(referral_id)``;
  for work that must not hold a transaction open (waking the sweep, warming images).

The events are the referral event kinds of the transition table ("raise",
"acknowledge", "decide", ...) and the few a package announces itself (below). Importing
a module subscribes nothing: `workflow.wiring.wire()` does it when the app is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

IN_TRANSACTION = "in_transaction"
AFTER_COMMIT = "after_commit"
# Announced by the sweep once a page asking a specialist to accept has been claimed.
SPECIALIST_PAGED = "specialist_paged"


@dataclass(frozen=True)
class Subscription:
    """``reaction`` runs at ``moment`` whenever ``event`` happens."""

    moment: str
    event: str
    reaction: Callable

    def __str__(self) -> str:
        name = f"{self.reaction.__module__}.{self.reaction.__qualname__}"
        return f"{self.event} ({self.moment.replace('_', ' ')}): {name}"


_subscriptions: tuple[Subscription, ...] = ()


def replace(subscriptions: Iterable[Subscription]) -> None:
    """Make ``subscriptions`` the only ones, in this order (wiring; tests).

    Raises ValueError for a moment that is neither IN_TRANSACTION nor AFTER_COMMIT.
    """
    global _subscriptions
    subscriptions = tuple(subscriptions)
    for s in subscriptions:
        if s.moment not in (IN_TRANSACTION, AFTER_COMMIT):
            raise ValueError(f"{s}: no such moment {s.moment!r}")
    _subscriptions = subscriptions


def subscriptions() -> tuple[Subscription, ...]:
    """Every subscription, in the order the reactions run."""
    return _subscriptions


def recorded(referral, event) -> None:
    """Run the in-transaction reactions to ``event`` (a ReferralEvent just added).

    Raises what a reaction raises; the caller's transaction then rolls back.
    """
    for s in _subscriptions:
        if s.moment == IN_TRANSACTION and s.event == event.kind:
            s.reaction(referral, event)


def committed(event: str, referral_id: int) -> None:
    """Run the after-commit reactions to ``event``. Raises what a reaction raises."""
    for s in _subscriptions:
        if s.moment == AFTER_COMMIT and s.event == event:
            s.reaction(referral_id)
