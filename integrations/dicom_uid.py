"""What a DICOM UID may look like (PS3.5 section 9.1), checked in one place.

A UID is up to 64 characters of digits and dots: components of digits separated by
single dots, none of them empty, and none longer than one digit starting with a zero.
UIDs arrive from API bodies, forms, URL paths, uploaded files and PACS answers, and
end up in PACS request paths and in the database, so every entry point checks them
with `check_uid` (or `is_uid`) before anything is asked or stored.

    check_uid(body["study_uids"][0], "study_uids[0]")   # raises InvalidUid if not a UID
"""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
# The OpenAPI document gives path parameters this pattern and MAX_UID_LENGTH.
UID_PATTERN = r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$"
_UID = re.compile(UID_PATTERN.removesuffix("$") + r"\Z")  # "$" would allow a final "\n"


class InvalidUid(ValueError):
    """A value that is not a DICOM UID; the message names the field it came from."""

    def __init__(self, field: str, value: object):
        shown = repr(value)[:80] if isinstance(value, str) else type(value).__name__
        self.field = field
        self.message = f"{field} is not a DICOM UID (got {shown})"
        super().__init__(self.message)


def is_uid(value: object) -> bool:
    """True when ``value`` is a string that is a well-formed DICOM UID."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_UID_LENGTH
            and _UID.match(value) is not None)


def check_uid(value: object, field: str) -> str:
    """``value`` itself when it is a DICOM UID.

    Raises InvalidUid naming ``field`` when it is not (empty, too long, not digits
    and single dots, an empty component or a component with a leading zero).
    """
    if not is_uid(value):
        raise InvalidUid(field, value)
    return value
