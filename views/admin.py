"""Admin pages: hospitals, users, rota. Every route needs admin.manage."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from wtforms import (
    EmailField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from extensions import db
from models import Hospital, Role, RotaShift, Specialty, User
from views.access import client_address, requires
from views.bodies import takes_upload
from workflow import access_log
from workflow.accounts import accounts
from workflow.errors import ValidationFailed
from workflow.paging import rota
from workflow.times import now

bp = Blueprint("admin", __name__, url_prefix="/admin")
ROTA_CSV_MAX_BYTES = 2_000_000  # a year of a large network's rota is well under this


class MultiCheckbox(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter an email address."),
                                            Length(max=254)])
    name = StringField("Name", validators=[DataRequired("Enter a name."), Length(max=200)])
    phone = StringField("Mobile (E.164, e.g. +447700900123)",
                        validators=[Optional(), Length(max=32)])
    # The workflow names an unknown hospital code; WTForms would only say "Not a valid choice".
    hospital = SelectField("Hospital", validators=[Optional()], validate_choice=False)
    roles = MultiCheckbox("Roles", choices=[SelectChoice(r.value, r.value.replace("_", " "))
                                            for r in Role])
    specialties = MultiCheckbox("Specialties")
    password = PasswordField("Initial password", validators=[DataRequired("Set a password."),
                                                             Length(max=200)])


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired("Enter a password."),
                                                         Length(max=200)])


class EmptyForm(FlaskForm):
    """A form with nothing but its CSRF token, for buttons that change state."""


class ActiveForm(FlaskForm):
    """Deactivate (0) or reactivate (1): the state the admin asked for, not a toggle, so a
    second click from a stale page cannot undo the first."""

    active = HiddenField(validators=[AnyOf(["0", "1"])])


class RotaImportForm(FlaskForm):
    file = FileField("Rota CSV", validators=[FileRequired("Choose a CSV file.")])


def _log(action: str, detail: str) -> None:
    access_log.record(action, "ok", user=current_user, address=client_address(), detail=detail)


@bp.route("/")
@requires("admin.manage")
def index():
    return render_template("admin/index.html")


@bp.route("/hospitals")
@requires("admin.manage")
def hospitals():
    rows = db.session.scalars(select(Hospital).order_by(Hospital.name)).all()
    return render_template("admin/hospitals.html", hospitals=rows)


def _user_form() -> UserForm:
    form = UserForm()
    form.hospital.choices = [("", "—")] + [
        (h.code, f"{h.name} ({h.code})")
        for h in db.session.scalars(select(Hospital).order_by(Hospital.name))
    ]
    form.specialties.choices = [
        (s.code, s.name) for s in db.session.scalars(select(Specialty).order_by(Specialty.name))
    ]
    return form


@bp.route("/users", methods=["GET", "POST"])
@requires("admin.manage")
def users():
    form = _user_form()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.create_user(
                email=form.email.data, name=form.name.data, password=form.password.data,
                roles=form.roles.data, hospital_code=form.hospital.data or None,
                specialties=form.specialties.data, phone=form.phone.data or "",
            )
        except ValidationFailed as exc:
            for field, message in exc.errors.items():
                getattr(form, field).errors = [message]
            status = 422
        else:
            _log("admin.user_create", user.email)
            flash(f"Created {user.email}.")
            return redirect(url_for("admin.users"))
    elif request.method == "POST":
        status = 422
    rows = db.session.scalars(select(User).order_by(User.name)).all()
    return render_template("admin/users.html", users=rows, form=form,
                           button=EmptyForm()), status


def _user_or_404(user_id: int) -> User:
    """The user with ``user_id``; abort(404) when there is none."""
    return db.get_or_404(User, user_id)


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@requires("admin.manage")
def set_active(user_id: int):
    form = ActiveForm()
    user = _user_or_404(user_id)
    if form.validate_on_submit():
        make_active = form.active.data == "1"
        if user.id == current_user.id and not make_active:
            access_log.record("admin.user_deactivate", "denied", user=current_user,
                              address=client_address(), detail=f"{user.email}: own account")
            flash("You cannot deactivate your own account.")
        else:
            accounts.set_active(user, make_active)
            _log("admin.user_activate" if make_active else "admin.user_deactivate", user.email)
            flash(f"{user.email} is now {'active' if make_active else 'deactivated'}.")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
@requires("admin.manage")
def reset_password(user_id: int):
    user = _user_or_404(user_id)
    form = PasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts.set_password(user, form.password.data)
        except ValidationFailed as exc:
            form.password.errors = [exc.errors["password"]]
            status = 422
        else:
            _log("admin.password_reset", user.email)
            flash(f"New password set for {user.email}; their open sessions were ended.")
            return redirect(url_for("admin.users"))
    elif request.method == "POST":
        status = 422
    return render_template("admin/password.html", user=user, form=form), status


@bp.route("/users/<int:user_id>/two-factor", methods=["POST"])
@requires("admin.manage")
def reset_two_factor(user_id: int):
    """Turn a user's two-factor sign-in off (a lost phone): they set it up again."""
    user = _user_or_404(user_id)
    if EmptyForm().validate_on_submit():
        accounts.reset_two_factor(user)
        _log("admin.2fa_reset", user.email)
        flash(f"Two-factor sign-in reset for {user.email}; their open sessions were ended. "
              "They set up their authenticator again at their next sign-in.")
    return redirect(url_for("admin.users"))


def _csv_text(raw: bytes) -> str:
    """The uploaded rota as text. Raises ValueError, with a message for the admin, when it
    is too large (read one byte past the limit: a file cut short would import only its
    first part) or not UTF-8."""
    if len(raw) > ROTA_CSV_MAX_BYTES:
        raise ValueError(f"The file is larger than {ROTA_CSV_MAX_BYTES // 1_000_000} MB; "
                         "split it and import each part.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text; save it as CSV (UTF-8).") from None


@bp.route("/rota", methods=["GET", "POST"])
@takes_upload(max_bytes=2 * ROTA_CSV_MAX_BYTES)  # room to say "larger than 2 MB"
@requires("admin.manage")
def rota_page():
    form = RotaImportForm()
    bad_rows, status = [], 200
    if form.validate_on_submit():
        try:
            text = _csv_text(form.file.data.read(ROTA_CSV_MAX_BYTES + 1))
        except ValueError as exc:
            form.file.errors = [str(exc)]
            status = 422
        else:
            try:
                report = rota.import_report(text)
            except rota.RotaImportError as exc:
                bad_rows, status = exc.bad_rows, 422
            else:
                _log("admin.rota_import", f"{report.added} shifts")
                flash(report.message)
                return redirect(url_for("admin.rota_page"))
    elif request.method == "POST":
        status = 422
    start = now() - timedelta(hours=12)
    shifts = db.session.scalars(
        select(RotaShift).where(RotaShift.ends_at > start)
        .order_by(RotaShift.hub_service_id, RotaShift.starts_at, RotaShift.tier).limit(500)
    ).all()
    return render_template("admin/rota.html", form=form, shifts=shifts, bad_rows=bad_rows,
                           columns=rota.CSV_COLUMNS), status

