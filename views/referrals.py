"""Referral pages: raise a referral, the referrer's list, the specialist's worklist, and
the referral page with the actions the current user may take.

Routes are thin: each parses the form into the API's payload shape, calls one workflow
function and renders. The workflow checks everything again; the pages only choose what
to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from extensions import db
from models import Hospital, Referral, Specialty
from views.access import client_address, requires, visible_or_refuse
from views.bodies import takes_upload
from views.present import ACTION_PATHS, allowed_actions
from workflow import access_log
from workflow.accounts import accounts, policy
from workflow.audit import dido
from workflow.audit import records as decision_records
from workflow.errors import Conflict, DomainError, NotAllowed, NotFound, ValidationFailed
from workflow.imaging import arrivals, identity, photos, studies
from workflow.paging import history as paging_log
from workflow.paging import on_call
from workflow.referrals import access, clinical, labels, live, nhs_number, receipts, viewers
from workflow.referrals import actions as referrals
from workflow.referrals import duplicates as referral_duplicates
from workflow.referrals import input as referral_input
from workflow.referrals.clocks import referral_clocks
from workflow.referrals.states import FINAL, Outcome, State
from workflow.referrals.summary import age_on
from workflow.times import LONDON, format_local, now

bp = Blueprint("referrals", __name__)

# Events that make up the conversation between referrer and specialist.
THREAD_EVENTS = receipts.THREAD_EVENTS
# The order the action forms appear in: the likely next step first, cancel last.
ACTION_ORDER = ("acknowledge", "page-again", "decide", "request-info", "provide-info",
                "depart", "arrive", "close", "addendum", "hand-over", "messages", "cancel")
ACTION_DONE = {
    "acknowledge": "You have accepted this referral.",
    "request-info": "Your question has been sent to the referrer.",
    "provide-info": "Your answer has been sent to the specialist.",
    "decide": "The decision is recorded.",
    "addendum": "The addendum is recorded.",
    "cancel": "The referral is cancelled.",
    "depart": "Departure recorded.",
    "arrive": "Arrival recorded; the referral is closed.",
    "close": "The referral is closed.",
    "hand-over": "Handed over.",
    "messages": "Message sent.",
    "page-again": "The hub is being paged again from the first step.",
}
# The forms signed with the user's own password (or TOTP code), and the fields that carry
# it: never part of the action's input, never echoed back.
SIGNED_ACTIONS = ("decide", "addendum")
SIGNATURE_FIELDS = ("password", "totp")
# A photo message's body: the photo's limit and room for the form around it, so that a
# photo a little too large is told so on its field rather than by a 413.
PHOTO_BODY_BYTES = photos.MAX_PHOTO_BYTES + 2 * 1024 * 1024
AWAITING = (State.SUBMITTED, State.AWAITING_SPECIALIST, State.UNANSWERED)
# static/js/nhs-check.js checks the NHS number in the page, in the server's words.
NHS_CHECK = {"data-nhs-check": "", "data-msg-length": nhs_number.NOT_TEN_DIGITS,
             "data-msg-check": nhs_number.WRONG_CHECK_DIGIT}


PATIENT_KEYS = ("nhs_number", "family_name", "given_name", "birth_date", "sex", "local_number")


@bp.app_template_global()
def state_label(state: str) -> str:
    return labels.state(state)


@bp.app_template_filter("duration")
def duration(minutes: int | None) -> str:
    """Minutes as a clinician reads them: "47 min", "3 h 05 min", "-12 min" when past."""
    if minutes is None:
        return "—"
    sign, m = ("-", -minutes) if minutes < 0 else ("", minutes)
    return f"{sign}{m} min" if m < 60 else f"{sign}{m // 60} h {m % 60:02d} min"


def _log(action: str, outcome: str, referral_id: int | None = None, detail: str = "") -> None:
    access_log.record(action, outcome, user=current_user, address=client_address(),
                      referral_id=referral_id, detail=detail)


def _names(model) -> dict[str, str]:
    """code -> name of every Specialty or Hospital, by name."""
    return {row.code: row.name for row in db.session.scalars(select(model).order_by(model.name))}


def _local_input(value: datetime) -> str:
    """A UTC time as a datetime-local value (UK wall clock, to the minute)."""
    return value.astimezone(LONDON).strftime("%Y-%m-%dT%H:%M")


# --- New referral ------------------------------------------------------------------


def referral_payload(form: MultiDict) -> dict:
    """The API payload for a new referral from the form's fields (``patient.*``, and
    ``<specialty>.<key>`` for the chosen specialty's fields only)."""
    specialty = form.get("specialty", "")
    values = {}
    for f in clinical.FIELDS.get(specialty, ()):
        name = f"{specialty}.{f.key}"
        values[f.key] = form.getlist(name) if f.kind == "checks" else \
            _chosen_time(form, name) if f.kind == "datetime" else form.get(name, "")
    return {
        "specialty": specialty,
        "referring_hospital": form.get("referring_hospital", ""),
        "urgency": form.get("urgency", ""),
        "patient": {k: form.get(f"patient.{k}", "") for k in PATIENT_KEYS},
        "onset_certainty": form.get("onset_certainty", ""),
        "onset_at": _chosen_time(form, "onset_at"),
        "arrived_at": _chosen_time(form, "arrived_at"),
        "question": form.get("question", ""),
        "clinical": values,
        "separate_referral": bool(form.get("separate_referral")),
    }


