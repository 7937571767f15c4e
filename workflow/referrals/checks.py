"""The checks every input is made of: each takes a plain dict (from a form or JSON),
the key, the path a message is filed under ("clinical.nihss") and the ``Errors`` that
collects one specific message per bad path, and returns the clean value or None.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from workflow.errors import ValidationFailed
from workflow.times import LocalTimeError, from_local

MAX_TEXT = 4000
CLOCK_SKEW = timedelta(minutes=5)


class Errors(dict):
    def need(self, condition: bool, path: str, message: str) -> bool:
        if not condition and path not in self:
            self[path] = message
        return condition

    def raise_if_any(self) -> None:
        if self:
            raise ValidationFailed(dict(self))


def text(data: dict, key: str, path: str, errors: Errors, *, required: bool = True,
         limit: int = MAX_TEXT, label: str | None = None) -> str:
    """A stripped string no longer than ``limit``; HTML is kept as text and escaped on output."""
    value = data.get(key)
    label = label or key.replace("_", " ")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.need(False, path, f"Enter the {label}.")
        return ""
    if not isinstance(value, str):
        errors.need(False, path, f"The {label} must be text.")
        return ""
    value = value.strip()
    if len(value) > limit:
        errors.need(False, path, f"The {label} is {len(value)} characters; the most is {limit}.")
        return ""
    if "\x00" in value:
        errors.need(False, path, f"The {label} contains a NUL character.")
        return ""
    if not storable(value):
        errors.need(False, path, f"The {label} contains a broken character (a lone surrogate).")
        return ""
    return value


def storable(value: str) -> bool:
    """False for strings no database can store: JSON may carry lone surrogates (\\ud800)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def code(data: dict, key: str, path: str, errors: Errors, known: set[str], *,
         required: bool = True, label: str = "hospital") -> str | None:
    """A code from ``known`` (a hospital code), or None with a message at ``path``."""
    value = data.get(key)
    if value in (None, ""):
        errors.need(not required, path, f"Choose the {label}.")
        return None
    if not isinstance(value, str):
        errors.need(False, path, f"The {label} must be a code such as {min(known, default='QMC')}.")
        return None
    if value not in known:
        errors.need(False, path, f"No hospital has the code {value!r}.")
        return None
    return value


def choice(data: dict, key: str, path: str, errors: Errors, options, *, required=True) -> str:
    value = data.get(key)
    if value in (None, ""):
        if required:
            errors.need(False, path, f"Choose the {key.replace('_', ' ')}: {', '.join(options)}.")
        return ""
    if value not in options:
        errors.need(False, path, f"{value!r} is not one of {', '.join(options)}.")
        return ""
    return value


def integer(data: dict, key: str, path: str, errors: Errors, low: int, high: int, *,
            required: bool = True, label: str | None = None) -> int | None:
    value = data.get(key)
    label = label or key.replace("_", " ")
    if value in (None, ""):
        errors.need(not required, path, f"Enter the {label} ({low}–{high}).")
        return None
    if isinstance(value, bool):
        errors.need(False, path, f"The {label} must be a whole number from {low} to {high}.")
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        errors.need(False, path, f"The {label} must be a whole number from {low} to {high}.")
        return None
    if not low <= number <= high:
        errors.need(False, path, f"The {label} must be from {low} to {high}, not {number}.")
        return None
    return number


def boolean(data: dict, key: str, path: str, errors: Errors, *, required=True) -> bool | None:
    value = data.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "yes", "on", "1"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "no", "off", "0"}:
        return False
    errors.need(not required and value in (None, ""), path,
                f"Say whether {key.replace('_', ' ')} (yes or no).")
    return None


def when(data: dict, key: str, path: str, errors: Errors, now: datetime, *,
         required: bool = True, label: str | None = None) -> datetime | None:
    """A date-time (ISO; naive means UK local time), not in the future. A naive time
    in the hour the clocks go back (it happens twice) or forward (it never happens) is
    refused naming both meanings: an offset says which."""
    value = data.get(key)
    label = label or key.replace("_", " ")
    if value in (None, ""):
        errors.need(not required, path, f"Enter the {label}.")
        return None
    if not isinstance(value, str):
        errors.need(False, path, f"The {label} must be a date and time like 2026-11-29T02:15.")
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        errors.need(False, path, f"The {label} must be a date and time like 2026-11-29T02:15.")
        return None
    try:
        parsed = from_local(parsed)
    except LocalTimeError as exc:  # the hour the clocks go back, or forward
        errors.need(False, path, f"The {label}: {exc}.")
        return None
    except OverflowError:  # year 1 or 9999 moved across midnight by the offset
        errors.need(False, path, f"The {label} is not a date and time this century.")
        return None
    if parsed > now + CLOCK_SKEW:
        errors.need(False, path, f"The {label} is in the future.")
        return None
    if parsed < now - timedelta(days=60):
        errors.need(False, path, f"The {label} is more than 60 days ago.")
        return None
    return parsed


def birth_date(data: dict, path: str, errors: Errors, today: date) -> date | None:
    value = data.get("birth_date")
    if value in (None, ""):
        errors.need(False, path, "Enter the date of birth.")
        return None
    try:
        parsed = date.fromisoformat(str(value).strip())
    except ValueError:
        errors.need(False, path, "The date of birth must be a date like 1948-03-14.")
        return None
    if parsed > today:
        errors.need(False, path, "The date of birth is in the future.")
        return None
    if parsed.year < today.year - 125:
        errors.need(False, path, "The date of birth is more than 125 years ago.")
        return None
    return parsed
