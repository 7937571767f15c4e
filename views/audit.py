"""Audit pages for audit leads: the dashboard and the CSV exports. Every route needs
audit.view or audit.export; every page view and export is in the access log.

Their reads go to the replica when DATABASE_REPLICA_URL is set (`reading_replica`,
extensions.py); the access-log rows they write go to the primary."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_login import current_user
from sqlalchemy import select

from extensions import db, from_replica, reading_replica
from models import Hospital, HubService, Specialty
from views.access import client_address, requires
from workflow import access_log
from workflow.audit import registries
from workflow.audit import stats as audit_stats
from workflow.errors import ValidationFailed
from workflow.referrals import labels
from workflow.referrals.states import Outcome, State

bp = Blueprint("audit", __name__, url_prefix="/audit")

REFERRAL_COLUMNS = (
    "reference", "specialty", "referring_hospital", "hub", "clock_start", "onset",
    "onset_certainty", "arrival", "referral", "first_page", "acknowledge",
    "first_image_viewed", "decision", "outcome", "departure", "arrival_at_hub",
)
ACCESS_LOG_COLUMNS = ("at", "user_id", "email", "role", "address", "action", "outcome",
                      "referral_id", "detail")
CHART_WIDTH = 200  # SVG user units for the longest bar


def _log(action: str, outcome: str, detail: str) -> None:
    access_log.record(action, outcome, user=current_user, address=client_address(),
                      detail=detail[:500])


def _choices() -> dict[str, list[tuple[str, str]]]:
    hubs = select(Hospital.code, Hospital.name).where(
        Hospital.id.in_(select(HubService.hospital_id))).order_by(Hospital.code)
    return {
        "specialty": list(db.session.execute(
            select(Specialty.code, Specialty.name).order_by(Specialty.name))),
        "hospital": list(db.session.execute(
            select(Hospital.code, Hospital.name).order_by(Hospital.code))),
        "hub": list(db.session.execute(hubs)),
        "outcome": [(o.value, labels.outcome(o)) for o in Outcome],
        "state": [(s.value, labels.state(s)) for s in State],
    }


def bar_chart(groups: Iterable[audit_stats.Group], attribute: str) -> list[dict]:
    """Bars for an SVG chart: label, value and length scaled to the largest value."""
    bars = [{"label": g.label, "value": getattr(g, attribute)} for g in groups]
    top = max((b["value"] or 0 for b in bars), default=0)
    for b in bars:
        b["length"] = round((b["value"] or 0) / top * CHART_WIDTH, 1) if top else 0
    return bars


@bp.get("/")
@requires("audit.view")
def dashboard():
    args = request.args
    try:
        filters = audit_stats.parse_filters(args)
    except ValidationFailed as exc:
        _log("audit.view", "failure", f"bad filters: {exc}")
        return render_template("audit/dashboard.html", args=args, errors=exc.errors,
                               choices=_choices(), board=None), 422
    with reading_replica():
        board = audit_stats.dashboard(filters)
        listed = audit_stats.referral_list(filters)
        choices = _choices()
        dido_bars = audit_stats.door_in_door_out_bars(filters)
    _log("audit.view", "ok", f"dashboard {request.query_string.decode(errors='replace')}")
    return render_template(
        "audit/dashboard.html", args=args, errors={}, choices=choices, board=board,
        listed=listed, filters=filters, limits=(audit_stats.ACKNOWLEDGE_LIMIT,
                                                audit_stats.DECISION_LIMIT),
        month_bars=bar_chart(board.by_month, "referrals"),
        site_bars=bar_chart(board.by_site, "median_decision"),
        dido_bars=dido_bars,
    )


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet will not run: text starting = + - @ (or a tab or CR)
    gets a leading apostrophe. Times are ISO 8601 UTC."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _csv_lines(header: tuple[str, ...], rows: Iterable[Iterable]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for n, row in enumerate(rows, start=1):
        writer.writerow([safe_cell(v) for v in row])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_chunks(header: tuple[str, ...], batches: Iterable[list]) -> Iterator[str]:
    """The same CSV as _csv_lines, from batches of rows whose cells are already safe
    text or None (made in SQL): csv.writer's C loop and nothing else per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for batch in batches:
        writer.writerows(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _export(name: str, header: tuple[str, ...], rows_for) -> Response:
    """Check the filters, log the export, then stream the CSV (422 text on bad filters).

    ``rows_for(filters)`` returns either rows of raw values (made safe here, per cell)
    or ``("cells", batches)``: batches of rows already made safe in SQL."""
    try:
        filters = audit_stats.parse_filters(request.args)
    except ValidationFailed as exc:
        _log("audit.export", "failure", f"{name} bad filters: {exc}")
        return Response("\n".join(f"{k}: {v}" for k, v in exc.errors.items()) + "\n",
                        status=422, mimetype="text/plain")
    _log("audit.export", "ok", f"{name} {request.query_string.decode(errors='replace')}")
    with reading_replica():
        rows = rows_for(filters)
    if isinstance(rows, tuple) and rows[0] == "cells":
        lines = _csv_chunks(header, from_replica(rows[1]))
    else:
        lines = _csv_lines(header, from_replica(rows))
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _referral_rows(filters):
    batches = audit_stats.export_cells(filters)  # PostgreSQL: cells made in SQL
    if batches is not None:
        return ("cells", batches)
    return audit_stats.export_rows(filters)


def _access_rows(filters) -> Iterator[tuple]:
    for a in audit_stats.access_log_rows(filters):
        yield (a.at, a.user_id, a.email, a.role, a.address, a.action, a.outcome,
               a.referral_id, a.detail)


@bp.get("/export/referrals.csv")
@requires("audit.export")
def export_referrals():
    return _export("referrals.csv", REFERRAL_COLUMNS, _referral_rows)


@bp.get("/export/access-log.csv")
@requires("audit.export")
def export_access_log():
    return _export("access-log.csv", ACCESS_LOG_COLUMNS, _access_rows)


@bp.get("/export/ssnap.csv")
@requires("audit.export")
def export_ssnap():
    """Stroke referrals in SSNAP's columns and codes (docs/EXPORTS.md)."""
    return _export("ssnap.csv", registries.SSNAP_COLUMNS, registries.ssnap_rows)


@bp.get("/export/nmtr.csv")
@requires("audit.export")
def export_nmtr():
    """Major-trauma referrals with NMTR-style timestamps (docs/EXPORTS.md)."""
    return _export("nmtr.csv", registries.NMTR_COLUMNS, registries.nmtr_rows)