def _chosen_time(form: MultiDict, name: str) -> str:
    """The field's UK time, or, for a time that happens twice (the clocks went back),
    the meaning the referrer chose: ``<name>.zone`` holds it with its offset, and
    counts only while it is for the time still in the field."""
    value, chosen = form.get(name, "").strip(), form.get(f"{name}.zone", "").strip()
    return chosen if value and chosen[:16] == value[:16] else value


def _field_errors(errors: dict[str, str], specialty: str) -> dict[str, str]:
    """Errors keyed by form field name: ``clinical.nihss`` -> ``stroke.nihss``."""
    named = {}
    for path, message in errors.items():
        if path.startswith("clinical.") and specialty:
            path = f"{specialty}.{path.removeprefix('clinical.')}"
        named[path] = message
    return named


@bp.route("/referrals/new", methods=["GET", "POST"])
@requires("referral.raise")
def new():
    """The form; "Find images" searches the network's PACS for the patient's studies and
    shows the form again with them (today's ticked); sending raises the referral and then
    links the ticked studies. A PACS that fails never stops the referral: the referral
    page says whose images could not be linked."""
    errors, status, found, duplicates = {}, 200, None, []
    if request.method == "POST":
        form = request.form
        if form.get("find_studies") or form.get("studies_searched"):
            found = _find_studies(form, errors)
        if not form.get("find_studies"):
            try:
                referral = referrals.raise_referral(current_user, referral_payload(form),
                                                    hold_duplicates=True)
            except referral_duplicates.DuplicateReferral as exc:
                db.session.rollback()
                _log("referral.raise", "failure", detail="DuplicateReferral")
                duplicates, status = exc.open_referrals, 409
            except ValidationFailed as exc:
                db.session.rollback()
                _log("referral.raise", "failure", detail="ValidationFailed")
                errors.update(_field_errors(exc.errors, form.get("specialty", "")))
                status = 422
            else:
                _log("referral.raise", "ok", referral.id)
                flash(f"Referral {referral.reference} raised. The specialist is being paged.")
                _link_ticked(referral.id, form.getlist("study"))
                return redirect(url_for("referrals.show", referral_id=referral.id))
    else:
        form = MultiDict({
            "referring_hospital": current_user.hospital.code if current_user.hospital else "",
            "urgency": "emergency",
            # Estimated unless the referrer says otherwise: never claim a precision nobody
            # checked, since the treatment windows are counted from this time.
            "onset_certainty": "estimated",
            "arrived_at": _local_input(now()),
            # In the hour that happens twice, "now" says which of the two it is.
            "arrived_at.zone": now().astimezone(LONDON).isoformat(timespec="minutes"),
        })
    # A fresh search ticks today's studies; a form sent back keeps the referrer's ticks.
    ticked = found.todays_choices() if found and form.get("find_studies") \
        else set(form.getlist("study"))
    return render_template(
        "referrals/new.html", form=form, errors=errors, specialties=_names(Specialty),
        hospitals=_names(Hospital), fields=clinical.FIELDS, sexes=referral_input.SEXES,
        certainties=labels.ONSET_CERTAINTY, max_time=_local_input(now()), found=found,
        ticked=ticked, nhs_check=NHS_CHECK, duplicates=duplicates,
    ), status


