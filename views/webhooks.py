"""Twilio webhooks: inbound SMS, the page call's TwiML and keypress, status callbacks.

Every request must carry a valid X-Twilio-Signature for the URL Twilio was given
(PUBLIC_BASE_URL + path), so forgeries get 403 and the app works behind a proxy.
Without TWILIO_AUTH_TOKEN the webhooks answer 503: they cannot be verified.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request, url_for
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from extensions import csrf
from integrations.pager.webhooks import gather_twiml, verify_twilio_signature
from views import bodies
from views.access import client_address
from workflow import access_log
from workflow.paging import replies as pager_replies
from workflow.paging import reply_codes
from workflow.referrals.access import MAX_ID

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")
csrf.exempt(bp)


def _twiml(body: str) -> Response:
    return Response(body, mimetype="application/xml")


@bp.before_request
def _verify_signature():
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    if not token:
        return {"error": "Twilio webhooks are disabled: TWILIO_AUTH_TOKEN is not set"}, 503
    path = request.full_path if request.query_string else request.path
    signature = request.headers.get("X-Twilio-Signature", "")
    if not verify_twilio_signature(token, current_app.config["PUBLIC_BASE_URL"], path,
                                   request.form, signature):
        access_log.record("webhook.twilio", "denied", address=client_address(),
                          detail=f"bad signature on {request.path}")
        return {"error": "invalid Twilio signature"}, 403
    bodies.check_json_body()  # signed: only now is a body worth reading
    return None


@bp.post("/sms")
def inbound_sms():
    reply = pager_replies.sms_reply(request.form.get("MessageSid", ""),
                                    request.form.get("From", ""), request.form.get("Body", ""))
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return _twiml(str(response))


@bp.route("/voice", methods=["GET", "POST"])
def voice():
    form = request.values
    try:
        delivery_id = int(request.args.get("delivery", ""))
    except ValueError:
        return {"error": "delivery is missing"}, 400
    if not 1 <= delivery_id <= MAX_ID:
        return {"error": f"delivery must be a page id from 1 to {MAX_ID}"}, 400
    call_sid = form.get("CallSid", "")
    answered_by = form.get("AnsweredBy", "")
    if answered_by.startswith("machine") or answered_by == "fax":
        pager_replies.status_callback(call_sid, "in-progress", answered_by)
        response = VoiceResponse()
        response.hangup()
        return _twiml(str(response))
    digits = form.get("Digits")
    if digits is not None:
        said = pager_replies.keypress(call_sid, delivery_id, digits)
        response = VoiceResponse()
        response.say(said)
        response.hangup()
        return _twiml(str(response))
    action = current_app.config["PUBLIC_BASE_URL"] + url_for("webhooks.voice",
                                                             delivery=delivery_id)
    return _twiml(gather_twiml(_call_prompt(delivery_id), action))


def _call_prompt(delivery_id: int) -> str:
    from extensions import db
    from models import Delivery

    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        return "An urgent goldenhour referral is waiting."
    code = reply_codes.reply_code(delivery.referral_id)
    said = delivery.text.replace(f"Open the link or reply 1 or {code}", "Press 1")
    return f"{said} Its reply code is {reply_codes.spoken(code)}."


@bp.post("/status")
def status():
    form = request.form
    sid = form.get("MessageSid") or form.get("CallSid") or ""
    state = form.get("MessageStatus") or form.get("CallStatus") or ""
    pager_replies.status_callback(sid, state, form.get("AnsweredBy", ""))
    return "", 200
