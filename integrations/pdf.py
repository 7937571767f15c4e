"""Decision-record PDFs with WeasyPrint, fetching nothing but our own assets.

Patient text may contain `<img src=http://...>` or `file:///etc/passwd`; it is
escaped by the template, and even if markup slipped through, the URL fetcher refuses
every URL except `data:` and files under the app's static folder.
"""

from __future__ import annotations

import threading
from pathlib import Path

ASSET_SCHEME = "goldenhour-asset:"


class PdfError(Exception):
    """The record could not be rendered; the message says why."""


_fonts = None
_fonts_lock = threading.Lock()


def _font_config():
    # Reusing one FontConfiguration saves ~0.2 s a render; WeasyPrint import is slow,
    # so it happens here, on first use, not at app start.
    global _fonts
    with _fonts_lock:
        if _fonts is None:
            from weasyprint.text.fonts import FontConfiguration

            _fonts = FontConfiguration()
        return _fonts


def make_fetcher(static_dir: Path, refused: list[str]):
    """A WeasyPrint URL fetcher allowing only data: URLs and our static files."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    root = static_dir.resolve()

    class LocalAssetsFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            if url.startswith("data:"):
                return super().fetch(url, headers)
            if url.startswith(ASSET_SCHEME):
                path = (root / url[len(ASSET_SCHEME):].lstrip("/")).resolve()
                if path.is_file() and root in path.parents:
                    return URLFetcherResponse(url, path.read_bytes())
            refused.append(url)
            raise ValueError(f"goldenhour records fetch nothing from {url[:80]!r}")

    return LocalAssetsFetcher(allowed_protocols={"data"}, timeout=1)


def render_pdf(html: str, static_dir: Path) -> tuple[bytes, list[str]]:
    """Render ``html`` to PDF bytes; return (bytes, URLs that were refused).

    Raises PdfError if WeasyPrint fails.
    """
    import weasyprint

    refused: list[str] = []
    try:
        document = weasyprint.HTML(string=html, base_url=ASSET_SCHEME + "/",
                                   url_fetcher=make_fetcher(static_dir, refused))
        pdf = document.write_pdf(font_config=_font_config(), pdf_identifier=b"goldenhour",
                                 uncompressed_pdf=False)
    except Exception as exc:  # noqa: BLE001 - WeasyPrint raises many types
        raise PdfError(f"the PDF could not be rendered ({type(exc).__name__}: {exc})") from None
    return pdf, refused
