"""Time zones: everything is stored in UTC and shown in Europe/London."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def now() -> datetime:
    return datetime.now(UTC)


def parse_local(text: str) -> datetime:
    """Parse an ISO date-time; naive values are Europe/London wall-clock time.

    Returns an aware UTC datetime. Raises ValueError with a readable message.
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("enter a date and time")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time like 2026-12-01 08:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=LONDON)
    return value.astimezone(UTC)


def local(value: datetime | None) -> datetime | None:
    return value.astimezone(LONDON) if value is not None else None


def format_local(value: datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    return local(value).strftime(fmt) if value is not None else "—"
