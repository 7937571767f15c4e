"""Frames of a referral's linked studies, rendered on our server and cached.

The browser never talks to a PACS: we fetch the instance by WADO-RS with the
hospital's credentials, render the frame with a window preset and keep the result in
the bounded caches of workflow.imaging.cache. When a page goes out or a study is
linked, the middle slice of each series is rendered ahead, then the rest of each series
(`schedule_prefetch`), so the specialist's first image is already warm when they tap.
The viewer fetches the rest of a series in runs of slices (`render_series`), one
request and one access check per run; a cold series is fetched from the PACS in one
request and rendered on every core (workflow.imaging.series_fetch). Who viewed which
series is logged once a minute (`record_view`), not once a frame.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import load_only

from extensions import db
from integrations import imaging
from integrations.dicom_uid import is_uid
from models import Hospital, LinkedStudy, PacsEndpoint, Referral, User
from workflow import access_log
from workflow.errors import NotFound, ValidationFailed
from workflow.imaging import orientation, render_pool, series_fetch
from workflow.imaging.cache import caches
from workflow.imaging.endpoints import (
    ImagesUnavailable,
    Outcome,
    PacsTarget,
    client,
    endpoint_target,
    record_outcome,
    target_for_hospital,
    timed,
)
from workflow.referrals.access import FOR_ACCESS_CHECK, check_visible, valid_id
from workflow.times import now as utcnow

log = logging.getLogger(__name__)

VIEWER_PRESETS = ("brain", "stroke", "subdural", "bone", "cta", "soft_tissue", "lung", "file")
PRESET_LABELS = {"brain": "Brain 80/40", "stroke": "Stroke 40/40", "subdural": "Subdural 200/80",
                 "bone": "Bone 2000/500", "cta": "CTA 600/200", "soft_tissue": "Soft tissue 400/40",
                 "lung": "Lung 1500/−600", "file": "File"}
# center, width of each preset: where a window/level drag in the viewer starts.
PRESET_WINDOWS = {name: (w.center, w.width) for name, w in imaging.PRESETS.items() if w}
CONTENT_TYPES = imaging.FORMATS
PREFETCH_INSTANCES = 400  # per referral, beyond the middle slices
# Series without pictures, left out of the viewer: key objects (ours too, once written
# back to the study), reports, presentation states, documents.
NOT_VIEWED = frozenset({"KO", "SR", "PR", "DOC"})
_SUCCESS_EVERY = 30.0  # seconds between "last success" writes per endpoint


@dataclass(frozen=True)
class FrameSpec:
    """One rendering asked for: which frame, which window, which format."""

    study_uid: str
    sop_uid: str
    frame: int
    preset: str  # a preset name or "w<center>,<width>" (e.g. "w-670.805,2061.64")
    fmt: str

    @property
    def key(self) -> str:
        return f"{self.study_uid}/{self.sop_uid}/{self.frame}/{self.preset}/{self.fmt}"

    @property
    def window(self) -> imaging.Window | None:
        if self.preset.startswith("w"):
            center, width = self.preset[1:].split(",")
            return imaging.Window(float(center), float(width))
        return imaging.PRESETS[self.preset]


def frame_spec(study_uid: str, sop_uid: str, *, frame: str | int | None = 1,
               preset: str | None = "brain", fmt: str | None = "png") -> FrameSpec:
    """Check what a client asked for. Raises ValidationFailed (422) naming the field."""
    try:
        number = int(frame if frame not in (None, "") else 1)
    except (TypeError, ValueError):
        raise ValidationFailed({"frame": "frame must be a whole number from 1"}) from None
    if number < 1 or number > imaging.MAX_FRAMES:
        raise ValidationFailed({"frame": f"frame must be from 1 to {imaging.MAX_FRAMES}"})
    fmt = (fmt or "png").lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in CONTENT_TYPES:
        raise ValidationFailed({"format": "format must be png or jpeg"})
    text = (preset or "").strip()[:80] or "brain"  # blank (say "preset=%20") too
    if text[:1] in ("w", "W") and "," in text and not text.lower().startswith("window="):
        text = text[1:]  # a FrameSpec.preset given back (a key image's stored window)
    try:
        window = imaging.resolve_window(text)
    except imaging.ImagingError as exc:
        field = "preset" if exc.message.startswith("unknown preset") else "window"
        raise ValidationFailed({field: exc.message}) from None
    name = text.lower().replace("-", "_").replace(" ", "_")
    key = name if name in imaging.PRESETS else f"w{imaging.window_key(window)}"
    return FrameSpec(study_uid, sop_uid, number, key, fmt)


@dataclass(frozen=True)
class Located:
    target: PacsTarget
    series_uid: str
    frames: int


@dataclass(frozen=True)
class Linked:
    """A referral and one of its linked studies as an image request needs them, read
    in one query (`linked_study`): every slice and run of slices is a request, and each
    query a round trip to the database."""

    referral: Referral  # only what the access check reads (access.FOR_ACCESS_CHECK)
    study_uid: str
    study: LinkedStudy | None  # None: no such study is linked to this referral
    hospital_name: str  # the study's hospital
    endpoint: PacsEndpoint | None  # its PACS endpoint, if it has one

    def require_pacs(self) -> None:
        """Raises NotFound when the study's hospital has no PACS endpoint any more."""
        if self.endpoint is None or not self.endpoint.base_url:
            raise NotFound(f"{self.hospital_name} has no PACS endpoint any more")

    def target(self) -> PacsTarget:
        """The PACS call details, the secret decrypted: only for a request that calls
        the PACS. Raises NotFound when the study's hospital has no PACS any more."""
        self.require_pacs()
        return endpoint_target(self.endpoint)

    def snapshot(self) -> dict:
        """The study's snapshot. Raises NotFound when the study is not linked."""
        if self.study is None:
            raise NotFound("no such study is linked to this referral")
        return self.study.snapshot or {}


