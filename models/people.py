"""People: users, their roles and specialties, two-factor recovery codes, rota shifts, API
tokens, login sessions."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.network import Hospital, HubService, Specialty
from models.types import UTCDateTime, utcnow


class Role(enum.StrEnum):
    REFERRER = "referrer"
    SPECIALIST = "specialist"
    AUDIT_LEAD = "audit_lead"
    ADMIN = "admin"
    DUTY_MANAGER = "duty_manager"


user_specialties = Table(
    "user_specialties",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("specialty_id", ForeignKey("specialties.id", ondelete="CASCADE"), primary_key=True),
)


class UserRole(db.Model):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    # The authenticator's TOTP secret, Fernet-encrypted ("" for none). Set with
    # totp_enabled_at still empty while an enrolment waits for its first code.
    totp_secret: Mapped[str] = mapped_column(String(200), default="")
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last 30-second step whose code was accepted: each code works once.
    totp_last_step: Mapped[int | None]
    # The identity provider's subject (the ID token's "sub"), linked at the first single
    # sign-on; from then on that identity signs in here even if its email changes.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    hospital: Mapped[Hospital | None] = relationship()
    role_rows: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    specialties: Mapped[list[Specialty]] = relationship(secondary=user_specialties, lazy="selectin")

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)

    @roles.setter
    def roles(self, roles) -> None:
        self.role_rows = [UserRole(role=str(Role(r))) for r in sorted(set(roles))]

    def has_role(self, role: Role | str) -> bool:
        return str(role) in self.roles

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def totp_enabled(self) -> bool:
        """True once the user confirmed an authenticator app: sign-in asks for its code."""
        return self.totp_enabled_at is not None

    @property
    def specialty_codes(self) -> frozenset[str]:
        return frozenset(s.code for s in self.specialties)


class RecoveryCode(db.Model):
    """A one-time code that stands in for the authenticator at sign-in. Only its SHA-256
    is stored; used_at is set when it is spent."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RotaShift(db.Model):
    """Who is on call, for which hub service, at which tier, from start to end (UTC)."""

    __tablename__ = "rota_shifts"
    __table_args__ = (UniqueConstraint("user_id", "hub_service_id", "tier", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    hub_service_id: Mapped[int] = mapped_column(ForeignKey("hub_services.id"), index=True)
    tier: Mapped[int]
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    user: Mapped[User] = relationship()
    hub_service: Mapped[HubService] = relationship()


class RotaGap(db.Model):
    """A stretch of time when a hub service's tier would page nobody, as the rota-cover
    check found it: kept so the duty manager and admins are told once per gap, and so
    a gap that was filled shows as resolved."""

    __tablename__ = "rota_gaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    hub_service_id: Mapped[int] = mapped_column(ForeignKey("hub_services.id"), index=True)
    tier: Mapped[int]
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reasons: Mapped[str] = mapped_column(String(200))  # "no_shift,no_phone", etc.
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the claim
    email_result: Mapped[str] = mapped_column(String(500), default="")

    hub_service: Mapped[HubService] = relationship()


class ApiToken(db.Model):
    """A bearer token for the JSON API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # refused from then on
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class LoginSession(db.Model):
    """A server-side record of one login, so logout and idle expiry are real.

    The signed cookie only carries this row's random id; a cookie replayed after
    logout or after the idle timeout finds the row closed and is refused.
    """

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    address: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[User] = relationship()
