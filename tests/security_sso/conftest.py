"""Single sign-on against the test identity provider (tests/services/oidc.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.services.oidc import REDIRECT_URI


@pytest.fixture
def app_config(idp) -> dict:
    return idp.app_config()


@pytest.fixture
def start_sso(client):
    """start_sso(next=None) -> the identity provider's authorization URL the app sent
    the browser to (the app's sign-in button followed)."""

    def start(next_url: str | None = None) -> str:
        answer = client.get("/login/sso", query_string={"next": next_url} if next_url else {})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return answer.headers["Location"]

    return start


@pytest.fixture
def come_back(client):
    """come_back(url) -> the app's answer when the browser follows the provider back to
    ``url`` (which must be the registered redirect URI)."""

    def back(url: str):
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
        return client.get(f"{parts.path}?{parts.query}")

    return back


@pytest.fixture
def sso_sign_in(start_sso, come_back, idp):
    """sso_sign_in(account) -> the app's answer at the end of a whole sign-in."""

    def sign_in(account, next_url: str | None = None):
        return come_back(idp.sign_in(start_sso(next_url), account))

    return sign_in


def open_sessions() -> int:
    from extensions import db
    from models import LoginSession

    return db.session.scalar(select(func.count(LoginSession.id))
                             .where(LoginSession.ended_at.is_(None)))


def sso_log() -> list[tuple[str, str, str]]:
    """(outcome, email, detail) of every login.sso access-log row, oldest first."""
    from extensions import db
    from models import AccessLog

    db.session.expire_all()
    return [(r.outcome, r.email, r.detail) for r in db.session.scalars(
        select(AccessLog).where(AccessLog.action == "login.sso").order_by(AccessLog.id))]