# Built once: it runs for every slice, and building a select with its loader options
# costs more than the database takes to answer it.
_LINKED_STUDY = (
    select(Referral, LinkedStudy, Hospital, PacsEndpoint)
    .outerjoin(LinkedStudy, and_(LinkedStudy.referral_id == Referral.id,
                                 LinkedStudy.study_uid == bindparam("study_uid")))
    .outerjoin(Hospital, Hospital.id == LinkedStudy.hospital_id)
    .outerjoin(PacsEndpoint, PacsEndpoint.hospital_id == LinkedStudy.hospital_id)
    .where(Referral.id == bindparam("referral_id"))
    .options(*FOR_ACCESS_CHECK, load_only(LinkedStudy.hospital_id, LinkedStudy.snapshot),
             load_only(Hospital.code, Hospital.name)))  # what endpoint_target reads


def linked_study(referral_id: int, study_uid: str) -> Linked:
    """The referral (what its access check reads), its linked study ``study_uid`` (or
    None) and that study's hospital and PACS endpoint, in one query. Raises NotFound
    when there is no such referral. Whether the user may see it is the caller's to
    check (`visible`)."""
    if not valid_id(referral_id):
        raise NotFound(f"no referral {referral_id}")
    row = db.session.execute(_LINKED_STUDY, {"referral_id": referral_id,
                                             "study_uid": study_uid}).one_or_none()
    if row is None:
        raise NotFound(f"no referral {referral_id}")
    referral, study, hospital, endpoint = row
    return Linked(referral, study_uid, study, hospital.name if hospital else "", endpoint)


def visible(user: User, referral_id: int, study_uid: str) -> Linked:
    """`linked_study`, if ``user`` may see the referral. Raises NotFound (no such referral)
    or NotAllowed (outside the user's rights; the caller logs the refusal)."""
    found = linked_study(referral_id, study_uid)
    check_visible(user, found.referral)
    return found


def _find(snapshot: dict, sop_uid: str) -> tuple[str, int] | None:
    for series in snapshot.get("series", []):
        for instance in series.get("instances", []):
            if instance.get("sop_uid") == sop_uid:
                return series["series_uid"], int(instance.get("frames") or 1)
    return None


_last_success: dict[int, float] = {}


def _book(outcome: Outcome) -> None:
    """Errors are always written; successes at most every _SUCCESS_EVERY s per endpoint
    (a scrolled series is hundreds of fetches)."""
    if outcome.ok:
        now = time.monotonic()
        if now - _last_success.get(outcome.endpoint_id, 0) < _SUCCESS_EVERY:
            return
        _last_success[outcome.endpoint_id] = now
    record_outcome(outcome)


def _instance_file(app: Flask, spec: FrameSpec, where: Located) -> bytes:
    store = caches(app).files
    data = store.get(spec.sop_uid)
    if data is not None:
        return data
    data, outcome = timed(where.target, lambda: client(where.target).fetch_instance(
        spec.study_uid, where.series_uid, spec.sop_uid))
    if not outcome.ok and outcome.status == 404:
        raise NotFound(f"{where.target.hospital_name} PACS no longer has this instance")
    _book(outcome)
    if data is None:
        raise ImagesUnavailable(where.target.hospital_name, outcome.error)
    store.put(spec.sop_uid, data)
    return data


