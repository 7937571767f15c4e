"""Images in the JSON API (/api/v1): study search, linking, the viewer's listing, frames.

Frames are fetched from the hospital's PACS by our server and rendered here; the
browser never sees a PACS address or credential. Frames served are written to the
access log (action ``image.view``): one row per user, series and minute (see
workflow.imaging.frames.record_view); every refusal and failure gets a row of its own.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask_login import current_user, login_required

from extensions import csrf, db
from models import Referral
from views.access import client_address, refuse_malformed_uids, visible_or_refuse
from views.auth import token_authenticated
from workflow import access_log
from workflow.accounts import policy
from workflow.errors import DomainError, NotAllowed, ValidationFailed
from workflow.imaging import frames, studies
from workflow.referrals import nhs_number
from workflow.referrals.access import MAX_ID, get_visible

bp = Blueprint("api_images", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
bp.url_value_preprocessor(refuse_malformed_uids)  # a <study_uid> that is no UID: 404
# Who may search a patient's studies across the network's PACS.
SEARCH_PERMISSIONS = ("referral.raise", "worklist.view")
FREE_SEARCH = ("The PACS are searched only for a referral's patient (referral=<id>) or for "
               "the patient you are raising a referral for (reason=raising_referral and "
               "their nhs_number), never for a patient id alone.")


@bp.before_request
def _csrf_for_sessions():
    """As in views.api: CSRF applies to every signed-in request but a token-verified one."""
    if current_user.is_authenticated and not token_authenticated():
        csrf.protect()


def _log(action: str, outcome: str, referral_id: int | None = None, detail: str = "") -> None:
    access_log.record(action, outcome, user=current_user, address=client_address(),
                      referral_id=referral_id, detail=detail)



@bp.get("/studies")
@login_required
def search_studies():
    """Studies of a patient across the network (or one hospital), newest first: for a
    referral the user may see (``referral=<id>``: its patient's identifiers), or for the
    patient being raised (``reason=raising_referral&nhs_number=...``). A free patient id
    is never searched. Every search, and every refusal, is in the access log with its
    reason."""
    if not any(policy.allowed(current_user, p) for p in SEARCH_PERMISSIONS):
        _log("studies.search", "denied")
        raise NotAllowed("your role does not allow searching the hospitals' PACS")
    args = request.args
    accession, hospital = args.get("accession", ""), args.get("hospital") or None
    referral_id = None
    try:
        if "patient_id" in args:
            raise ValidationFailed({"patient_id": FREE_SEARCH})
        if args.get("referral"):
            given = args["referral"]
            if not (given.isascii() and given.isdigit() and len(given) <= 12
                    and 1 <= int(given) <= MAX_ID):
                raise ValidationFailed(
                    {"referral": f"A referral id (a whole number from 1 to {MAX_ID})."})
            referral_id = int(given)
            referral = get_visible(current_user, referral_id)  # NotAllowed: logged below
            reason = f"for referral {referral.reference}"
            result = studies.search_for_referral(referral, accession=accession,
                                                 hospital_code=hospital)
        elif args.get("reason") == studies.RAISING_A_REFERRAL:
            if not policy.allowed(current_user, "referral.raise"):
                raise NotAllowed("only referrers raise referrals")
            nhs = nhs_number.normalise(args.get("nhs_number", ""))[:16]
            reason = f"raising a referral for NHS {nhs}"
            result = studies.search_for_new_referral(
                nhs_number=nhs, local_number=args.get("local_number", ""),
                accession=accession, hospital_code=hospital)
        else:
            raise ValidationFailed({"referral": FREE_SEARCH})
    except DomainError as exc:
        db.session.rollback()
        _log("studies.search", "denied" if isinstance(exc, NotAllowed) else "failure",
             referral_id, str(exc)[:200])
        raise
    _log("studies.search", "ok", referral_id,
         f"{reason}: {len(result.studies)} found; {len(result.unavailable)} PACS unavailable"
         [:500])
    return result.as_json()


@bp.post("/referrals/<int:referral_id>/studies")
@login_required
def link_studies(referral_id: int):
    """Link studies: {"hospital": "PIL", "study_uids": [...]}; a study whose patient
    disagrees with the referral is refused (409, ``patient_mismatch``) unless the body
    also says ``"confirm_identity": true, "identity_reason": "..."``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"": "Send a JSON object with Content-Type: application/json."})
    visible_or_refuse(referral_id, "studies.link")
    uids = body.get("study_uids")
    if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
        raise ValidationFailed({"study_uids": "A list of Study Instance UIDs."})
    hospital = body.get("hospital")
    confirm = body.get("confirm_identity", False)
    if not isinstance(confirm, bool):
        raise ValidationFailed({"confirm_identity": "true or false."})
    reason = body.get("identity_reason", "")
    try:
        linked = studies.link(referral_id, current_user,
                              hospital if isinstance(hospital, str) else None, uids,
                              confirm_reason=(reason if isinstance(reason, str) else "")
                              if confirm else None)
    except DomainError as exc:
        db.session.rollback()
        _log("studies.link", "denied" if isinstance(exc, NotAllowed) else "failure",
             referral_id, str(exc)[:200])
        raise
    _log("studies.link", "ok", referral_id, ",".join(s.study_uid for s in linked)[:500])
    referral = db.session.get(Referral, referral_id)
    return {"studies": frames.listing(referral)}, 201


