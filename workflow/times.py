"""Time zones: everything is stored in UTC and shown in Europe/London.

UK wall-clock time is not one-to-one with UTC: on the last Sunday of October the hour
from 01:00 happens twice (BST, then GMT) and on the last Sunday of March it does not
happen at all. `from_local` refuses both rather than guess, since a treatment window
counted from a guessed onset is an hour wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
_DAY = "%a %d %b %Y"


# Set only by as_of(): the demo's past referrals are written through the workflow as of
# the instants they happened.
_as_of: ContextVar[datetime | None] = ContextVar("goldenhour_as_of", default=None)


def now() -> datetime:
    return _as_of.get() or datetime.now(UTC)


@contextmanager
def as_of(instant: datetime) -> Iterator[None]:
    """Within the block, now() is ``instant`` (aware UTC) for this thread / task only."""
    token = _as_of.set(instant)
    try:
        yield
    finally:
        _as_of.reset(token)


class LocalTimeError(ValueError):
    """A UK wall-clock time that names no single instant."""


class AmbiguousLocalTime(LocalTimeError):
    """The time happens twice (the clocks go back). ``choices``: the two UTC instants,
    the first (BST) before the second (GMT)."""

    def __init__(self, wall: datetime, choices: tuple[datetime, datetime]):
        self.wall, self.choices = wall, choices
        first, second = (c.astimezone(LONDON) for c in choices)
        super().__init__(
            f"{wall:%H:%M} on {wall:{_DAY}} happens twice in UK time (the clocks go back "
            f"from 02:00 BST to 01:00 GMT): choose {wall:%H:%M} {first.tzname()}, the first "
            f"({first.isoformat(timespec='minutes')}), or {wall:%H:%M} {second.tzname()}, "
            f"the second ({second.isoformat(timespec='minutes')})")


class NonexistentLocalTime(LocalTimeError):
    """The time never happens (the clocks go forward from 01:00 GMT to 02:00 BST)."""

    def __init__(self, wall: datetime):
        self.wall = wall
        as_gmt = wall.replace(tzinfo=UTC).astimezone(LONDON)
        super().__init__(
            f"{wall:%H:%M} on {wall:{_DAY}} does not exist in UK time (the clocks go "
            f"forward from 01:00 GMT to 02:00 BST): check the time; {wall:%H:%M} GMT is "
            f"{as_gmt:%H:%M} BST")


def from_local(wall: datetime) -> datetime:
    """The UTC instant of a naive UK wall-clock time (an aware one is just converted).

    Raises AmbiguousLocalTime in the hour that happens twice and NonexistentLocalTime
    in the hour that is skipped.
    """
    if wall.tzinfo is not None:
        return wall.astimezone(UTC)
    first = wall.replace(tzinfo=LONDON, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=LONDON, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first < second:
        raise AmbiguousLocalTime(wall, (first, second))
    raise NonexistentLocalTime(wall)


def parse_local(text: str) -> datetime:
    """Parse an ISO date-time; naive values are Europe/London wall-clock time.

    Returns an aware UTC datetime. Raises ValueError with a readable message, and its
    subclasses AmbiguousLocalTime / NonexistentLocalTime for a wall-clock time that
    happens twice or never.
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("enter a date and time")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time like 2026-12-01 08:00") from None
    try:
        return from_local(value)
    except OverflowError:  # year 1 or 9999 moved across midnight by the offset
        raise ValueError(f"{text!r} is not a date and time like 2026-12-01 08:00") from None


def wall_choices(text: str) -> list[tuple[str, str]]:
    """For a form field holding a naive UK time that happens twice: (value with its
    offset, label) for each meaning, the first (BST) first; otherwise []."""
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        return []
    if value.tzinfo is not None:
        return []
    try:
        from_local(value)
    except AmbiguousLocalTime as exc:
        first, second = (c.astimezone(LONDON) for c in exc.choices)
        return [(first.isoformat(timespec="minutes"),
                 f"{first:%H:%M} {first.tzname()}, the first (before the clocks went back)"),
                (second.isoformat(timespec="minutes"),
                 f"{second:%H:%M} {second.tzname()}, the second (after the clocks went back)")]
    except NonexistentLocalTime:
        return []
    return []


def local(value: datetime | None) -> datetime | None:
    return value.astimezone(LONDON) if value is not None else None


def happens_twice(value: datetime) -> bool:
    """Whether this instant's UK wall-clock time also names another instant."""
    shown = value.astimezone(LONDON)
    return shown.replace(fold=1 - shown.fold).utcoffset() != shown.utcoffset()


def format_local(value: datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    """UK time in ``fmt``; a time that happens twice says which (01:40 BST, 01:40 GMT)."""
    if value is None:
        return "—"
    shown = local(value)
    text = shown.strftime(fmt)
    if "%H" in fmt and "%Z" not in fmt and happens_twice(value):
        text += f" {shown.tzname()}"
    return text