def _render(app: Flask, spec: FrameSpec, where: Located, *, also: tuple[FrameSpec, ...] = ()
            ) -> bytes:
    data = _instance_file(app, spec, where)
    try:
        ds = imaging.read_dataset(data)
        results = {}
        for wanted in (spec, *also):
            results[wanted.key] = imaging.render_dataset(ds, window=wanted.window,
                                                         frame=wanted.frame, fmt=wanted.fmt)
    except imaging.ImagingError as exc:
        raise ValidationFailed({"image": exc.message}) from None
    cache = caches(app)
    for key, image in results.items():
        cache.put_frame(key, image)
    return results[spec.key]


@dataclass(frozen=True)
class RenderedFrame:
    image: bytes
    content_type: str
    cache: str  # memory | disk | miss
    series_uid: str


def render_frame(study: Linked, spec: FrameSpec) -> RenderedFrame:
    """One frame, from the caches or rendered now from the PACS's file.

    Raises NotFound (a UID that is not a DICOM UID, the study is not linked, no such
    instance in it, or its hospital has no PACS), ValidationFailed (frame beyond the
    instance, or the file cannot be rendered: the ImagingError reason) or
    ImagesUnavailable (the PACS is down, slow or failing; names the hospital).
    """
    if not (is_uid(spec.study_uid) and is_uid(spec.sop_uid)):
        raise NotFound("no such study or instance (not a DICOM UID)")
    found = _find(study.snapshot(), spec.sop_uid)
    if found is None:
        raise NotFound("no such instance in this study")
    study.require_pacs()
    series_uid, frame_count = found
    if spec.frame > frame_count:
        raise ValidationFailed({"frame": f"this instance has {frame_count} frame(s)"})
    app = current_app._get_current_object()
    image, cached = caches(app).get_frame(spec.key)
    if image is None:
        where = Located(study.target(), series_uid, frame_count)
        db.session.commit()  # nothing held open while the PACS answers
        image, cached = _render(app, spec, where), "miss"
    return RenderedFrame(image, CONTENT_TYPES[spec.fmt], cached, series_uid)


MAX_BATCH = 64  # slices in one series request


@dataclass(frozen=True)
class SeriesFrames:
    """Consecutive slices of a series in one answer; ``images[i]`` is None when that
    slice could not be rendered (the viewer asks for it alone to learn why)."""

    series_uid: str
    first: int  # slice number (1-based, in the series' slice order) of sop_uids[0]
    total: int  # slices in the series
    sop_uids: list[str]
    images: list[bytes | None]
    preset: str
    fmt: str
    misses: int  # slices that were not in the caches

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]


def render_series(study: Linked, series_uid: str, *, first: int, count: int,
                  preset: str | None, fmt: str | None) -> SeriesFrames:
    """Slices ``first``..``first+count-1`` of a linked series (frame 1 of each instance),
    from the caches or rendered now, so the viewer fetches a series in a few requests.

    Raises NotFound (study or series not linked or not a DICOM UID, or its hospital has
    no PACS any more),
    ValidationFailed (a bad range, preset or format) or ImagesUnavailable (the PACS
    failed before any slice of the run was had: the series fetch, or the first slice
    asked for alone; later failures leave gaps instead).
    """
    if count < 1 or count > MAX_BATCH:
        raise ValidationFailed({"count": f"count must be from 1 to {MAX_BATCH}"})
    study_uid = study.study_uid
    asked = frame_spec(study_uid, "", preset=preset, fmt=fmt)
    if not (is_uid(study_uid) and is_uid(series_uid)):
        raise NotFound("no such study or series (not a DICOM UID)")
    series = next((s for s in study.snapshot().get("series", [])
                   if s.get("series_uid") == series_uid), None)
    if series is None:
        raise NotFound("no such series in this study")
    instances = series.get("instances", [])
    if first < 1 or first > len(instances):
        raise ValidationFailed({"first": f"first must be from 1 to {len(instances)}"})
    study.require_pacs()
    wanted = instances[first - 1:first - 1 + count]
    sop_uids = [i["sop_uid"] for i in wanted]
    app = current_app._get_current_object()
    cache = caches(app)
    specs = [FrameSpec(study_uid, sop, 1, asked.preset, asked.fmt) for sop in sop_uids]
    cached = [cache.get_frame(s.key)[0] for s in specs]
    missing = [s.key for s, image in zip(specs, cached, strict=True) if image is None]
    if not missing:  # a warm run: no PACS call, so no PACS secret decrypted either
        return SeriesFrames(series_uid, first, len(instances), sop_uids, cached,
                            asked.preset, asked.fmt, 0)
    target = study.target()
    db.session.commit()  # the PACS is called with no transaction open
    # Even one slice missing: while the series is on its way, fetching it alone is waste.
    failure = series_fetch.await_slices(
        app, series_work(target, study_uid, series, asked), missing, book=_book)
    images: list[bytes | None] = []
    misses, pacs_failed = len(missing), bool(failure)  # one timeout per request at most
    for instance, spec in zip(wanted, specs, strict=True):
        image = cache.get_frame(spec.key)[0]
        if image is None and not pacs_failed:
            where = Located(target, series_uid, int(instance.get("frames") or 1))
            try:
                image = _render(app, spec, where)
            except ImagesUnavailable:
                if not images:
                    raise
                pacs_failed = True  # one timeout per request, not one per slice
            except (NotFound, ValidationFailed):
                pass
        images.append(image)
    if failure and not any(images):
        raise ImagesUnavailable(target.hospital_name, failure)
    return SeriesFrames(series_uid, first, len(instances), sop_uids, images, asked.preset,
                        asked.fmt, misses)


