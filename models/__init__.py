"""SQLAlchemy models only. Import them from here."""

from models.audit import AccessLog
from models.network import HubService, Hospital, PacsEndpoint, Specialty, TravelTime, Trust
from models.people import ApiToken, LoginSession, Role, RotaShift, User, UserRole

__all__ = [
    "AccessLog",
    "ApiToken",
    "Hospital",
    "HubService",
    "LoginSession",
    "PacsEndpoint",
    "Role",
    "RotaShift",
    "Specialty",
    "TravelTime",
    "Trust",
    "User",
    "UserRole",
]
