"""Security headers on every response, and no caching of anything but static files.

The pages use no inline script or style (the viewer's data travels in a
``<script type="application/json">`` block, which is not run), so the policy allows
scripts and styles from this site only. The viewer draws slices from ``blob:`` URLs.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HSTS = "max-age=31536000; includeSubDomains"


def _behind_tls() -> bool:
    return request.is_secure or current_app.config["PUBLIC_BASE_URL"].startswith("https://")


def secure_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if _behind_tls():
        headers["Strict-Transport-Security"] = HSTS
    # Patient pages, JSON and images: never kept by a browser or a proxy.
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(secure_headers)
