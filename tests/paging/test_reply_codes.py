"""Replies that cannot be ambiguous: a page names its referral's code, a bare "1" with
two referrals waiting accepts nothing and asks which, a code accepts the one it names."""

import pytest

from tests.paging.helpers import deliveries, raise_stroke, run_sweep
from tests.paging.test_webhooks import (
    app_config,  # noqa: F401 - the same Twilio set-up
    night_registrar,
    post,
    sign,
    state_of,
)
from workflow.paging import reply_codes

pytestmark = [pytest.mark.prism, pytest.mark.clock(tick=True)]


def reply(client, body, n):
    params = {"MessageSid": f"SM{n:032d}", "From": night_registrar().phone, "Body": body}
    response = post(client, "/webhooks/twilio/sms", params)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def two_waiting():
    first = raise_stroke(question="First patient")
    run_sweep()
    second = raise_stroke(question="Second patient")
    run_sweep()
    return first, second


def test_each_page_names_its_referral_and_its_code(network, twilio, clock):
    first, second = two_waiting()
    bodies = [m.form["Body"][0] for m in twilio.sent("Messages")]
    for referral in (first, second):
        code = reply_codes.reply_code(referral.id)
        assert any(f"reply 1 or {code} to accept {referral.reference}" in b for b in bodies)
    assert reply_codes.reply_code(first.id) != reply_codes.reply_code(second.id)


def test_a_bare_1_with_two_referrals_waiting_accepts_nothing_and_asks_which(
        network, client, clock):
    first, second = two_waiting()
    said = reply(client, "1", 1)
    assert "Nothing was accepted" in said
    for referral in (first, second):
        assert f"{reply_codes.reply_code(referral.id)} for {referral.reference}" in said
    assert state_of(first.id) == state_of(second.id) == "awaiting_specialist"


def test_the_code_accepts_the_referral_it_names_and_only_that_one(network, client, clock):
    first, second = two_waiting()
    said = reply(client, reply_codes.reply_code(first.id).lower(), 2)
    assert f"Accepted {first.reference}" in said
    assert state_of(first.id) == "under_review"
    assert state_of(second.id) == "awaiting_specialist"
    # Now only the second waits: a bare 1 means it.
    assert f"Accepted {second.reference}" in reply(client, "YES", 3)


def test_a_code_that_names_no_waiting_referral_accepts_nothing(network, client, clock):
    first, second = two_waiting()
    taken = {reply_codes.reply_code(first.id), reply_codes.reply_code(second.id)}
    other = next(f"{letter}{digit}" for letter in reply_codes.LETTERS for digit in range(10)
                 if f"{letter}{digit}" not in taken)
    said = reply(client, other, 4)
    assert f"No open page has code {other}" in said and "Nothing was accepted" in said
    assert state_of(first.id) == state_of(second.id) == "awaiting_specialist"


def test_with_one_referral_waiting_a_bare_1_still_accepts_it(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    assert f"Accepted {referral.reference}" in reply(client, "1", 5)


@pytest.mark.parametrize("body, code", [("A7", "A7"), (" a 7 ", "A7"), ("1 B3", "B3"),
                                        ("accept c-2", "C2"), ("Z9.", "Z9"), ("1", None),
                                        ("YES", None), ("I1", None), ("AB", None)])
def test_what_reads_as_a_code(body, code):
    assert reply_codes.code_in(body) == code


def test_codes_are_a_letter_and_a_digit_without_i_or_o():
    codes = {reply_codes.reply_code(n) for n in range(1, 241)}
    assert len(codes) == 240
    assert not any(c[0] in "IO" for c in codes)


def test_the_call_reads_the_code(network, client, clock):
    referral = raise_stroke()
    run_sweep()
    code = reply_codes.reply_code(referral.id)
    calls = [d for d in deliveries(referral.id) if d.channel == "voice"]
    assert calls, "the first step pages by voice too"
    path = f"/webhooks/twilio/voice?delivery={calls[0].id}"
    params = {"CallSid": "CA" + "7" * 32}
    twiml = client.post(path, data=params, csrf=False,
                        headers={"X-Twilio-Signature": sign(path, params)}).get_data(as_text=True)
    assert f"Its reply code is {reply_codes.spoken(code)}" in twiml
    assert "Press 1 to accept" in twiml and referral.reference in twiml

