"""SQLAlchemy models only. Import them from here."""

# The evidence tables' append-only triggers (PostgreSQL DDL, no model of its own).
from models import append_only  # noqa: F401, I001
from models.audit import AccessLog, IntegrityRun, RootEmail
from models.audit_facts import AuditFact
from models.imaging import KeyImage, KeyObjectDocument, OfferedStudy
from models.network import Hospital, HubService, PacsEndpoint, Specialty, TravelTime, Trust
from models.paging import (
    Delivery,
    Escalation,
    EscalationPolicy,
    Page,
    SchedulerHeartbeat,
    SchedulerLeader,
    WebhookReceipt,
)
from models.people import (
    ApiToken,
    LoginSession,
    RecoveryCode,
    Role,
    RotaGap,
    RotaShift,
    User,
    UserRole,
)
from models.presence import PushBrowser, ReferralViewer
from models.records import DecisionRecord
from models.referral import Decision, LinkedStudy, MessageReceipt, Referral, ReferralEvent

__all__ = [
    "AccessLog",
    "ApiToken",
    "AuditFact",
    "Decision",
    "DecisionRecord",
    "Delivery",
    "Escalation",
    "EscalationPolicy",
    "Page",
    "PushBrowser",
    "ReferralViewer",
    "SchedulerHeartbeat",
    "SchedulerLeader",
    "WebhookReceipt",
    "IntegrityRun",
    "KeyImage",
    "KeyObjectDocument",
    "LinkedStudy",
    "MessageReceipt",
    "Referral",
    "ReferralEvent",
    "Hospital",
    "HubService",
    "LoginSession",
    "OfferedStudy",
    "PacsEndpoint",
    "RecoveryCode",
    "Role",
    "RootEmail",
    "RotaGap",
    "RotaShift",
    "Specialty",
    "TravelTime",
    "Trust",
    "User",
    "UserRole",
]
