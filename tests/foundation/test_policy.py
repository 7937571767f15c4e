"""The access policy lives in workflow/accounts/policy.py, and only there."""

import re
from pathlib import Path

import pytest
from flask_login import AnonymousUserMixin

from models import Role
from views import NAV_ITEMS
from workflow.accounts import policy
from workflow.errors import NotAllowed

ROOT = Path(__file__).resolve().parents[2]

# Who may do what, written out as the issue and README describe it.
EXPECTED = {
    # The hub's on-call numbers: for clinicians, not for the audit lead or the admin.
    Role.REFERRER: {"referral.raise", "referral.list", "pager.inbox", "oncall.numbers"},
    Role.SPECIALIST: {"referral.list", "worklist.view", "pager.inbox", "oncall.numbers"},
    Role.AUDIT_LEAD: {"audit.view", "audit.export", "referral.list"},
    Role.ADMIN: {"admin.manage", "referral.list", "pager.inbox"},
    Role.DUTY_MANAGER: {"referral.list", "worklist.view", "pager.inbox", "oncall.numbers"},
}


def test_each_role_holds_exactly_its_permissions(app, make_user):
    for role, expected in EXPECTED.items():
        user = make_user(roles=[role])
        held = {p for p in policy.PERMISSIONS if policy.allowed(user, p)}
        assert held == expected, role


def test_a_user_with_two_roles_holds_both_sets(app, make_user):
    user = make_user(roles=["referrer", "audit_lead"])
    held = {p for p in policy.PERMISSIONS if policy.allowed(user, p)}
    assert held == EXPECTED[Role.REFERRER] | EXPECTED[Role.AUDIT_LEAD]


def test_a_deactivated_or_anonymous_user_holds_nothing(app, make_user):
    from workflow.accounts.accounts import set_active

    admin = make_user(roles=["admin"])
    set_active(admin, False)
    for user in (admin, AnonymousUserMixin(), None):
        assert not any(policy.allowed(user, p) for p in policy.PERMISSIONS), user


def test_require_raises_not_allowed_naming_the_permission(app, make_user):
    referrer = make_user(roles=["referrer"])
    policy.require(referrer, "referral.raise")
    with pytest.raises(NotAllowed, match="admin.manage"):
        policy.require(referrer, "admin.manage")


def test_an_unknown_permission_is_an_error_not_a_silent_answer(app, make_user):
    with pytest.raises(KeyError):
        policy.allowed(make_user(roles=["admin"]), "admin.manaeg")


def _source_files():
    for folder, pattern in (("views", "*.py"), ("templates", "*.html")):
        for path in sorted((ROOT / folder).rglob(pattern)):
            yield path, path.read_text(encoding="utf-8")


PERMISSION_USE = re.compile(
    r"""(?:requires|require|allowed|can)\(\s*(?:current_user\s*,\s*)?["']([\w.]+)["']""")


def test_every_permission_the_views_name_is_defined():
    named = set()
    for _path, text in _source_files():
        named.update(PERMISSION_USE.findall(text))
    named.update(permission for _e, _l, permission in NAV_ITEMS)
    assert len(named) >= 5
    assert named - set(policy.PERMISSIONS) == set()


# A role looked at directly: user.role == ..., 'admin' in user.roles, has_role(...), Role.X.
ROLE_CHECK = re.compile(
    r"""\.role\s*==|\bin\s+[\w.]*\broles\b|\broles\s*&|has_role\(|\bRole\.[A-Z_]+""")
# Known role checks outside the policy module, each to be moved into workflow/.
# (path, line text) so that any new one fails this test.
KNOWN: set[tuple[str, str]] = set()  # (file, line) of an accepted exception


def test_views_and_templates_leave_role_checks_to_the_policy_module():
    found = set()
    for path, text in _source_files():
        for line in text.splitlines():
            if ROLE_CHECK.search(line):
                found.add((str(path.relative_to(ROOT)), line.strip()))
    assert found - KNOWN == set()


def test_the_role_check_scan_catches_what_it_should():
    caught = ['if current_user.role == "admin":', "{% if 'admin' in current_user.roles %}",
              "if user.has_role(Role.ADMIN):", "if user.roles & {'admin'}:"]
    passed = ['{{ current_user.roles|sort|join(", ") }}', "roles=form.roles.data,",
              'if policy.allowed(current_user, "admin.manage"):']
    assert all(ROLE_CHECK.search(line) for line in caught)
    assert not any(ROLE_CHECK.search(line) for line in passed)
