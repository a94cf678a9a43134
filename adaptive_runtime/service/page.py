"""The dashboard page, and the headers that keep a browser from misusing any response.

The page is one file with its script and style inline. Its content security policy
allows exactly those two blocks (by their SHA-256, computed from the file as shipped),
reads from this server only, and forbids framing: a page that takes a token must not be
framed by another site (clickjacking), nor run a script that an injection put there.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

__all__ = ["EVERY_RESPONSE", "Page", "dashboard_page"]

# On every response, the API's JSON and problems included: no type sniffing (a JSON body
# is never run as a script), and no URL of this server sent on to other sites.
EVERY_RESPONSE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class Page:
    """An HTML page and the headers it is served with."""

    def __init__(self, html: str) -> None:
        self.html = html
        scripts = _inline(html, "script")
        styles = _inline(html, "style")
        policy = {
            "default-src": "'none'",
            "script-src": " ".join(scripts) or "'none'",
            "style-src": " ".join(styles) or "'none'",
            "connect-src": "'self'",
            "img-src": "'self'",
            "base-uri": "'none'",
            "form-action": "'none'",
            "frame-ancestors": "'none'",
        }
        self.headers = {
            "Content-Security-Policy": "; ".join(f"{k} {v}" for k, v in policy.items()),
            "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
            "Cache-Control": "no-cache",
        }


def _inline(html: str, tag: str) -> list[str]:
    """The CSP source of each inline `<tag>` block: its text's SHA-256, base64."""
    found = re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", html, flags=re.DOTALL)
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"
        for text in found
    ]


@cache
def dashboard_page() -> Page:
    """The dashboard, read once from the package."""
    return Page(resources.files(__package__).joinpath("dashboard/index.html").read_text("utf-8"))
