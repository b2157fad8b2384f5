"""Reading a written report back: its images, and checks that it needs nothing from outside."""

from __future__ import annotations

import base64
import re

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def images(html: str) -> list[bytes]:
    """The decoded bytes of every <img> data URI in ``html``."""
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [base64.b64decode(u) for u in uris]


def external_references(html: str) -> list[str]:
    """Every src/href that would fetch something: anything but data: URIs, #anchors and relative files."""
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    refs += re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if re.match(r"^\s*(https?:|//|ftp:)", r)] + re.findall(r"<link\b[^>]*>", html)
