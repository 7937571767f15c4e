"""Rota CSV import (all rows or none) and who is on call at an instant.

Shifts here are in 2030, well clear of the demo rota the `network` fixture seeds for
the week after today. The UK clocks went back at 02:00 BST on Sunday 27 October 2030.
"""

import html
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from extensions import db
from models import AccessLog, RotaShift
from workflow.paging import rota

HEADER = "email,hub,specialty,tier,start,end\n"
GOOD = HEADER + (
    "day@qmc.nhs.uk,QMC,stroke,1,2030-10-26 08:00,2030-10-26 20:00\n"
    "night@qmc.nhs.uk,QMC,stroke,1,2030-10-26 20:00,2030-10-27 08:00\n"
    "consultant@qmc.nhs.uk,QMC,stroke,2,2030-10-26 08:00,2030-10-27 08:00\n"
    "day@qmc.nhs.uk,QMC,stroke,1,2030-10-27 08:00,2030-10-27 20:00\n"
)


@pytest.fixture
def people(network, make_user):
    """Three stroke specialists at QMC and one referrer."""
    for name in ("day", "night", "consultant"):
        make_user(roles=["specialist"], hospital="QMC", specialties=["stroke"],
                  email=f"{name}@qmc.nhs.uk")
    make_user(roles=["referrer"], hospital="PIL", email="referrer@pil.nhs.uk")