def series_work(target: PacsTarget, study_uid: str, series: dict, asked: FrameSpec
                ) -> series_fetch.SeriesWork:
    """Frame 1 of every slice of a snapshot's series, in ``asked``'s window and format."""
    keys = {i["sop_uid"]: (FrameSpec(study_uid, i["sop_uid"], 1, asked.preset, asked.fmt).key,)
            for i in series.get("instances", [])}
    return series_fetch.SeriesWork(target, study_uid, series["series_uid"],
                                   ((asked.window, 1, asked.fmt),), keys,
                                   f"{asked.preset}/{asked.fmt}")


# --- Who viewed which images -----------------------------------------------------------


_views_lock = threading.Lock()


def record_view(user: User, referral_id: int, study_uid: str, series_uid: str, detail: str, *,
                address: str = "") -> bool:
    """Write the ``image.view`` access-log row for frames just served, unless this user
    already has one for this series in this clock minute (in this process). True when a
    row was written (and committed).

    One row per user, series and minute rather than one per frame: a scrolled series is
    hundreds of frames, and a commit per frame made the viewer queue on the database.
    The row names the first frames served; refusals and failures are logged one each by
    the caller. A row is remembered only once committed, so a failed write is retried
    on the next frame.
    """
    minute = int(utcnow().timestamp() // 60)
    key = (user.id, referral_id, study_uid, series_uid)
    app = current_app._get_current_object()
    seen = app.extensions.setdefault("goldenhour.image_views", {})
    with _views_lock:
        if seen.get(key) == minute:
            return False
    access_log.record("image.view", "ok", user=user, address=address,
                      referral_id=referral_id, detail=detail)
    with _views_lock:
        seen[key] = minute
        if len(seen) > 10_000:
            for old in [k for k, m in seen.items() if m < minute]:
                del seen[old]
    return True


def default_preset(series: dict) -> str:
    text = f"{series.get('description', '')}".lower()
    if series.get("modality") not in ("CT", "") and series.get("modality"):
        return "file"
    if "cta" in text or "angio" in text:
        return "cta"
    return "brain"


def _series_listing(series: dict) -> dict:
    """One series for the viewer: its instances and the orientation markers of the
    series (from its middle slice), repeated on any slice that faces another way."""
    instances = series.get("instances", [])
    marked = [orientation.markers(i.get("orientation")) for i in instances]
    usual = marked[len(marked) // 2] if marked else None
    return {
        "series_uid": series["series_uid"], "number": series.get("number"),
        "modality": series.get("modality", ""), "description": series.get("description", ""),
        "default_preset": default_preset(series), "markers": usual,
        "instances": [{"sop_uid": i["sop_uid"], "frames": i.get("frames") or 1,
                       **({"markers": m} if m != usual else {})}
                      for i, m in zip(instances, marked, strict=True)],
    }


def listing(referral: Referral) -> list[dict]:
    """The linked studies with their series and instances, for the viewer (no PACS call).
    The render pool is started meanwhile, for the series the viewer is about to ask for."""
    render_pool.pool_for(current_app.config.get("IMAGE_RENDER_PROCESSES")).warm()
    out = []
    for study in referral.studies:
        target = target_for_hospital(study.hospital_id)
        snap = study.snapshot or {}
        out.append({
            "study_uid": study.study_uid, "hospital": study.hospital.code,
            "hospital_name": study.hospital.name, "description": study.description,
            "study_date": study.study_date, "modalities": study.modalities,
            "viewer_url": target.viewer_url(study.study_uid) if target else "",
            "series": [_series_listing(s) for s in snap.get("series", [])
                       if s.get("modality") not in NOT_VIEWED],
        })
    return out


# --- Prefetch when a page goes out or a study is linked --------------------------------

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="image-prefetch")
_pending: list[Future] = []
_recent: dict[tuple, float] = {}
_pending_lock = threading.Lock()


def schedule_prefetch(referral_id: int) -> None:
    """Warm the caches for a referral in the background: at most once a minute for the
    same linked studies, at once when a study has been linked since.

    Call it after the transaction (the page, the link) has committed; it never blocks
    the caller.
    """
    linked = tuple(db.session.scalars(select(LinkedStudy.id)
                                      .where(LinkedStudy.referral_id == referral_id)
                                      .order_by(LinkedStudy.id)))
    db.session.commit()
    if not linked:
        return
    app = current_app._get_current_object()
    key = (id(app), referral_id, linked)
    with _pending_lock:
        if time.monotonic() - _recent.get(key, -1e9) < 60:
            return
        _recent[key] = time.monotonic()
        _pending[:] = [f for f in _pending if not f.done()]
        _pending.append(_pool.submit(_prefetch_job, app, referral_id))


def wait_for_prefetch(timeout: float = 30) -> None:
    """Block until the prefetches queued so far, and the series fetches the viewer
    started, are done (tests, benchmarks)."""
    with _pending_lock:
        pending = list(_pending)
    wait_futures(pending, timeout=timeout)
    series_fetch.wait(timeout)


def _prefetch_job(app: Flask, referral_id: int) -> None:
    with app.app_context():
        try:
            prefetch(referral_id)
        except Exception:  # noqa: BLE001 - a background warm-up must never take anything down
            log.warning("prefetch for referral %s failed", referral_id, exc_info=True)


def prefetch(referral_id: int) -> int:
    """Render the middle slice of every series (JPEG and PNG, its default preset, each
    fetched alone: the first image a specialist sees), then the rest of each series as
    JPEG (one series-level fetch each, rendered on every core), until PREFETCH_INSTANCES
    slices are warm. Returns frames rendered. A PACS failure stops the warm-up
    quietly; the viewer will report it if it persists."""
    referral = db.session.get(Referral, referral_id)
    if referral is None:
        return 0
    work = []
    for study in referral.studies:
        target = target_for_hospital(study.hospital_id)
        if target is None:
            continue
        for series in (study.snapshot or {}).get("series", []):
            if series.get("instances") and series.get("modality") not in NOT_VIEWED:
                work.append((study.study_uid, series, target))
    db.session.commit()
    app = current_app._get_current_object()
    cache = caches(app)
    done = 0
    for study_uid, series, target in work:
        instances = series["instances"]
        middle = instances[len(instances) // 2]
        preset = default_preset(series)
        wanted = [s for s in (FrameSpec(study_uid, middle["sop_uid"], 1, preset, fmt)
                              for fmt in ("jpeg", "png"))
                  if cache.get_frame(s.key)[0] is None]
        if not wanted:
            continue
        where = Located(target, series["series_uid"], int(middle.get("frames") or 1))
        try:
            _render(app, wanted[0], where, also=tuple(wanted[1:]))
        except ImagesUnavailable:
            return done
        except (NotFound, ValidationFailed):
            continue
        done += len(wanted)
    budget = PREFETCH_INSTANCES
    for study_uid, series, target in work:
        if budget <= 0:
            break
        asked = FrameSpec(study_uid, "", 1, default_preset(series), "jpeg")
        whole = series_work(target, study_uid, series, asked)
        if all(cache.get_frame(k)[0] is not None for keys in whole.keys.values() for k in keys):
            continue
        budget -= len(whole.keys)
        rendered, failure = series_fetch.render_into_caches(app, whole, book=_book)
        done += rendered
        if failure:
            return done
    return done
