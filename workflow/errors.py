"""Domain errors. The web layer maps each to an HTTP status; none of them is a 500."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the workflow raises on purpose."""

    status = 400

    def details(self) -> dict:
        """What a JSON answer carries besides the message (none by default)."""
        return {}


class NotAllowed(DomainError):
    """The user's role or hospital does not permit this (HTTP 403)."""

    status = 403


class NotFound(DomainError):
    """No such object, or not one this user may know exists (HTTP 404)."""

    status = 404


class Conflict(DomainError):
    """An illegal transition, or another user got there first (HTTP 409)."""

    status = 409


class ValidationFailed(DomainError):
    """Input is wrong; ``errors`` maps each field path to one message (HTTP 422)."""

    status = 422

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))
