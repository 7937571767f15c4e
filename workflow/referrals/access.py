"""Who may see a referral, and in which capacity a user acts on it."""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload, load_only

from extensions import db
from models import HubService, Referral, Role, Specialty, User
from workflow.errors import NotAllowed, NotFound
from workflow.referrals import states


def actor_kinds(user: User | None, referral: Referral) -> frozenset[str]:
    """The capacities in which ``user`` may act on ``referral`` (see workflow.referrals.states)."""
    if user is None or not user.active:
        return frozenset()
    kinds = set()
    if user.has_role(Role.REFERRER) and user.hospital_id == referral.referring_hospital_id:
        kinds.add(states.REFERRER)
    service = referral.hub_service
    if user.has_role(Role.SPECIALIST) and user.hospital_id == service.hospital_id \
            and service.specialty.code in user.specialty_codes:
        kinds.add(states.HUB_SPECIALIST)
    if referral.assigned_specialist_id == user.id and user.has_role(Role.SPECIALIST):
        kinds.add(states.ASSIGNED)
    if user.has_role(Role.DUTY_MANAGER) and user.hospital_id == service.hospital_id:
        kinds.add(states.DUTY_MANAGER)
    return frozenset(kinds)


def hand_over_candidates(referral: Referral, holder: User) -> list[User]:
    """Who ``holder`` could hand ``referral`` to: the other active specialists of its
    hub service (the rule `referrals.hand_over` checks), by name."""
    service = referral.hub_service
    people = db.session.scalars(
        select(User).join(User.specialties)
        .where(Specialty.id == service.specialty_id, User.hospital_id == service.hospital_id,
               User.active.is_(True))
        .order_by(User.name))
    return [u for u in people if u.id not in (holder.id, referral.assigned_specialist_id)
            and states.HUB_SPECIALIST in actor_kinds(u, referral)]


def can_view(user: User | None, referral: Referral) -> bool:
    if user is None or not user.active:
        return False
    if user.has_role(Role.AUDIT_LEAD) or user.has_role(Role.ADMIN):
        return True
    return bool(actor_kinds(user, referral))


def visible(user: User, query: Select) -> Select:
    """Narrow a select of Referral to what ``user`` may see."""
    if user.has_role(Role.AUDIT_LEAD) or user.has_role(Role.ADMIN):
        return query
    clauses = []
    if user.has_role(Role.REFERRER) and user.hospital_id:
        clauses.append(Referral.referring_hospital_id == user.hospital_id)
    if user.has_role(Role.SPECIALIST) and user.hospital_id:
        specialty_ids = [s.id for s in user.specialties]
        services = select(HubService.id).where(HubService.hospital_id == user.hospital_id,
                                               HubService.specialty_id.in_(specialty_ids))
        clauses.append(Referral.hub_service_id.in_(services))
        clauses.append(Referral.assigned_specialist_id == user.id)
    if user.has_role(Role.DUTY_MANAGER) and user.hospital_id:
        services = select(HubService.id).where(HubService.hospital_id == user.hospital_id)
        clauses.append(Referral.hub_service_id.in_(services))
    if not clauses:
        return query.where(False)
    return query.where(or_(*clauses))


# Ids are 32-bit on PostgreSQL; a larger number in a URL names nothing rather than
# overflowing the database driver.
MAX_ID = 2**31 - 1


def find(model, object_id: int, options=()):
    """The row of ``model`` with ``object_id`` (loaded with ``options``), or None (also
    for an id out of range)."""
    if not valid_id(object_id):
        return None
    return db.session.get(model, object_id, options=options)


def valid_id(object_id: object) -> bool:
    """Whether ``object_id`` can name a row (an int from 1 to MAX_ID, not a bool)."""
    return isinstance(object_id, int) and not isinstance(object_id, bool) \
        and 1 <= object_id <= MAX_ID


# Loader options for a Referral read only to decide who may see it (`check_visible`):
# the columns `actor_kinds` reads and its hub service's hospital and specialty code,
# joined into the query that reads the referral. A request that serves one image slice
# needs no more of the referral, and each column and row the ORM builds costs time.
FOR_ACCESS_CHECK = (
    load_only(Referral.referring_hospital_id, Referral.assigned_specialist_id,
              Referral.hub_service_id),
    joinedload(Referral.hub_service).load_only(HubService.hospital_id, HubService.specialty_id)
    .joinedload(HubService.specialty).load_only(Specialty.code),
)


def check_visible(user: User | None, referral: Referral) -> Referral:
    """``referral`` if ``user`` may see it. Raises NotAllowed when it is outside the
    user's rights (the caller logs the refusal)."""
    if not can_view(user, referral):
        raise NotAllowed("this referral is outside your hospital or service")
    return referral


def get_referral(referral_id: int) -> Referral:
    """The referral with ``referral_id``. Raises NotFound when there is none."""
    # With its hub service and specialty, which every access check reads: one query.
    referral = find(Referral, referral_id, options=[
        joinedload(Referral.hub_service).joinedload(HubService.specialty)])
    if referral is None:
        raise NotFound(f"no referral {referral_id}")
    return referral


def get_visible(user: User, referral_id: int) -> Referral:
    """The referral with ``referral_id`` if ``user`` may see it.

    Raises NotFound when there is no such referral, NotAllowed when it is outside the
    user's rights (the caller logs the refusal).
    """
    return check_visible(user, get_referral(referral_id))
