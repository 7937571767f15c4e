"""NHS number check digit (NHS Data Dictionary, modulus 11)."""

from __future__ import annotations

import re

NOT_TEN_DIGITS = "An NHS number is 10 digits, like 943 476 5919."
WRONG_CHECK_DIGIT = ("This NHS number's check digit is wrong; check it against the patient's "
                     "record.")


def normalise(text: str) -> str:
    """Strip spaces and dashes: '943 476 5919' -> '9434765919'."""
    return re.sub(r"[\s-]", "", text or "")


def problem(text: str) -> str | None:
    """None when ``text`` is a valid NHS number, else what is wrong with it."""
    digits = normalise(text)
    if not digits:
        return "Enter the NHS number."
    if not re.fullmatch(r"[0-9]{10}", digits):  # \d would let in other scripts' digits
        return NOT_TEN_DIGITS
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        return WRONG_CHECK_DIGIT
    return None
