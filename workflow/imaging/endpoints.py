"""The hospitals' PACS endpoints: a client for each, and what we last saw of each.

PACS calls never run inside a database transaction. Callers read a `PacsTarget` (a
plain copy of the endpoint row), end their transaction, call the PACS, then write the
outcome with `record_outcome` in a short transaction of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from extensions import db
from integrations.pacs import DicomWebClient, PacsError
from models import Hospital, PacsEndpoint
from workflow.errors import DomainError, ValidationFailed
from workflow.imaging import sealing
from workflow.times import now as utcnow

AUTH_TYPES = ("none", "basic", "bearer")
# A search across the network answers within this, whatever each endpoint's timeout.
SEARCH_BUDGET_SECONDS = 4.5
T = TypeVar("T")


class ImagesUnavailable(DomainError):
    """A hospital's PACS could not be reached or refused (HTTP 503); names the hospital."""

    status = 503

    def __init__(self, hospital: str, reason: str):
        self.hospital = hospital
        self.reason = reason
        super().__init__(f"images unavailable from {hospital}: {reason}")


@dataclass(frozen=True)
class PacsTarget:
    """What a PACS call needs, copied out of the session so threads can use it."""

    endpoint_id: int
    hospital_id: int
    hospital_code: str
    hospital_name: str
    base_url: str
    auth_type: str
    username: str
    secret: str
    timeout_seconds: float
    viewer_url_template: str

    def viewer_url(self, study_uid: str) -> str:
        if not self.viewer_url_template:
            return ""
        return self.viewer_url_template.replace("{study_uid}", study_uid)


def endpoint_target(endpoint: PacsEndpoint) -> PacsTarget:
    """The endpoint's call details, its secret decrypted. A secret still stored plain
    (from before encryption) is sealed in the session: every caller commits next."""
    hospital = endpoint.hospital
    stored = endpoint.secret or ""
    secret = sealing.unseal(stored, hospital=hospital.name)
    if stored and not sealing.is_sealed(stored):
        endpoint.secret = sealing.seal(stored)
    return PacsTarget(endpoint.id, hospital.id, hospital.code, hospital.name,
                      endpoint.base_url, endpoint.auth_type, endpoint.username or "",
                      secret, float(endpoint.timeout_seconds or 5.0),
                      endpoint.viewer_url_template or "")


def targets(hospital_code: str | None = None) -> list[PacsTarget]:
    """Every configured endpoint (or the one of ``hospital_code``), by hospital name."""
    query = select(PacsEndpoint).join(Hospital).where(PacsEndpoint.base_url != "")
    if hospital_code:
        query = query.where(Hospital.code == hospital_code)
    return [endpoint_target(e) for e in db.session.scalars(query.order_by(Hospital.name))]


def target_for_hospital(hospital_id: int) -> PacsTarget | None:
    endpoint = db.session.scalar(select(PacsEndpoint)
                                 .where(PacsEndpoint.hospital_id == hospital_id)
                                 .options(joinedload(PacsEndpoint.hospital)))
    return endpoint_target(endpoint) if endpoint is not None and endpoint.base_url else None


_clients: dict[tuple, DicomWebClient] = {}
_clients_lock = threading.Lock()


def client(target: PacsTarget, *, timeout: float | None = None) -> DicomWebClient:
    """A client for the endpoint (its HTTP session is kept and reused)."""
    seconds = min(target.timeout_seconds, timeout) if timeout else target.timeout_seconds
    auth: tuple[str, str] | str | None = None
    if target.auth_type == "basic":
        auth = (target.username, target.secret)
    elif target.auth_type == "bearer":
        auth = target.secret
    key = (target.base_url, target.auth_type, target.username, target.secret, seconds)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = DicomWebClient(target.base_url, name=target.hospital_name, auth=auth,
                                   timeout=seconds, retries=1, backoff=0.1)
            _clients[key] = found
        return found


@dataclass
class Outcome:
    endpoint_id: int
    ok: bool
    latency_ms: int
    error: str = ""
    status: int | None = None  # the PACS's HTTP status when it answered with an error


def timed(target: PacsTarget, call: Callable[[], T]) -> tuple[T | None, Outcome]:
    """Run ``call`` (a PACS request) and measure it; a PacsError becomes the outcome."""
    started = time.monotonic()
    try:
        result = call()
    except PacsError as exc:
        return None, Outcome(target.endpoint_id, False,
                             int((time.monotonic() - started) * 1000), exc.message,
                             exc.status)
    return result, Outcome(target.endpoint_id, True, int((time.monotonic() - started) * 1000))


def record_outcome(*outcomes: Outcome) -> None:
    """Write each endpoint's last success/error and latency, in one short transaction."""
    at = utcnow()
    for outcome in outcomes:
        endpoint = db.session.get(PacsEndpoint, outcome.endpoint_id)
        if endpoint is None:
            continue
        endpoint.last_latency_ms = outcome.latency_ms
        if outcome.ok:
            endpoint.last_success_at = at
        else:
            endpoint.last_error_at = at
            endpoint.last_error = outcome.error[:500]
    db.session.commit()


def test_connection(endpoint_id: int) -> Outcome:
    """Ping the endpoint (one small QIDO query) and record the result."""
    endpoint = db.session.get(PacsEndpoint, endpoint_id)
    target = endpoint_target(endpoint)
    db.session.commit()  # no transaction open while the PACS answers
    _, outcome = timed(target, lambda: client(target).ping())
    record_outcome(outcome)
    return outcome


def update_endpoint(hospital: Hospital, form: dict) -> PacsEndpoint:
    """Create or change a hospital's endpoint from admin input (and commit).

    Raises ValidationFailed naming each bad field.
    """
    errors = {}
    base_url = (form.get("base_url") or "").strip().rstrip("/")
    if base_url and not base_url.startswith(("http://", "https://")):
        errors["base_url"] = "The DICOMweb root must start with http:// or https://."
    auth_type = form.get("auth_type") or "none"
    if auth_type not in AUTH_TYPES:
        errors["auth_type"] = f"Choose one of {', '.join(AUTH_TYPES)}."
    template = (form.get("viewer_url_template") or "").strip()
    if template and ("{study_uid}" not in template
                     or not template.startswith(("http://", "https://"))):
        errors["viewer_url_template"] = ("An http(s) address containing {study_uid}, e.g. "
                                         "https://pacs.example.nhs.uk/viewer?study={study_uid}.")
    try:
        timeout = float(form.get("timeout_seconds") or 5)
        if not 0.5 <= timeout <= 30:
            raise ValueError
    except ValueError:
        errors["timeout_seconds"] = "A number of seconds from 0.5 to 30."
        timeout = 5.0
    if errors:
        raise ValidationFailed(errors)
    endpoint = hospital.pacs or PacsEndpoint(hospital=hospital, base_url="")
    endpoint.base_url = base_url
    endpoint.auth_type = auth_type
    endpoint.username = (form.get("username") or "").strip()[:200]
    if form.get("secret"):  # blank keeps the stored secret: it is never shown back
        endpoint.secret = sealing.seal(form["secret"][:500])
    endpoint.viewer_url_template = template
    endpoint.timeout_seconds = timeout
    db.session.add(endpoint)
    db.session.commit()
    return endpoint