def _shift_count() -> int:
    return db.session.scalar(select(func.count(RotaShift.id)))


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _upload(client, content: bytes, filename="rota.csv"):
    return client.post("/admin/rota", data={"file": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")


@pytest.fixture
def admin_client(client, make_user, network):
    make_user(roles=["admin"], email="rota.admin@test.nhs.uk")
    client.login("rota.admin@test.nhs.uk")
    return client


def test_a_good_file_imports_every_row_in_utc(people):
    before = _shift_count()
    assert rota.import_csv(GOOD) == 4
    assert _shift_count() == before + 4
    night = db.session.scalar(select(RotaShift).join(RotaShift.user)
                              .where(RotaShift.user.has(email="night@qmc.nhs.uk")))
    # 20:00 BST is 19:00 UTC; 08:00 GMT after the clocks went back is 08:00 UTC.
    assert (night.starts_at, night.ends_at) == (_utc(2030, 10, 26, 19), _utc(2030, 10, 27, 8))
    assert night.tier == 1 and night.hub_service.hospital.code == "QMC"


def test_importing_the_same_file_again_adds_nothing(people):
    assert rota.import_csv(GOOD) == 4
    count = _shift_count()
    assert rota.import_csv(GOOD) == 0
    assert _shift_count() == count


def test_a_shift_listed_twice_in_one_file_is_imported_once(people):
    line = "day@qmc.nhs.uk,QMC,stroke,1,2030-11-01 08:00,2030-11-01 20:00\n"
    before = _shift_count()
    assert rota.import_csv(HEADER + line + line) == 1
    assert _shift_count() == before + 1


def test_a_spreadsheet_export_with_bom_crlf_and_capitals_imports(people):
    text = "\ufeffEmail,Hub,Specialty,Tier,Start,End\r\n" + \
        "DAY@qmc.nhs.uk, QMC ,stroke, 2 ,2030-11-02 08:00,2030-11-02 20:00\r\n"
    assert rota.import_csv(text) == 1


BAD = HEADER + (
    "day@qmc.nhs.uk,QMC,stroke,1,2030-11-03 08:00,2030-11-03 20:00\n"        # 2 good
    "nobody@qmc.nhs.uk,QMC,stroke,1,2030-11-03 08:00,2030-11-03 20:00\n"     # 3
    "referrer@pil.nhs.uk,QMC,stroke,1,2030-11-03 08:00,2030-11-03 20:00\n"   # 4
    "night@qmc.nhs.uk,LRI,stroke,1,2030-11-03 08:00,2030-11-03 20:00\n"      # 5
    "night@qmc.nhs.uk,QMC,stroke,7,2030-11-03 08:00,2030-11-03 20:00\n"      # 6
    "night@qmc.nhs.uk,QMC,stroke,1,2030-11-03 20:00,2030-11-03 08:00\n"      # 7
    "night@qmc.nhs.uk,QMC,stroke,1,tomorrow at eight,2030-11-03 20:00\n"     # 8
    "consultant@qmc.nhs.uk,QMC,stroke,2,2030-11-03 08:00,2030-11-04 08:00\n"  # 9 good
)
BAD_LINES = {
    3: "no user has the email 'nobody@qmc.nhs.uk'",
    4: "referrer@pil.nhs.uk is not a specialist",
    5: "'LRI' is not a hub for 'stroke'",
    6: "tier must be 1, 2 or 3, not 7",
    7: "end must be after start",
    8: "'tomorrow at eight' is not a date and time",
}


def test_a_file_with_bad_rows_imports_nothing_and_names_every_bad_line(people):
    before = _shift_count()
    with pytest.raises(rota.RotaImportError) as caught:
        rota.import_csv(BAD)
    assert [row.line for row in caught.value.bad_rows] == sorted(BAD_LINES)
    for row in caught.value.bad_rows:
        assert BAD_LINES[row.line] in row.message, row
    assert _shift_count() == before


def test_a_file_missing_a_column_is_refused(people):
    text = "email,hub,specialty,start,end\n" \
        "day@qmc.nhs.uk,QMC,stroke,2030-11-03 08:00,2030-11-03 20:00\n"
    with pytest.raises(rota.RotaImportError) as caught:
        rota.import_csv(text)
    assert [(r.line, r.message) for r in caught.value.bad_rows] == [
        (1, "missing column(s): tier")]


def test_a_file_with_only_a_header_is_refused(people):
    with pytest.raises(rota.RotaImportError) as caught:
        rota.import_csv(HEADER)
    assert "no rows" in caught.value.bad_rows[0].message


def test_the_admin_page_imports_an_uploaded_file_once(admin_client, people):
    before = _shift_count()
    response = _upload(admin_client, GOOD.encode())
    assert response.status_code == 302
    assert "Imported 4 shifts." in admin_client.get(response.location).get_data(
        as_text=True)
    response = _upload(admin_client, GOOD.encode())
    # Says why nothing was added.
    assert ("Imported 0 new shifts: all 4 shifts in the file were already in the rota."
            in admin_client.get(response.location).get_data(as_text=True))
    assert _shift_count() == before + 4
    logs = db.session.scalars(select(AccessLog.detail).where(
        AccessLog.action == "admin.rota_import").order_by(AccessLog.id)).all()
    assert logs == ["4 shifts", "0 shifts"]


def test_the_admin_page_lists_every_bad_row_and_imports_nothing(admin_client, people):
    before = _shift_count()
    response = _upload(admin_client, BAD.encode())
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "Nothing was imported" in page
    for line, message in BAD_LINES.items():
        assert f"Line {line}: " in page and message in page, line
    assert "Line 2:" not in page and "Line 9:" not in page
    assert _shift_count() == before
    assert db.session.scalar(select(func.count(AccessLog.id)).where(
        AccessLog.action == "admin.rota_import")) == 0


def test_the_admin_page_names_a_missing_column(admin_client, people):
    response = _upload(admin_client, b"email,hub,specialty,tier,start\n")
    assert response.status_code == 422
    assert "Line 1: missing column(s): end" in response.get_data(as_text=True)


def test_a_file_that_is_not_utf8_gets_a_message(admin_client, people):
    before = _shift_count()
    content = (HEADER + "jos\u00e9@qmc.nhs.uk,QMC,stroke,1,2030-11-03 08:00,"
               "2030-11-03 20:00\n").encode("cp1252")
    response = _upload(admin_client, content)
    assert response.status_code == 422
    assert "The file is not UTF-8 text" in response.get_data(as_text=True)
    assert _shift_count() == before


def test_an_upload_without_a_file_asks_for_one(admin_client):
    response = admin_client.post("/admin/rota", data={}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a CSV file." in response.get_data(as_text=True)


def _on_call_emails(tier, at):
    service = rota.find_hub_service("QMC", "stroke")
    return [u.email for u in rota.on_call(service, tier, at)]


def test_on_call_hands_over_at_twenty_hundred_local_time(people):
    rota.import_csv(GOOD)
    # 26 October 2030 is still BST: the 20:00 handover is at 19:00 UTC.
    assert _on_call_emails(1, _utc(2030, 10, 26, 7, 0)) == ["day@qmc.nhs.uk"]
    assert _on_call_emails(1, _utc(2030, 10, 26, 18, 59)) == ["day@qmc.nhs.uk"]
    assert _on_call_emails(1, _utc(2030, 10, 26, 19, 0)) == ["night@qmc.nhs.uk"]
    assert _on_call_emails(1, _utc(2030, 10, 26, 6, 59)) == []
    assert _on_call_emails(2, _utc(2030, 10, 26, 19, 0)) == ["consultant@qmc.nhs.uk"]


def test_on_call_covers_both_one_thirties_when_the_clocks_go_back(people):
    rota.import_csv(GOOD)
    first, second = _utc(2030, 10, 27, 0, 30), _utc(2030, 10, 27, 1, 30)  # 01:30 BST, GMT
    assert _on_call_emails(1, first) == _on_call_emails(1, second) == ["night@qmc.nhs.uk"]
    # The night shift is 13 hours long: it ends at 08:00 GMT, which is 08:00 UTC.
    assert _on_call_emails(1, _utc(2030, 10, 27, 7, 59)) == ["night@qmc.nhs.uk"]
    assert _on_call_emails(1, _utc(2030, 10, 27, 8, 0)) == ["day@qmc.nhs.uk"]
    assert _on_call_emails(2, _utc(2030, 10, 27, 7, 59)) == ["consultant@qmc.nhs.uk"]
    assert _on_call_emails(2, _utc(2030, 10, 27, 8, 0)) == []


def test_a_deactivated_specialist_is_not_on_call(people):
    from models import User
    from workflow.accounts.accounts import set_active

    rota.import_csv(GOOD)
    set_active(db.session.scalar(select(User).where(User.email == "night@qmc.nhs.uk")), False)
    assert _on_call_emails(1, _utc(2030, 10, 26, 22)) == []


def test_the_admin_page_lists_who_is_on_call_with_local_times(admin_client, people):
    from models import User

    rota.import_csv(GOOD)
    page = html.unescape(admin_client.get("/admin/rota").get_data(as_text=True))
    name = db.session.scalar(select(User.name).where(User.email == "night@qmc.nhs.uk"))
    night = ("<tr><td>Stroke (hyperacute), Queen's Medical Centre</td><td>1</td>"
             f"<td>{name}</td>\n      <td>Sat 26 Oct 2030 20:00</td>"
             "<td>Sun 27 Oct 2030 08:00</td></tr>")
    assert night in page
    # The seeded week is listed too: someone holds tier 2 for vascular at Leicester now.
    assert "Vascular surgery, Leicester Royal Infirmary</td><td>2</td><td>Vascular Consultant" \
        in page


def test_a_file_over_the_size_limit_is_refused_whole_not_cut_short(admin_client, people):
    from views.admin import ROTA_CSV_MAX_BYTES

    row = "day@qmc.nhs.uk,QMC,stroke,1,2030-11-05 08:00,2030-11-05 20:00\n"
    rows, spare = divmod(ROTA_CSV_MAX_BYTES - len(HEADER), len(row))
    # The first row padded (the tier's spaces are ignored) so that the limit falls exactly
    # between two rows: cut there, the file would still look whole.
    first = row.replace(",1,", "," + " " * spare + "1,")
    content = (HEADER + first + row * rows).encode()
    assert len(content) == ROTA_CSV_MAX_BYTES + len(row)
    before = _shift_count()
    # Encoded here, in memory: the test client would spool a large body to a temporary
    # file that it never closes (a ResourceWarning, an error under filterwarnings).
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(content), "rota.csv")})
    response = admin_client.post("/admin/rota", data=body,
                                 content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 422
    assert "The file is larger than 2 MB; split it and import each part." in \
        response.get_data(as_text=True)
    assert _shift_count() == before


def test_a_long_rota_reads_each_person_and_service_once(people):
    """A year's rota is thousands of rows naming a few people: the import's reads do not
    grow with the rows (it made 4 queries a row, minutes for a year inside a request)."""
    from sqlalchemy import event

    lines = [f"{name}@qmc.nhs.uk,QMC,stroke,{tier},2030-11-{day:02d} 08:00,"
             f"2030-11-{day:02d} 20:00"
             for day in range(1, 31) for name, tier in (("day", 1), ("consultant", 2))]
    reads = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert rota.import_csv(HEADER + "\n".join(lines) + "\n") == 60
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(reads) <= 12, f"{len(reads)} reads for 60 rows"


def test_a_re_import_says_why_nothing_was_added(people):
    assert rota.import_report(GOOD).message == "Imported 4 shifts."
    again = rota.import_report(GOOD)
    assert (again.added, again.listed) == (0, 4)
    assert again.message == ("Imported 0 new shifts: all 4 shifts in the file were "
                             "already in the rota.")
    extra = "day@qmc.nhs.uk,QMC,stroke,1,2030-12-01 08:00,2030-12-01 20:00\n"
    assert rota.import_report(GOOD + extra).message == (
        "Imported 1 shift; the other 4 were already in the rota.")
