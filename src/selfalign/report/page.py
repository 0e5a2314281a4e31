"""The report page: one HTML file holding its data, scripts and styles, that asks for nothing.

The data is one JSON block (`<script type="application/json">`, never run) in which "<", ">" and
"&" are written as \\u escapes, so no text in it can close the block or open a comment; the
page's own script parses it and puts model text on screen with `textContent` only. Past
COMPRESS_ABOVE bytes the JSON is gzipped and written as base64 (a quarter of the size for MATRIX
records), which the browser inflates with its own DecompressionStream (`<script type="application/gzip">`). The
Content-Security-Policy allows exactly the page's own inline script and style (by their
SHA-256) and data: images, and no connection of any kind.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
from importlib import resources
from typing import Any

from selfalign import __version__

ASSETS = resources.files(__package__) / "assets"
SCHEMA = "selfalign.report/1"
COMPRESS_ABOVE = 8_000_000  # bytes of JSON

# what a JSON string may hold that HTML would read: escaped the way JSON itself allows
_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def render_page(runs: list[dict[str, Any]], compress_above: int = COMPRESS_ABOVE) -> str:
    script = _script()
    style = (ASSETS / "report.css").read_text("utf-8")
    data = embed_json({"schema": SCHEMA, "version": __version__, "runs": runs})
    kind = "application/json"
    if len(data) > compress_above:
        data, kind = base64.b64encode(gzip.compress(data.encode("utf-8"), 6)).decode("ascii"), "application/gzip"
    csp = (
        f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>selfalign report</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n"
        "<noscript>This report draws itself with JavaScript; open it in a browser with scripts on.</noscript>\n"
        "<div id=\"app\"></div>\n"
        f"<script type=\"{kind}\" id=\"report-data\">{data}</script>\n"
        f"<script>{script}</script>\n</body>\n</html>\n"
    )


def embed_json(value: Any) -> str:
    """JSON that is safe between <script> tags: nothing in it reads as HTML."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or infinity somewhere, which JSON cannot hold: null instead
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in _UNSAFE.items():
        text = text.replace(char, escaped)
    # a lone surrogate (model text can hold one) cannot be UTF-8: keep it as its JSON escape
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _script() -> str:
    """The page's script: the core, then every view (each sets VIEWS[kind]), then the start."""
    views = sorted(p for p in (ASSETS / "views").iterdir() if p.name.endswith(".js"))
    parts = [(ASSETS / "report.js").read_text("utf-8"), *(p.read_text("utf-8") for p in views), "start();"]
    return "\n".join(parts)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
