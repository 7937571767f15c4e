"""The network: trusts, hospitals, the hub services they run, travel times, PACS endpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.types import UTCDateTime


class Trust(db.Model):
    __tablename__ = "trusts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    hospitals: Mapped[list[Hospital]] = relationship(back_populates="trust")


class Specialty(db.Model):
    __tablename__ = "specialties"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))


class Hospital(db.Model):
    __tablename__ = "hospitals"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    town: Mapped[str] = mapped_column(String(100), default="")
    trust_id: Mapped[int] = mapped_column(ForeignKey("trusts.id"), index=True)

    trust: Mapped[Trust] = relationship(back_populates="hospitals")
    hub_services: Mapped[list[HubService]] = relationship(back_populates="hospital")
    pacs: Mapped[PacsEndpoint | None] = relationship(back_populates="hospital", uselist=False)

    @property
    def hub_specialty_codes(self) -> list[str]:
        return sorted(s.specialty.code for s in self.hub_services)


class HubService(db.Model):
    """A specialty a hospital is a hub for: the target of referrals and of a rota."""

    __tablename__ = "hub_services"
    __table_args__ = (UniqueConstraint("hospital_id", "specialty_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))

    hospital: Mapped[Hospital] = relationship(back_populates="hub_services")
    specialty: Mapped[Specialty] = relationship()


class TravelTime(db.Model):
    """Blue-light road minutes from one hospital to another (directional)."""

    __tablename__ = "travel_times"
    __table_args__ = (UniqueConstraint("from_hospital_id", "to_hospital_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    to_hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    minutes: Mapped[int]

    from_hospital: Mapped[Hospital] = relationship(foreign_keys=[from_hospital_id])
    to_hospital: Mapped[Hospital] = relationship(foreign_keys=[to_hospital_id])


class PacsEndpoint(db.Model):
    """A hospital's DICOMweb endpoint, and what we last saw of it."""

    __tablename__ = "pacs_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), unique=True)
    base_url: Mapped[str] = mapped_column(String(500))
    auth_type: Mapped[str] = mapped_column(String(16), default="none")  # none | basic | bearer
    username: Mapped[str] = mapped_column(String(200), default="")
    # Encrypted (workflow/imaging/sealing.py): "fernet:<token>", never the plain secret.
    secret: Mapped[str] = mapped_column(Text, default="")
    viewer_url_template: Mapped[str] = mapped_column(String(500), default="")
    timeout_seconds: Mapped[float] = mapped_column(default=5.0)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(500), default="")
    last_latency_ms: Mapped[int | None]

    hospital: Mapped[Hospital] = relationship(back_populates="pacs")
