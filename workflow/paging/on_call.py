"""Who is on call at the referral's hub now, with the numbers to ring: for a referrer
whose referral nobody has answered, and for the hub's own staff. Read from the rota;
a person without a number on file is listed without one. Also the referrer and the
accepting specialist, so each can ring the other back in one tap."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from models import Referral
from workflow.paging import escalation, rota

DIALLABLE = re.compile(r"\+?[0-9]{6,15}")


@dataclass(frozen=True)
class OnCall:
    role: str  # "Tier 1 on call", "Duty manager"
    name: str
    phone: str  # as stored ("" when none)
    tel: str  # the tel: address ("" when the number cannot be dialled)


def _line(role: str, user) -> OnCall:
    phone = (user.phone or "").strip()
    digits = re.sub(r"[\s()-]", "", phone)
    return OnCall(role, user.name, phone, f"tel:{digits}" if DIALLABLE.fullmatch(digits) else "")


def involved(referral: Referral, viewer_id: int) -> list[OnCall]:
    """The referring clinician and the specialist who accepted, to ring back from the
    referral page; the viewer is left out of their own list."""
    people = [("Referred by", referral.referrer),
              ("Accepted by", referral.assigned_specialist)]
    return [_line(role, person) for role, person in people
            if person is not None and person.id != viewer_id]


def on_call_now(referral: Referral, at: datetime) -> list[OnCall]:
    """Tiers 1-3 on call for the referral's hub service at ``at``, then its duty managers."""
    service = referral.hub_service
    lines = [_line(f"Tier {tier} on call", user)
             for tier in (1, 2, 3) for user in rota.on_call(service, tier, at)]
    lines += [_line("Duty manager", u) for u in escalation.duty_managers(service)]
    return lines
