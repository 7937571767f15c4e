"""The base layout: everything served by the app itself, readable on a phone."""

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from extensions import db
from models import User

# src, href, action, poster, srcset and CSS url() values
URL_ATTRIBUTE = re.compile(r"""(?:\b(?:src|href|action|poster|srcset)\s*=\s*["']?|url\(\s*["']?)
                               ([^"'\s>)]+)""", re.I | re.X)
OWN_HOSTS = {"127.0.0.1:5000", "localhost", "127.0.0.1"}


def _external(text: str) -> list[str]:
    """Every URL in ``text`` that would load from (or send to) another host."""
    found = []
    for url in URL_ATTRIBUTE.findall(text):
        parts = urlsplit(url)
        if url.startswith("//") or parts.scheme in {"http", "https"}:
            if parts.netloc not in OWN_HOSTS:
                found.append(url)
    return found


def test_the_external_url_check_catches_what_it_should():
    page = ('<link rel="stylesheet" href="https://cdn.example/x.css">'
            '<script src="//unpkg.com/htmx.js"></script><img src=http://img.example/a.png>'
            '<a href="/admin/">ok</a><style>body{background:url(https://x.example/b.png)}'
            '</style><a href="http://127.0.0.1:5000/">own host</a>')
    assert _external(page) == ["https://cdn.example/x.css", "//unpkg.com/htmx.js",
                               "http://img.example/a.png", "https://x.example/b.png"]


def _html_pages(app, client):
    """(url, html) for every GET page the signed-in admin can reach, plus the 404 page."""
    user_id = db.session.scalar(select(User.id).order_by(User.id))
    pages = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if rule.rule.startswith("/webhooks/"):
            continue  # Twilio's, not a person's: signed requests only (503 without a token)
        if rule.endpoint == "home.ready":
            continue  # the load balancer's, JSON; 503 is its answer while no scheduler sweeps
        url = re.sub(r"<(?:\w+:)?\w+>", str(user_id), rule.rule)
        response = client.get(url)
        assert response.status_code < 500, f"{url} failed with {response.status_code}"
        if response.mimetype == "text/html" and not 300 <= response.status_code < 400:
            pages.append((url, response.get_data(as_text=True)))
        response.close()  # a file sent as it is (the service worker) holds it open
    response = client.get("/no-such-page")
    assert response.status_code == 404
    pages.append(("/no-such-page", response.get_data(as_text=True)))
    return pages


@pytest.fixture
def admin_pages(app, client, network):
    client.login("admin@em.demo.nhs.uk", "goldenhour-demo")
    pages = _html_pages(app, client)
    assert {"/", "/admin/", "/admin/users", "/admin/hospitals", "/admin/rota"} <= {
        url for url, _ in pages}
    return pages


def test_no_page_loads_anything_from_another_host(admin_pages, client):
    for url, page in admin_pages:
        assert _external(page) == [], url
    client.logout()
    assert _external(client.get("/login").get_data(as_text=True)) == []


def test_every_page_has_the_viewport_meta_for_phones(admin_pages, client):
    viewport = '<meta name="viewport" content="width=device-width, initial-scale=1">'
    for url, page in admin_pages:
        assert viewport in page, url
    client.logout()
    assert viewport in client.get("/login").get_data(as_text=True)


def test_the_stylesheet_is_served_by_the_app(admin_pages, client):
    hrefs = set()
    for _url, page in admin_pages:
        hrefs.update(re.findall(r'<link rel="stylesheet" href="([^"]+)"', page))
    assert hrefs == {"/static/css/app.css"}
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    css = response.get_data(as_text=True)
    response.close()
    assert "@media" in css and "prefers-color-scheme" in css
    assert _external(css) == [] and "@import" not in css