def _find_studies(form: MultiDict, errors: dict[str, str]) -> studies.SearchResult | None:
    """The PACS searched for the patient being raised (by the NHS number typed), logged
    with that reason."""
    nhs = nhs_number.normalise(form.get("patient.nhs_number", ""))[:16]
    reason = f"raising a referral for NHS {nhs or '(none)'}"
    try:
        found = studies.search_for_new_referral(
            nhs_number=nhs, local_number=form.get("patient.local_number", ""),
            accession=form.get("studies_accession", ""))
    except ValidationFailed as exc:
        _log("studies.search", "failure", detail=f"{reason}: {exc}"[:200])
        errors["studies_accession"] = ("Enter the patient's NHS number to find their images "
                                       "(with the local hospital number or an accession "
                                       "number if you have them).")
        return None
    _log("studies.search", "ok", detail=f"{reason}: {len(found.studies)} found; "
                                        f"{len(found.unavailable)} PACS unavailable")
    return found


def _link_ticked(referral_id: int, chosen: list[str]) -> None:
    if not chosen:
        return
    try:
        outcome = studies.link_chosen(referral_id, current_user, chosen)
    except (NotAllowed, NotFound) as exc:  # e.g. raised for another hospital's patient
        db.session.rollback()
        _log("studies.link", "denied", referral_id, str(exc)[:200])
        flash(f"Images not linked: {exc}.")
        return
    for _, message in outcome.problems:
        _log("studies.link", "failure", referral_id, message[:200])
        flash(f"Images not linked: {message}. Link them from this page when the PACS "
              "answers again.")
    for mismatch in outcome.mismatches:
        _log("studies.link", "failure", referral_id,
             f"patient mismatch: {mismatch.study_uid}"[:200])
        flash(f"Images not linked: {mismatch.sentence}. Check the patient; to link it "
              "anyway, link it from this page and confirm why.")
    if outcome.linked:
        _log("studies.link", "ok", referral_id, ",".join(outcome.linked)[:500])
        done = len(outcome.linked)
        flash(f"{done} stud{'y' if done == 1 else 'ies'} linked.")


# --- Lists ---------------------------------------------------------------------------


@dataclass
class Row:
    referral: Referral
    minutes: int  # since referral
    lysis_left: int | None  # minutes left in the thrombolysis window (stroke)
    lysis_closes: str | None = None  # when it closes (ISO UTC), for the ticking clock
    unread: int = 0  # thread messages the current user has not read


