"""Twilio webhooks: signatures, replays, replies, keypresses, status callbacks, page links."""

import threading
from datetime import timedelta

import pytest
from twilio.request_validator import RequestValidator

from extensions import db
from models import Delivery, Referral
from tests.paging.helpers import deliveries, paged_people, raise_stroke, run_sweep, user
from tests.services.prism import AUTH_TOKEN

pytestmark = [pytest.mark.prism, pytest.mark.clock(tick=True)]
PUBLIC = "https://goldenhour.example.nhs.uk"


@pytest.fixture
def app_config(twilio):
    return {**twilio.app_config(), "PUBLIC_BASE_URL": PUBLIC}


def sign(path: str, params: dict, base: str = PUBLIC, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(base + path, params)


def post(client, path, params, signature=None, **kw):
    headers = {} if signature is False else {
        "X-Twilio-Signature": signature or sign(path, params)}
    return client.post(path, data=params, headers=headers, csrf=False, **kw)


def night_registrar():
    return user("stroke.night@qmc.demo.nhs.uk")


def state_of(referral_id):
    db.session.expire_all()
    return db.session.get(Referral, referral_id).state


def test_a_forged_webhook_is_refused(network, client):
    params = {"MessageSid": "SM" + "1" * 32, "From": "+447700900001", "Body": "1"}
    assert post(client, "/webhooks/twilio/sms", params, signature=False).status_code == 403
    assert post(client, "/webhooks/twilio/sms", params, signature="bm90IGl0").status_code == 403
    tampered = sign("/webhooks/twilio/sms", params)
    assert post(client, "/webhooks/twilio/sms", {**params, "Body": "YES"},
                signature=tampered).status_code == 403
    assert post(client, "/webhooks/twilio/sms", params).status_code == 200


def test_behind_a_proxy_the_public_url_is_what_counts(network, client):
    params = {"MessageSid": "SM" + "2" * 32, "From": "+447700900001", "Body": "hello"}
    # The app sees http://localhost; Twilio signed the https public address.
    assert post(client, "/webhooks/twilio/sms", params).status_code == 200
    local = sign("/webhooks/twilio/sms", params, base="http://localhost")
    assert post(client, "/webhooks/twilio/sms", params, signature=local).status_code == 403
    wrong_port = sign("/webhooks/twilio/sms", params, base=PUBLIC + ":8443")
    assert post(client, "/webhooks/twilio/sms", params, signature=wrong_port).status_code == 403


def test_without_an_auth_token_webhooks_are_off(network, app, client):
    app.config["TWILIO_AUTH_TOKEN"] = ""
    params = {"MessageSid": "SM" + "3" * 32, "From": "+447700900001", "Body": "1"}
    response = post(client, "/webhooks/twilio/sms", params)
    assert response.status_code == 503
    assert "TWILIO_AUTH_TOKEN" in response.json["error"]


def test_a_reply_of_1_accepts_and_stops_the_escalation(network, client, twilio, clock):
    referral = raise_stroke()
    run_sweep()
    [sms] = twilio.sent("Messages")
    assert "/ack/" in sms.form["Body"][0] and "Pilgrim" in sms.form["Body"][0]
    reply = {"MessageSid": "SM" + "4" * 32, "From": night_registrar().phone, "Body": " yes "}
    response = post(client, "/webhooks/twilio/sms", reply)
    assert response.status_code == 200
    assert f"Accepted {referral.reference}" in response.get_data(as_text=True)
    assert state_of(referral.id) == "under_review"
    db.session.expire_all()
    ack = [e for e in db.session.get(Referral, referral.id).events if e.kind == "acknowledge"]
    assert ack[0].data == {"via": "sms"}
    calls_before = len(twilio.sent("Calls"))
    for _ in range(3):
        run_sweep(at=None)
    # Only the referrer's "accepted" SMS went out after the reply; no more pages.
    later = twilio.sent("Messages")[1:]
    assert [m.form["To"][0] for m in later] == [user("referrer@pil.demo.nhs.uk").phone]
    assert len(twilio.sent("Calls")) == calls_before


def test_a_replayed_reply_changes_nothing_more(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    reply = {"MessageSid": "SM" + "5" * 32, "From": night_registrar().phone, "Body": "1"}
    statuses = [post(client, "/webhooks/twilio/sms", reply).status_code for _ in range(5)]
    assert statuses == [200] * 5
    db.session.expire_all()
    kinds = [e.kind for e in db.session.get(Referral, referral.id).events]
    assert kinds.count("acknowledge") == 1


def test_simultaneous_replays_change_state_once(network, app, clock):
    referral = raise_stroke()
    run_sweep()
    [sms] = [d for d in deliveries(referral.id) if d.channel == "sms"]
    params = {"MessageSid": sms.provider_id, "MessageStatus": "undelivered"}
    signature = sign("/webhooks/twilio/status", params)
    db.session.commit()  # the test holds no SQLite lock while the requests race
    barrier, codes = threading.Barrier(5), []

    def fire():
        client = app.test_client()
        barrier.wait()
        codes.append(post(client, "/webhooks/twilio/status", params, signature).status_code)

    threads = [threading.Thread(target=fire) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 5
    [after] = [d for d in deliveries(referral.id) if d.channel == "sms"]
    assert after.status == "undelivered"


def test_undelivered_sms_and_unanswered_call_page_tier_two_at_once(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    for d in deliveries(referral.id):
        kind = "MessageSid" if d.channel == "sms" else "CallSid"
        status = {"sms": ("MessageStatus", "undelivered"),
                  "voice": ("CallStatus", "no-answer")}[d.channel]
        params = {kind: d.provider_id, status[0]: status[1]}
        assert post(client, "/webhooks/twilio/status", params).status_code == 200
    run_sweep()  # no 5-minute wait
    assert paged_people(referral.id, 1) == {"stroke.consultant@qmc.demo.nhs.uk"}
    failed = {d.channel: d.error for d in deliveries(referral.id) if d.page.step == 0}
    assert failed == {"sms": "the phone network could not deliver it",
                      "voice": "nobody answered the call"}


def test_a_voicemail_is_not_an_answer(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    [call] = [d for d in deliveries(referral.id) if d.channel == "voice"]
    path = f"/webhooks/twilio/voice?delivery={call.id}"
    params = {"CallSid": call.provider_id, "AnsweredBy": "machine_end_beep"}
    response = post(client, path, params)
    assert response.status_code == 200 and "<Hangup" in response.get_data(as_text=True)
    [after] = [d for d in deliveries(referral.id) if d.channel == "voice"]
    assert after.status == "machine"
    assert state_of(referral.id) == "awaiting_specialist"


def test_a_human_pressing_1_on_the_call_accepts(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    [call] = [d for d in deliveries(referral.id) if d.channel == "voice"]
    path = f"/webhooks/twilio/voice?delivery={call.id}"
    prompt = post(client, path, {"CallSid": call.provider_id, "AnsweredBy": "human"})
    twiml = prompt.get_data(as_text=True)
    assert "<Gather" in twiml and 'numDigits="1"' in twiml and "Press 1" in twiml
    assert "Smith" not in twiml
    pressed = post(client, path, {"CallSid": call.provider_id, "Digits": "1"})
    assert "Accepted" in pressed.get_data(as_text=True)
    assert state_of(referral.id) == "under_review"


def test_a_status_never_moves_backwards(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    [sms] = [d for d in deliveries(referral.id) if d.channel == "sms"]
    for status in ("delivered", "sent", "queued"):
        post(client, "/webhooks/twilio/status",
             {"MessageSid": sms.provider_id, "MessageStatus": status})
    db.session.expire_all()
    assert db.session.get(Delivery, sms.id).status == "delivered"


def test_the_page_link_needs_sign_in_works_once_and_only_for_its_owner(network, app, clock):
    referral = raise_stroke()
    run_sweep()
    [sms] = [d for d in deliveries(referral.id) if d.channel == "sms"]
    path = sms.link.replace(PUBLIC, "")
    anonymous = app.test_client()
    assert "/login" in anonymous.get(path).location
    other = app.test_client()
    other.login("stroke.day@qmc.demo.nhs.uk", "goldenhour-demo")
    assert other.get(path).status_code == 403
    owner = app.test_client()
    owner.login("stroke.night@qmc.demo.nhs.uk", "goldenhour-demo")
    assert "I'll take this referral" in owner.get(path).get_data(as_text=True)
    assert owner.post(path).status_code == 302
    assert state_of(referral.id) == "under_review"
    again = owner.get(path).get_data(as_text=True)
    assert "already been used" in again


@pytest.mark.clock(tick=False)
def test_an_expired_page_link_is_refused(network, app, clock):
    referral = raise_stroke()
    run_sweep()
    [sms] = [d for d in deliveries(referral.id) if d.channel == "sms"]
    clock.shift(timedelta(hours=7))
    owner = app.test_client()
    owner.login("stroke.night@qmc.demo.nhs.uk", "goldenhour-demo")
    response = owner.get(sms.link.replace(PUBLIC, ""))
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
