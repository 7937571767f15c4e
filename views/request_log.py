"""The request log without patients in it.

NHS numbers and patient ids travel in query strings (the study search, the review
page's search), and the web server writes every request line to its log: werkzeug's
("werkzeug" logger) in development, gunicorn's ("gunicorn.access") in production. A
filter on those loggers rewrites each line before any handler sees it: the value of
every query field whose name speaks of a patient, and any NHS-number-shaped run of
ten digits, become [hidden].
"""

from __future__ import annotations

import logging
import re

REQUEST_LOGGERS = ("werkzeug", "gunicorn.access")
HIDDEN = "[hidden]"
# A field, also inside an encoded address (a sign-in redirect's next=...%3Fnhs_number%3D).
_PATIENT_FIELD = re.compile(
    r"(?i)((?:[?&;]|%3F|%26)[^=&\s\"%]*(?:nhs|patient|local_number|mrn)[^=&\s\"]*?(?:=|%3D))"
    r"(?:(?!%26)[^&\s\"#])*")
_SEPARATOR = r"(?:\s|%20|\+|-)?"
_NHS_NUMBER = re.compile(rf"(?<!\d)\d{{3}}{_SEPARATOR}\d{{3}}{_SEPARATOR}\d{{4}}(?!\d)")


def scrub(line: str) -> str:
    """``line`` with patient identifiers replaced by [hidden]."""
    return _NHS_NUMBER.sub(HIDDEN, _PATIENT_FIELD.sub(rf"\1{HIDDEN}", line))


class HidePatientIds(logging.Filter):
    """Rewrite a record's message with `scrub` (and drop its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install() -> None:
    """Put the filter on the request loggers (once each)."""
    for name in REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HidePatientIds) for f in logger.filters):
            logger.addFilter(HidePatientIds())