def _rows(query) -> list[Row]:
    at = now()
    rows = []
    found = list(db.session.scalars(query.limit(200)))
    unread = receipts.unread_counts(current_user, [r.id for r in found])
    for referral in found:
        lysis_left = lysis_closes = None
        if referral.specialty.code == "stroke" and referral.state not in FINAL:
            windows = referral_clocks(referral, at)["windows"]
            lysis_left = windows[0]["minutes_left"] if windows else None
            lysis_closes = windows[0]["closes_at"] if windows else None
        rows.append(Row(referral, int((at - referral.created_at).total_seconds() // 60),
                        lysis_left, lysis_closes, unread.get(referral.id, 0)))
    return rows


@bp.route("/referrals/mine")
@requires("referral.raise")
def mine():
    query = (select(Referral).where(Referral.referring_hospital_id == current_user.hospital_id)
             .order_by(Referral.created_at.desc(), Referral.id.desc()))
    return render_template("referrals/mine.html", rows=_rows(query), **_list_live("mine"))


@bp.route("/worklist")
@requires("worklist.view")
def worklist():
    visible = access.visible(current_user, select(Referral))
    oldest_first = (Referral.created_at, Referral.id)
    sections = [
        ("awaiting", "Awaiting a specialist",
         visible.where(Referral.state.in_(AWAITING)).order_by(*oldest_first)),
        ("mine", "Mine",
         select(Referral).where(
             Referral.assigned_specialist_id == current_user.id,
             Referral.state.not_in([*FINAL, State.INFO_REQUESTED])).order_by(*oldest_first)),
        ("info", "Info requested",
         visible.where(Referral.state == State.INFO_REQUESTED).order_by(*oldest_first)),
    ]
    return render_template("referrals/worklist.html",
                           sections=[(key, title, _rows(q)) for key, title, q in sections],
                           **_list_live("worklist"))


def _list_live(which: str) -> dict:
    """What a list page's live status needs: its stream and the mark it starts from."""
    return {"live_url": url_for("live.list_events", which=which),
            "live_mark": live.list_mark(current_user, which), "server_now": now()}


# --- The referral page ------------------------------------------------------------------



def _clinical_rows(referral: Referral) -> list[tuple[str, str]]:
    return clinical.rows(referral.specialty.code, referral.clinical, format_local)


def _colleagues(referral: Referral) -> dict[str, str]:
    """id -> name of the specialists of the referral's service it could be handed to."""
    return {str(u.id): u.name for u in access.hand_over_candidates(referral, current_user)}


def _render_page(referral: Referral, *, status: int = 200, action: str = "",
                 errors: dict | None = None, values: MultiDict | None = None,
                 problem: str = ""):
    at = now()
    actions = [a for a in ACTION_ORDER if a in allowed_actions(current_user, referral)]
    hub = referral.hub_service.hospital
    defaults = {"decide": {"destination_hospital": hub.code, "transfer_urgency": "immediate"}}
    clocks = referral_clocks(referral, at)
    for window in clocks["windows"]:
        closes = window["closes_at"]
        window["closes_local"] = format_local(datetime.fromisoformat(closes), "%a %H:%M") \
            if closes else "—"
    nhs = referral.nhs_number
    # What this page shows is delivered to its reader; marked before the live mark is
    # read, so the page's own stream does not see it as a change.
    receipts.mark_delivered(referral.id, current_user, at)
    # Before reading: a change after is seen.
    live_mark = live.referral_mark(referral.id, current_user.id, at)
    paging = paging_log.page_history(referral)
    may_call = referral.state not in FINAL and policy.allowed(current_user, "oncall.numbers")
    body = render_template(
        "referrals/show.html", referral=referral, clocks=clocks, actions=actions, hub=hub,
        identity_warnings=identity.warnings(referral),
        arriving_warnings=arrivals.still_arriving(referral),
        dido=dido.for_referral(referral) if referral.outcome == Outcome.TRANSFER else None,
        nhs_number=f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}",
        age=age_on(referral.birth_date, at.astimezone(LONDON).date()),
        clinical=_clinical_rows(referral),
        thread=[e for e in referral.events if e.kind in THREAD_EVENTS],
        receipts=receipts.for_thread(referral.id),
        # Only those in the conversation report what they read (an auditor does not).
        reports_reads=current_user.id in {u.id for u in receipts.involved(referral)},
        event_labels=labels.EVENTS, outcomes=labels.OUTCOMES,
        records=decision_records.listing(referral.id) if referral.decision else [],
        urgencies=referral_input.TRANSFER_URGENCY,
        hospitals=_names(Hospital) if "decide" in actions else {},
        colleagues=_colleagues(referral) if "hand-over" in actions else {},
        # Each action form shows its own values and errors only when it was the one sent.
        values_for=lambda name: values if name == action else MultiDict(defaults.get(name, {})),
        errors_for=lambda name: (errors or {}) if name == action else {},
        action=action, problem=problem,
        paging=paging, paging_failures=paging_log.failures(paging),
        live_mark=live_mark, server_now=at,
        on_call=on_call.on_call_now(referral, at) if may_call else [],
        involved=on_call.involved(referral, current_user.id) if may_call else [],
        also_viewing=viewers.others_viewing(referral.id, current_user.id, at),
        live_url=url_for("live.referral_events", referral_id=referral.id),
    )
    _log("referral.view", "ok", referral.id)
    return body, status


@bp.route("/referrals/<int:referral_id>")
@login_required
def show(referral_id: int):
    return _render_page(visible_or_refuse(referral_id, "referral.view"))


