"""Single sign-on by OpenID Connect, end to end against a real provider (oidc-provider
behind the recording proxy of tests/services/oidc.py): who gets in, and every way a
sign-in is refused with a message and no session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from tests.security_sso.conftest import open_sessions, sso_log
from tests.services.oidc import ADMIN, AUDIT, REFERRER, STRANGER, UNVERIFIED, tampered

pytestmark = pytest.mark.oidc


def _user(email):
    from extensions import db
    from models import User

    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def _signed_out(client) -> bool:
    answer = client.get("/")
    return answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_the_sign_in_page_offers_the_button(client):
    page = client.get("/login?next=/admin/").get_data(as_text=True)

    assert "Sign in with NHS CIS2</a>" in page
    assert 'href="/login/sso?next=' in page and "admin" in page.split("/login/sso?next=")[1][:12]


def test_a_whole_sign_in_lands_on_the_home_page_as_the_right_user(network, client, sso_sign_in):
    answer = sso_sign_in(REFERRER)

    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Hello, Dr Rhys Referrer" in home
    assert open_sessions() == 1
    assert _user(REFERRER.email).oidc_subject == REFERRER.sub
    (outcome, email, detail), = sso_log()
    assert (outcome, email) == ("ok", REFERRER.email)
    assert f"subject {REFERRER.sub}, matched by email, subject linked" in detail


def test_the_authorization_request_uses_pkce_state_and_nonce(network, start_sso, idp):
    query = parse_qs(urlsplit(start_sso()).query)

    assert query["response_type"] == ["code"] and query["client_id"] == ["goldenhour"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 30 and len(query["nonce"][0]) >= 30
    assert "openid" in query["scope"][0].split()


def test_it_goes_on_to_the_page_asked_for_before_sign_in(network, sso_sign_in):
    answer = sso_sign_in(ADMIN, next_url="/admin/")

    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"


def test_a_linked_person_signs_in_by_subject_even_after_their_email_changes(
        network, client, sso_sign_in):
    from extensions import db

    sso_sign_in(AUDIT)
    client.logout()
    user = _user(AUDIT.email)
    user.email = "aisha.audit@em.demo.nhs.uk"
    db.session.commit()

    answer = sso_sign_in(AUDIT)

    assert answer.status_code == 302
    assert "Hello, Aisha Audit" in client.get("/").get_data(as_text=True)
    assert "matched by subject" in sso_log()[-1][2]


def test_a_bad_state_is_refused_before_any_token_request(
        network, client, start_sso, come_back, idp):
    back = idp.sign_in(start_sso(), REFERRER)
    parts = urlsplit(back)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = "an-attacker-s-own-state-" + "x" * 20

    answer = come_back(parts._replace(query=urlencode(query)).geturl())

    assert answer.status_code == 403
    assert "did not start in this browser" in answer.get_data(as_text=True)
    assert idp.token_requests() == []  # the code was never exchanged
    assert open_sessions() == 0 and _signed_out(client)
    assert sso_log()[-1][0] == "denied" and sso_log()[-1][2].startswith("state:")
    assert _user(REFERRER.email).oidc_subject is None


def test_a_callback_without_a_sign_in_started_in_this_browser_is_refused(
        network, app, client, start_sso, come_back, idp):
    back = idp.sign_in(start_sso(), REFERRER)
    stranger = app.test_client()  # another browser: no pending sign-in in its session

    answer = stranger.get(f"{urlsplit(back).path}?{urlsplit(back).query}")

    assert answer.status_code == 403 and "(state)" in answer.get_data(as_text=True)
    assert idp.token_requests() == [] and open_sessions() == 0


def test_the_state_is_good_for_one_use_only(network, client, start_sso, come_back, idp):
    back = idp.sign_in(start_sso(), REFERRER)
    assert come_back(back).status_code == 302
    client.logout()

    again = come_back(back)

    assert again.status_code == 403 and "(state)" in again.get_data(as_text=True)
    assert open_sessions() == 0


def test_an_id_token_issued_for_another_client_is_refused(network, client, start_sso,
                                                          come_back, idp):
    authorization = start_sso()
    nonce = parse_qs(urlsplit(authorization).query)["nonce"][0]
    # Genuine, signed by the provider, this sign-in's nonce: only the audience is wrong.
    idp.swap_id_token(idp.id_token_for(REFERRER, nonce=nonce))

    answer = come_back(idp.sign_in(authorization, REFERRER))

    assert answer.status_code == 403
    assert "the ID token was for another client (aud)" in answer.get_data(as_text=True)
    assert open_sessions() == 0 and _signed_out(client)
    assert sso_log()[-1][0] == "denied" and sso_log()[-1][2].startswith("aud:")


def test_an_id_token_from_another_sign_in_is_refused(network, client, start_sso, come_back,
                                                      idp):
    from tests.services.oidc import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

    # Genuine and for goldenhour, but issued to an earlier sign-in (a replayed token).
    replayed = idp.id_token_for(REFERRER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                redirect_uri=REDIRECT_URI, nonce="an-earlier-sign-in-nonce")
    authorization = start_sso()
    idp.swap_id_token(replayed)

    answer = come_back(idp.sign_in(authorization, REFERRER))

    assert answer.status_code == 403
    assert "not issued for this sign-in (nonce)" in answer.get_data(as_text=True)
    assert open_sessions() == 0 and sso_log()[-1][2].startswith("nonce:")


def test_a_callback_naming_another_issuer_is_refused_before_any_token_request(
        network, client, start_sso, come_back, idp):
    back = idp.sign_in(start_sso(), REFERRER)
    parts = urlsplit(back)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["iss"] == idp.issuer  # RFC 9207: the provider names itself
    query["iss"] = "https://idp.attacker.example"

    answer = come_back(parts._replace(query=urlencode(query)).geturl())

    assert answer.status_code == 403 and "(iss)" in answer.get_data(as_text=True)
    assert idp.token_requests() == [] and open_sessions() == 0


def test_an_expired_id_token_is_refused(network, client, start_sso, come_back, idp,
                                        time_machine):
    back = idp.sign_in(start_sso(), REFERRER)
    # The provider issues an hour's ID token now; the app reads it two hours later.
    time_machine.move_to(datetime.now(UTC) + timedelta(hours=2), tick=True)

    answer = come_back(back)

    assert answer.status_code == 403
    assert "the ID token has expired (exp)" in answer.get_data(as_text=True)
    assert len(idp.token_requests()) == 1  # a real token, really exchanged
    assert open_sessions() == 0 and _signed_out(client)
    assert sso_log()[-1][2].startswith("exp:")


def test_an_id_token_with_a_changed_signature_is_refused(network, client, sso_sign_in, idp):
    idp.tamper_signature()

    answer = sso_sign_in(REFERRER)

    assert answer.status_code == 403
    assert "signature does not verify" in answer.get_data(as_text=True)
    assert open_sessions() == 0 and _signed_out(client)
    assert sso_log()[-1][2].startswith("signature:")
    assert _user(REFERRER.email).oidc_subject is None


def test_the_verifier_refuses_a_tampered_token_fetched_from_the_real_provider(idp):
    from integrations.oidc import OIDCError, OIDCSettings, OpenIDProvider
    from tests.services.oidc import OTHER_CLIENT_ID, OTHER_CLIENT_SECRET

    provider = OpenIDProvider(OIDCSettings(idp.issuer, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET))
    token = idp.id_token_for(REFERRER, nonce="n-0123456789")
    assert provider.verify(token, "n-0123456789").subject == REFERRER.sub

    with pytest.raises(OIDCError) as refused:
        provider.verify(tampered(token), "n-0123456789")
    assert refused.value.reason == "signature"


def test_an_unknown_person_is_refused_and_nothing_is_created(network, client, sso_sign_in):
    from extensions import db
    from models import User

    people = db.session.scalar(select(func.count(User.id)))

    answer = sso_sign_in(STRANGER)

    assert answer.status_code == 403
    assert "No goldenhour account for jo@example.nhs.uk: ask your admin." in \
        answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count(User.id))) == people
    assert open_sessions() == 0 and _signed_out(client)
    assert sso_log()[-1][:2] == ("denied", STRANGER.email)
    assert sso_log()[-1][2].startswith("unknown user:")


def test_a_deactivated_person_is_refused(network, client, sso_sign_in):
    from workflow.accounts.accounts import set_active

    set_active(_user(REFERRER.email), False)

    answer = sso_sign_in(REFERRER)

    assert answer.status_code == 403
    assert f"The goldenhour account for {REFERRER.email} has been deactivated" in \
        answer.get_data(as_text=True)
    assert open_sessions() == 0 and _signed_out(client)
    assert sso_log()[-1][2].startswith("deactivated:")
    assert _user(REFERRER.email).oidc_subject is None


def test_an_email_the_provider_has_not_verified_signs_nobody_in(network, client, sso_sign_in):
    answer = sso_sign_in(UNVERIFIED)

    assert answer.status_code == 403
    assert f"has not verified {UNVERIFIED.email}" in answer.get_data(as_text=True)
    assert open_sessions() == 0 and _user(UNVERIFIED.email).oidc_subject is None


def test_an_account_linked_to_another_identity_is_not_taken_over(network, client,
                                                                  sso_sign_in):
    from extensions import db

    user = _user(REFERRER.email)
    user.oidc_subject = "someone-else-at-the-provider"
    db.session.commit()

    answer = sso_sign_in(REFERRER)

    assert answer.status_code == 403
    assert "linked to another single sign-on identity" in answer.get_data(as_text=True)
    assert open_sessions() == 0
