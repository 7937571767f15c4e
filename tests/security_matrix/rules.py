"""Who may reach each route: one rule per endpoint of the app's URL map.

tests/security_matrix/test_access_matrix.py signs in as every actor below, sends every
route a request and checks the answer against this table. A route with no rule here
fails that test; so does a rule for an endpoint that no longer exists.

Adding a route: add ``"<blueprint>.<view>": Rule(<anonymous>, {<who gets through>})``;
the rule holds for every method of the route. For a URL variable the matrix has no
value for, add one to ``values`` in the test module's ``_scene``. If an empty POST body
would stop the request at input checking before the view checks the role (a 422 for
everyone), give the smallest body that reaches the role check (``form=`` or ``json=``).

Actors, all from the demo network (workflow/seed.py) except the second duty manager.
For routes under /referrals/<id> they are named for the test referral: a stroke
referral raised by Pilgrim (PIL) to the Queen's Medical Centre (QMC) stroke service.

    referrer:own              referrer at Pilgrim, who raised it
    referrer:other            referrer at Lincoln (another hospital)
    specialist:hub            stroke registrar on call at QMC; paged for it
    specialist:other-service  spinal registrar at QMC (the hub, another service)
    specialist:other-hub      vascular registrar at Leicester (LRI, another hub)
    duty_manager:hub          QMC's duty manager
    duty_manager:other-hub    a duty manager at Leicester
    audit_lead, admin         network-wide roles

A request without a session, and one replaying the cookie of a user deactivated while
signed in, both get the rule's ``anonymous`` outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a request without a session gets.
LOGIN = "login"    # a redirect to the sign-in page (pages)
API = "401"        # 401 with a JSON error (the JSON API)
PUBLIC = "public"  # through: the route needs no sign-in
SIGNED = "signed"  # 403 without a valid X-Twilio-Signature, through with one
ANONYMOUS_OUTCOMES = (LOGIN, API, PUBLIC, SIGNED)

ACTORS = (
    "referrer:own", "referrer:other",
    "specialist:hub", "specialist:other-service", "specialist:other-hub",
    "duty_manager:hub", "duty_manager:other-hub",
    "audit_lead", "admin",
)
CLINICIANS = {"referrer:own", "specialist:hub", "duty_manager:hub"}
GROUPS: dict[str, set[str]] = {
    "referrer": {"referrer:own", "referrer:other"},
    "specialist": {"specialist:hub", "specialist:other-service", "specialist:other-hub"},
    "duty_manager": {"duty_manager:hub", "duty_manager:other-hub"},
    "signed_in": set(ACTORS),
    # Those in a capacity on the referral (workflow.referrals.access.actor_kinds).
    "clinicians": CLINICIANS,
    # Those who may see the referral (access.can_view): its clinicians and the
    # network-wide roles.
    "sees_referral": CLINICIANS | {"audit_lead", "admin"},
}
# Users of a hospital that is neither the referring hospital nor the hub: no rule for
# a route under /referrals/<id> may let them through.
OUTSIDERS = {"referrer:other", "specialist:other-hub", "duty_manager:other-hub"}

STUDY = "1.2.826.0.1.3680043.8.498.10001"  # a valid-looking UID no PACS holds


@dataclass(frozen=True)
class Rule:
    anonymous: str
    allowed: frozenset[str] = field(default_factory=frozenset)  # actors or GROUPS names
    form: dict | None = None  # POST body for a page route (default: empty form)
    json: dict | None = None  # POST body for a JSON route (default: {})

    def __post_init__(self):
        object.__setattr__(self, "allowed", frozenset(self.allowed))

    def actors(self) -> set[str]:
        """The actors this rule lets through. Raises KeyError for an unknown name."""
        names: set[str] = set()
        for name in self.allowed:
            if name not in GROUPS and name not in ACTORS:
                raise KeyError(f"{name!r} is neither an actor nor a group of rules.py")
            names |= GROUPS.get(name, {name})
        return names


RULES: dict[str, Rule] = {
    # Sign-in and public endpoints
    "auth.login": Rule(PUBLIC, {"signed_in"}),
    "auth.logout": Rule(PUBLIC, {"signed_in"}),
    "home.health": Rule(PUBLIC, {"signed_in"}),
    "home.ready": Rule(PUBLIC, {"signed_in"}),
    "home.index": Rule(LOGIN, {"signed_in"}),
    "api.openapi": Rule(PUBLIC, {"signed_in"}),
    "auth.code": Rule(PUBLIC, {"signed_in"}),  # no sign-in waiting: back to sign-in
    # No identity provider configured here: 404 for everyone, past any check.
    "sso.start": Rule(PUBLIC, {"signed_in"}),
    "sso.callback": Rule(PUBLIC, {"signed_in"}),
    # Two-factor: each signed-in user for themselves.
    "two_factor.settings": Rule(LOGIN, {"signed_in"}),
    "two_factor.enrol": Rule(PUBLIC, {"signed_in"}),  # nobody waiting to enrol: to sign-in
    "two_factor.new_recovery_codes": Rule(LOGIN, {"signed_in"}),

    # Raising and listing referrals
    "referrals.new": Rule(LOGIN, {"referrer"}),
    "referrals.mine": Rule(LOGIN, {"referrer"}),
    "referrals.worklist": Rule(LOGIN, {"specialist", "duty_manager"}),
    "live.list_events": Rule(API, {"specialist", "duty_manager"}),  # the worklist's
    "api.create_referral": Rule(API, {"referrer"}),
    "api.list_referrals": Rule(API, {"signed_in"}),  # each sees only their own (test_access)

    # One referral: seeing it
    "referrals.show": Rule(LOGIN, {"sees_referral"}),
    "referrals.status": Rule(LOGIN, {"sees_referral"}),
    # Live streams: the session only (401, never a redirect, when there is none).
    "live.referral_events": Rule(API, {"sees_referral"}),
    "api.get_referral": Rule(API, {"sees_referral"}),
    "api_fhir.referral_bundle": Rule(API, {"sees_referral"}),
    "records.download": Rule(LOGIN, {"sees_referral"}),  # no record yet: 404 past the check
    "review.review": Rule(LOGIN, {"sees_referral"}),
    "api_images.list_studies": Rule(API, {"sees_referral"}),
    "api_images.rendered": Rule(API, {"sees_referral"}),  # no such study: 404 past the check
    "api_images.rendered_series": Rule(API, {"sees_referral"}),

    # One referral: acting on it (the matrix posts a message with no text: 422)
    "referrals.act": Rule(LOGIN, {"clinicians"}),
    "api.act": Rule(API, {"clinicians"}),
    "api.post_message": Rule(API, {"clinicians"}),
    "api.list_messages": Rule(API, {"sees_referral"}),
    # The thread's form (a message with no text and no photo: 422)
    "referrals.send_message": Rule(LOGIN, {"clinicians"}),
    # Read receipts: whoever may see the thread reports what was on their screen (an
    # empty body names no message: 422)
    "referrals.read_messages": Rule(LOGIN, {"sees_referral"}),
    # Deciding: the test referral is not accepted yet, so the state table answers 409
    # to all who may see it, before it asks who they are (test_state_machine has who
    # may decide); those who may not see it are refused first.
    "api.decide": Rule(API, {"sees_referral"}),
    "api.addendum": Rule(API, {"sees_referral"}),
    "review.toggle_key_image": Rule(LOGIN, {"clinicians"}),
    # Linking images: the referrer, or the specialist once assigned (nobody is yet)
    "review.search": Rule(LOGIN, {"referrer:own"}),
    "review.link": Rule(LOGIN, {"referrer:own"}, form={"study": f"PIL|{STUDY}"}),
    "review.upload": Rule(LOGIN, {"referrer:own"}),
    # a study offered after it arrived: no offer exists here, so 404 past the check
    "review.link_offered": Rule(LOGIN, {"referrer:own"}),
    "api_images.link_studies": Rule(API, {"referrer:own"},
                                    json={"hospital": "PIL", "study_uids": [STUDY]}),
    "api_images.search_studies": Rule(API, {"referrer", "specialist", "duty_manager"}),

    # Paging
    "paging.inbox": Rule(LOGIN, {"referrer", "specialist", "duty_manager", "admin"}),
    # The installable app: its manifest and service worker are public (no data in them).
    "push.manifest": Rule(PUBLIC, {"signed_in"}),
    "push.service_worker": Rule(PUBLIC, {"signed_in"}),
    # A browser subscribes to push pages for its own user: those with a pager.
    "push.subscribe": Rule(LOGIN, {"referrer", "specialist", "duty_manager", "admin"}),
    "push.unsubscribe": Rule(LOGIN, {"referrer", "specialist", "duty_manager", "admin"}),
    "paging.accept_link": Rule(LOGIN, {"specialist:hub"}),  # a link sent to them
    "webhooks.inbound_sms": Rule(SIGNED, form={"MessageSid": "SM" + "0" * 32,
                                               "From": "+447700900999", "Body": "hello"}),
    "webhooks.status": Rule(SIGNED, form={"MessageSid": "SM" + "0" * 32,
                                          "MessageStatus": "delivered"}),
    "webhooks.voice": Rule(SIGNED),

    # Audit
    "audit.dashboard": Rule(LOGIN, {"audit_lead"}),
    "audit.export_referrals": Rule(LOGIN, {"audit_lead"}),
    "audit.export_access_log": Rule(LOGIN, {"audit_lead"}),
    "audit.export_ssnap": Rule(LOGIN, {"audit_lead"}),
    "audit.export_nmtr": Rule(LOGIN, {"audit_lead"}),

    # Admin
    "admin.index": Rule(LOGIN, {"admin"}),
    "admin.hospitals": Rule(LOGIN, {"admin"}),
    "admin.users": Rule(LOGIN, {"admin"}),
    "admin.set_active": Rule(LOGIN, {"admin"}),
    "admin.reset_password": Rule(LOGIN, {"admin"}),
    "admin.reset_two_factor": Rule(LOGIN, {"admin"}),
    "admin.rota_page": Rule(LOGIN, {"admin"}),
    "admin.status": Rule(LOGIN, {"admin"}),
    "admin.run_integrity_check": Rule(LOGIN, {"admin"}),
    "admin.escalation_policies": Rule(LOGIN, {"admin"}),
    "admin.edit_escalation": Rule(LOGIN, {"admin"}),
    "admin_pacs.index": Rule(LOGIN, {"admin"}),
    # An address that is not a DICOMweb root: 422, nothing saved.
    "admin_pacs.edit": Rule(LOGIN, {"admin"}, form={"base_url": "not-a-url"}),
    "admin_pacs.test": Rule(LOGIN, {"admin"}),  # PIL has no PACS: 404 past the check
}
