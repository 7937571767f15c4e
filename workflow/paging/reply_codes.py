"""The short code each page names, so that an SMS reply says which referral it accepts.

A specialist paged for two referrals who replies "1" has not said which one: the page
text reads "reply 1 or A7 to accept EM-...-000123", a bare "1" is taken only when one
referral is waiting for that person, and otherwise the reply asks which and accepts
nothing.
"""

from __future__ import annotations

import re

# No I or O: they read as 1 and 0 on a phone screen and over a voice call.
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_CODE = re.compile(r"^\s*(?:1\s+|ACCEPT\s+)?([A-Z])\s*-?\s*([0-9])\s*[.!]?\s*$")


def reply_code(referral_id: int) -> str:
    """The referral's reply code: a letter and a digit (240 codes; two open pages to one
    person with the same code make the reply ask which, never guess)."""
    return f"{LETTERS[referral_id % len(LETTERS)]}{(referral_id // len(LETTERS)) % 10}"


def code_in(body: str | None) -> str | None:
    """The reply code an SMS names ("A7", "a 7", "1 A7", "accept a7"), or None."""
    match = _CODE.match((body or "").upper())
    if not match or match.group(1) not in LETTERS:
        return None
    return match.group(1) + match.group(2)


def spoken(code: str) -> str:
    """The code as a voice call reads it: "A, 7"."""
    return ", ".join(code)
