"""`python app.py` on a migrated, seeded database: what `make run` does, as a trust would."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.services import free_port, stop_process_group, wait_until
from workflow.seed import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _flask(env, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def served(tmp_path):
    """The app started by `python app.py` on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "FLASK_APP": "app.py", "PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'goldenhour.sqlite3'}",
           "SECRET_KEY": "a-secret-key-for-this-test-only-0123456789",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "GOLDENHOUR_ENV": "development"}
    _flask(env, "db", "upgrade")
    _flask(env, "seed-demo", "--quiet")
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{base}/login", timeout=2).ok, 30, "python app.py")
        yield base
    finally:
        stop_process_group(process)
        log.close()
        assert "Traceback" not in (tmp_path / "server.log").read_text()


def _sign_in(browser, served: str, email: str):
    page = browser.get(f"{served}/login", timeout=5)
    assert page.status_code == 200 and "<form" in page.text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    return browser.post(f"{served}/login", timeout=5, data={
        "csrf_token": token.group(1), "email": email, "password": DEMO_PASSWORD})


@pytest.mark.slow
def test_python_app_py_serves_the_login_page_and_a_demo_login_signs_in(served):
    """Production settings (nothing but the database configured): a referrer signs in
    with the password; an admin, whose role needs two-factor sign-in by default, is
    sent to set up an authenticator first."""
    with requests.Session() as browser:
        home = _sign_in(browser, served, "referrer@pil.demo.nhs.uk")
        assert home.status_code == 200 and home.url == f"{served}/"
        assert "Hello, Dr Rhys Referrer" in home.text
    with requests.Session() as browser:
        enrol = _sign_in(browser, served, "admin@em.demo.nhs.uk")
        assert enrol.status_code == 200 and enrol.url == f"{served}/two-factor/enrol"
        assert browser.get(f"{served}/admin/users", timeout=5,
                           allow_redirects=False).status_code == 302