@bp.get("/referrals/<int:referral_id>/studies")
@login_required
def list_studies(referral_id: int):
    """The linked studies, their series and instances (what the viewer scrolls)."""
    referral = visible_or_refuse(referral_id, "image.list")
    body = {"studies": frames.listing(referral)}
    _log("image.list", "ok", referral_id)
    return body


@bp.get("/referrals/<int:referral_id>/studies/<study_uid>/instances/<sop_uid>/rendered")
@login_required
def rendered(referral_id: int, study_uid: str, sop_uid: str):
    """One frame as PNG or JPEG with a window preset (or window=center,width)."""
    detail = f"{study_uid}/{sop_uid}"[:300]
    study = visible_or_refuse(referral_id, "image.view", detail,
                              find=lambda user, rid: frames.visible(user, rid, study_uid))
    preset = request.args.get("preset")
    if request.args.get("window"):
        preset = request.args["window"]
    try:
        spec = frames.frame_spec(study_uid, sop_uid, frame=request.args.get("frame"),
                                 preset=preset, fmt=request.args.get("format"))
        frame = frames.render_frame(study, spec)
    except DomainError as exc:
        db.session.rollback()
        _log("image.view", "failure", referral_id, f"{detail}: {exc}"[:500])
        raise
    frames.record_view(current_user, referral_id, study_uid, frame.series_uid,
                       f"{detail} frame {spec.frame} {spec.preset} {spec.fmt} "
                       f"(series {frame.series_uid})", address=client_address())
    response = Response(frame.image, mimetype=frame.content_type)
    response.headers["X-Image-Cache"] = frame.cache
    return response


@bp.get("/referrals/<int:referral_id>/studies/<study_uid>/series/<series_uid>/rendered")
@login_required
def rendered_series(referral_id: int, study_uid: str, series_uid: str):
    """Consecutive slices of a series in one answer, for the viewer:
    ``?first=1&count=32&preset=brain&format=jpeg`` (count at most frames.MAX_BATCH).

    The body is the images one after another; ``X-Frame-Sizes`` gives their byte
    lengths and ``X-Frame-Sops`` their SOP Instance UIDs, in order (a size of 0 is a
    slice that could not be rendered: ask for it alone to learn why).
    """
    detail = f"{study_uid}/{series_uid}"[:300]
    study = visible_or_refuse(referral_id, "image.view", detail,
                              find=lambda user, rid: frames.visible(user, rid, study_uid))
    preset = request.args.get("window") or request.args.get("preset")
    try:
        first = int(request.args.get("first") or 1)
        count = int(request.args.get("count") or frames.MAX_BATCH)
    except ValueError:
        raise ValidationFailed({"first": "first and count must be whole numbers"}) from None
    try:
        batch = frames.render_series(study, series_uid, first=first, count=count,
                                     preset=preset, fmt=request.args.get("format"))
    except DomainError as exc:
        db.session.rollback()
        _log("image.view", "failure", referral_id, f"{detail}: {exc}"[:500])
        raise
    last = batch.first + len(batch.sop_uids) - 1
    frames.record_view(current_user, referral_id, study_uid, series_uid,
                       f"{detail} slices {batch.first}-{last} of {batch.total} "
                       f"{batch.preset} {batch.fmt}",
                       address=client_address())
    response = Response(b"".join(i or b"" for i in batch.images),
                        mimetype="application/octet-stream")
    response.headers["X-Frame-Type"] = batch.content_type
    response.headers["X-Frame-Sizes"] = ",".join(str(len(i or b"")) for i in batch.images)
    response.headers["X-Frame-Sops"] = ",".join(batch.sop_uids)
    response.headers["X-Series-Slices"] = str(batch.total)
    response.headers["X-Image-Cache-Misses"] = str(batch.misses)
    return response
