"""Image pages: the phone-first review page, key-image flags, and the forms that link a
patient's studies to a referral (search the network, tick, link; or upload files)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from extensions import db
from models import Referral
from views.access import client_address, refuse_malformed_uids, visible_or_refuse
from views.bodies import takes_upload
from workflow import access_log
from workflow.errors import DomainError, NotAllowed, NotFound, ValidationFailed
from workflow.imaging import arrivals, frames, identity, key_images, studies, uploads
from workflow.referrals import states
from workflow.referrals.access import actor_kinds

bp = Blueprint("review", __name__)
bp.url_value_preprocessor(refuse_malformed_uids)  # a <..._uid> that is no UID: 404


def _log(action: str, outcome: str, referral_id: int | None = None, detail: str = "") -> None:
    access_log.record(action, outcome, user=current_user, address=client_address(),
                      referral_id=referral_id, detail=detail)



def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.app_template_global()
def can_link_images(referral: Referral) -> bool:
    try:
        move = states.move_for(referral.state, "studies_linked")
    except states.IllegalTransition:
        return False
    return move.permits(actor_kinds(current_user, referral), referral.outcome)


@bp.app_template_global()
def offered_studies(referral: Referral) -> list[arrivals.Offer]:
    """Studies that arrived in the PACS after the referral, to link with one tap."""
    return arrivals.offers(referral)


@bp.post("/referrals/<int:referral_id>/offered/<int:offer_id>/link")
@login_required
def link_offered(referral_id: int, offer_id: int):
    """One tap: link a study that arrived by itself (the same path as ticking it)."""
    visible_or_refuse(referral_id, "studies.link")
    try:
        outcome = arrivals.link_offered(referral_id, current_user, offer_id)
    except DomainError as exc:
        db.session.rollback()
        _log("studies.link", "denied" if isinstance(exc, NotAllowed) else "failure",
             referral_id, str(exc)[:200])
        if isinstance(exc, NotAllowed | NotFound):
            raise
        flash(f"Not linked: {exc}")
        return redirect(url_for("referrals.show", referral_id=referral_id) + "#images")
    if outcome.linked:
        _log("studies.link", "ok", referral_id, ",".join(outcome.linked)[:500])
        flash("New images linked.")
    return redirect(url_for("referrals.show", referral_id=referral_id) + "#images")


@bp.get("/referrals/<int:referral_id>/review")
@login_required
def review(referral_id: int):
    referral = visible_or_refuse(referral_id, "image.list")
    window = ""
    if request.args.get("window"):  # ?window=-670.805,2061.64 opens the viewer in it
        window = frames.frame_spec("", "", preset=request.args["window"]).preset[1:]
    listing = frames.listing(referral)
    flagged = [{"sop_uid": k.sop_uid, "frame": k.frame, "label": k.label}
               for k in key_images.for_referral(referral_id)]
    body = render_template(
        "referrals/review.html", referral=referral, listing=listing, flagged=flagged,
        first_slice=_first_slice(referral_id, listing, window),
        presets=[(p, frames.PRESET_LABELS[p]) for p in frames.VIEWER_PRESETS]
        + ([(window, f"Window {window.replace(',', '/')}")] if window else []),
        preset_windows=frames.PRESET_WINDOWS,
        window=window,
        may_flag=bool(actor_kinds(current_user, referral)),
        identity_warnings=identity.warnings(referral),
        arriving_warnings=arrivals.still_arriving(referral))
    _log("image.list", "ok", referral_id, "review page")
    return body


def _first_slice(referral_id: int, listing: list[dict], window: str) -> str:
    """The URL of the slice the viewer opens on (the middle slice of the first series
    with images, as JPEG, in its window), written into the page so that the browser
    asks for it while it parses the page, before any script runs. The same URL as
    static/js/viewer.js builds for it; "" when there is nothing to show."""
    for study in listing:
        for series in study["series"]:
            if series["instances"]:
                middle = series["instances"][len(series["instances"]) // 2]
                preset = window or series["default_preset"]
                return (url_for("api_images.rendered", referral_id=referral_id,
                                study_uid=study["study_uid"], sop_uid=middle["sop_uid"])
                        + f"?frame=1&preset={quote(preset, safe='')}&format=jpeg")
    return ""


@bp.post("/referrals/<int:referral_id>/key-images")
@login_required
def toggle_key_image(referral_id: int):
    """Flag or unflag a frame (JSON from the viewer)."""
    visible_or_refuse(referral_id, "image.key")
    body = request.get_json(silent=True) or {}
    try:
        frame = int(body.get("frame") or 1)
        flagged = key_images.toggle(
            referral_id, current_user, study_uid=body.get("study_uid"),
            sop_uid=body.get("sop_uid"), frame=frame,
            preset=str(body.get("preset") or "brain")[:32])
    except (TypeError, ValueError):
        raise ValidationFailed({"frame": "frame must be a whole number"}) from None
    except DomainError as exc:
        db.session.rollback()
        _log("image.key", "denied" if isinstance(exc, NotAllowed) else "failure",
             referral_id, str(exc)[:200])
        raise
    _log("image.key", "ok", referral_id, f"{'flag' if flagged else 'unflag'} {body.get('sop_uid')}")
    return {"flagged": flagged,
            "key_images": [{"sop_uid": k.sop_uid, "frame": k.frame, "label": k.label}
                           for k in key_images.for_referral(referral_id)]}


@bp.get("/referrals/<int:referral_id>/studies/search")
@login_required
def search(referral_id: int):
    """Search the network's PACS for the referral's patient's studies (its NHS and local
    numbers; an accession number may be added), to tick and link."""
    referral = visible_or_refuse(referral_id, "studies.search")
    if not can_link_images(referral):
        _log("studies.search", "denied", referral_id)
        raise NotAllowed("only the referrer or the assigned specialist can link images")
    accession = (request.args.get("accession") or "").strip()[:64]
    result = studies.search_for_referral(referral, accession=accession)
    _log("studies.search", "ok", referral_id,
         f"for referral {referral.reference}: {len(result.studies)} found")
    linked = {s.study_uid for s in referral.studies}
    return render_template("referrals/link_studies.html", referral=referral, result=result,
                           linked=linked, accession=accession)


@bp.post("/referrals/<int:referral_id>/studies")
@login_required
def link(referral_id: int):
    """Link the ticked studies (``study`` = "<hospital>|<uid>", repeated)."""
    visible_or_refuse(referral_id, "studies.link")
    chosen = request.form.getlist("study")
    if not chosen:
        flash("Tick at least one study to link.")
        return redirect(url_for("review.search", referral_id=referral_id))
    confirm = request.form.get("identity_reason", "") \
        if request.form.get("confirm_identity") else None
    try:
        outcome = studies.link_chosen(referral_id, current_user, chosen, confirm)
    except NotAllowed as exc:
        db.session.rollback()
        _log("studies.link", "denied", referral_id, str(exc)[:200])
        raise
    except ValidationFailed as exc:  # confirming with no reason: ask again
        db.session.rollback()
        return _confirm_page(referral_id, chosen, [], exc.errors)
    for _, message in outcome.problems:
        _log("studies.link", "failure", referral_id, message[:200])
        flash(f"Not linked: {message}")
    if outcome.linked:
        _log("studies.link", "ok", referral_id, ",".join(outcome.linked)[:500])
        done = len(outcome.linked)
        flash(f"{done} stud{'y' if done == 1 else 'ies'} linked.")
    if outcome.mismatches:
        _log("studies.link", "failure", referral_id,
             ("patient mismatch: " + ",".join(m.study_uid for m in outcome.mismatches))[:500])
        return _confirm_page(referral_id, outcome.unconfirmed, outcome.mismatches, {})
    return redirect(url_for("referrals.show", referral_id=referral_id) + "#images")


def _confirm_page(referral_id: int, chosen: list[str], mismatches: list, errors: dict):
    """The studies refused for a patient mismatch, with both sides named, and a form to
    link them anyway with a reason (409: nothing was linked)."""
    referral = db.session.get(Referral, referral_id)
    return render_template("referrals/confirm_identity.html", referral=referral,
                           chosen=chosen, mismatches=mismatches, errors=errors), \
        409 if mismatches else 422


@bp.post("/referrals/<int:referral_id>/studies/upload")
@takes_upload("MAX_UPLOAD_BYTES")
@login_required
def upload(referral_id: int):
    """DICOM files or zips: good files are stored and linked, bad ones named with why."""
    visible_or_refuse(referral_id, "studies.upload")
    files = []
    for f in request.files.getlist("files"):
        try:
            if f.filename or f.content_length:
                files.append((f.filename or "unnamed", f.read()))
        finally:
            f.close()  # large uploads are spooled to temporary files: close them now
    confirm = request.form.get("identity_reason", "") \
        if request.form.get("confirm_identity") else None
    try:
        report = uploads.upload(referral_id, current_user, files, confirm)
    except DomainError as exc:
        db.session.rollback()
        _log("studies.upload", "denied" if isinstance(exc, NotAllowed) else "failure",
             referral_id, str(exc)[:200])
        if isinstance(exc, NotAllowed) or _wants_json():
            raise  # the error handler answers: a page, or JSON with exc.status
        if isinstance(exc, identity.PatientMismatch):
            flash(f"Upload refused, nothing stored: {exc} Upload the files again with "
                  "“It is the same patient” and a reason to store them anyway.")
            return redirect(url_for("referrals.show", referral_id=referral_id) + "#images")
        flash(f"Upload failed: {exc}")
        return redirect(url_for("referrals.show", referral_id=referral_id) + "#images")
    _log("studies.upload", "ok" if report.stored else "failure", referral_id,
         f"{len(report.stored)} stored, {len(report.rejected)} refused")
    if _wants_json():
        return report.as_json(), 200 if report.stored else 422
    if report.stored:
        flash(f"{len(report.stored)} file(s) stored in the PACS and linked.")
    for name, reason in report.rejected:
        flash(f"Refused {name}: {reason}")
    return redirect(url_for("referrals.show", referral_id=referral_id) + "#images")