@bp.route("/referrals/<int:referral_id>/status.json")
@login_required
def status(referral_id: int):
    """The state only (no patient data), polled by the referral page."""
    referral = visible_or_refuse(referral_id, "referral.status")
    return {
        "id": referral.id, "state": referral.state, "label": state_label(referral.state),
        "version": referral.version, "outcome": referral.outcome,
        "assigned_specialist": referral.assigned_specialist.name
        if referral.assigned_specialist else None,
    }


@bp.route("/referrals/<int:referral_id>/<action>", methods=["POST"])
@login_required
def act(referral_id: int, action: str):
    """One action form (names as in the API: acknowledge, decide, hand-over...); abort(404)
    for any other name."""
    if action not in ACTION_PATHS.values():
        abort(404)
    visible_or_refuse(referral_id, f"referral.{action}")
    payload = {k: v for k, v in request.form.items()
               if k != "csrf_token" and k not in SIGNATURE_FIELDS}
    if action in SIGNED_ACTIONS:
        payload["signature"] = {k: request.form[k] for k in SIGNATURE_FIELDS
                                if k in request.form}
    try:
        referral = referrals.perform(action, referral_id, current_user, payload)
    except DomainError as exc:
        db.session.rollback()
        refused = isinstance(exc, NotAllowed | accounts.SignatureRefused)
        _log(f"referral.{action}", "denied" if refused else "failure",
             referral_id, str(exc)[:200])
        if isinstance(exc, ValidationFailed):
            return _render_page(db.session.get(Referral, referral_id), status=422,
                                action=action, errors=exc.errors, values=request.form)
        if isinstance(exc, Conflict):
            return _render_page(db.session.get(Referral, referral_id), status=409,
                                problem=str(exc))
        raise  # NotAllowed, NotFound: the error page
    _log(f"referral.{action}", "ok", referral_id)
    flash(ACTION_DONE[action])
    return redirect(url_for("referrals.show", referral_id=referral.id))


@bp.post("/referrals/<int:referral_id>/thread")
@takes_upload(max_bytes=PHOTO_BODY_BYTES)
@login_required
def send_message(referral_id: int):
    """The thread's form: a message, with a photo from the camera or not. A bad photo
    (or the PACS refusing it) is shown on the form's photo field; nothing is posted."""
    visible_or_refuse(referral_id, "referral.messages")
    payload = {"text": request.form.get("text", "")}
    photo = request.files.get("photo")
    data = b""
    if photo is not None:
        try:
            data = photo.read(photos.MAX_PHOTO_BYTES + 1)
        finally:
            photo.close()
    try:
        if data or (photo is not None and photo.filename):
            referral = photos.post_photo(referral_id, current_user, payload, data)
        else:
            referral = referrals.perform("messages", referral_id, current_user, payload)
    except DomainError as exc:
        db.session.rollback()
        _log("referral.messages", "denied" if isinstance(exc, NotAllowed) else "failure",
             referral_id, str(exc)[:200])
        if isinstance(exc, ValidationFailed):
            return _render_page(db.session.get(Referral, referral_id), status=422,
                                action="messages", errors=exc.errors, values=request.form)
        if isinstance(exc, Conflict):
            return _render_page(db.session.get(Referral, referral_id), status=409,
                                problem=str(exc))
        raise
    _log("referral.messages", "ok", referral_id, "with a photo" if data else "")
    flash(ACTION_DONE["messages"])
    return redirect(url_for("referrals.show", referral_id=referral.id) + "#messages")


@bp.post("/referrals/<int:referral_id>/thread/read")
@login_required
def read_messages(referral_id: int):
    """The page says the thread up to event id ``through`` (JSON) was on the screen:
    204. 422 when ``through`` is not a whole number."""
    visible_or_refuse(referral_id, "message.read")
    body = request.get_json(silent=True) or {}
    through = body.get("through") if isinstance(body, dict) else None
    if not isinstance(through, int) or isinstance(through, bool) or through < 0:
        raise ValidationFailed({"through": "through must be the id of the newest message "
                                           "shown (a whole number)."})
    receipts.mark_read(referral_id, current_user, through, address=client_address())
    return "", 204
