"""The report page: one HTML file holding its data, scripts and styles, that asks for nothing.

The data is one JSON block (`<script type="application/json">`, never run) in which "<", ">" and
"&" are written as \\u escapes, so no text in it can close the block or open a comment; the
page's own script parses it and puts model text on screen with `textContent` only. Past
COMPRESS_ABOVE bytes the JSON is gzipped and written as base64 (a quarter of the size for MATRIX
records), which the browser inflates with its own DecompressionStream (`<script type="application/gzip">`). The
Content-Security-Policy allows exactly the page's own inline script and style (by their
SHA-256) and data: images, and no connection of any kind.

Inflating and parsing is most of the time a large page takes to open, so a large page holds the
record keys that only an item's detail shows (a run's "deferred" keys: MATRIX's scene and events)
in blocks of their own after the script, each about BLOCK_BYTES of JSON, gzipped: the page opens
with the rest and inflates a block when one of its items is opened. The browser draws the list
while it is still reading those blocks.
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
BLOCK_BYTES = 1_000_000  # of JSON per block of deferred record keys: one inflates in a few milliseconds

# what a JSON string may hold that HTML would read: escaped the way JSON itself allows
_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def render_page(runs: list[dict[str, Any]], compress_above: int = COMPRESS_ABOVE, notes: list[str] = ()) -> str:
    """The page of `runs`, with `notes` (what it cannot show as a run) above the overview."""
    script = _script()
    style = (ASSETS / "report.css").read_text("utf-8")
    data, kind, blocks = embed_json(_payload(runs, notes)), "application/json", []
    if len(data) > compress_above:
        runs, blocks = defer(runs)
        data, kind = _gzip64(embed_json(_payload(runs, notes))), "application/gzip"
    csp = (
        f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    deferred = "".join(f"<script type=\"application/gzip\" id=\"{name}\">{_gzip64(block)}</script>\n" for name, block in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>selfalign report</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n"
        "<noscript>This report draws itself with JavaScript; open it in a browser with scripts on.</noscript>\n"
        "<div id=\"app\"></div>\n"
        f"<script type=\"{kind}\" id=\"report-data\">{data}</script>\n"
        f"<script>{script}</script>\n{deferred}</body>\n</html>\n"
    )


def _payload(runs: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    return {"schema": SCHEMA, "version": __version__, "notes": list(notes),
            "runs": [{k: v for k, v in run.items() if k != "deferred"} for run in runs]}


def defer(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The runs with each item's deferred record keys taken out, and the blocks that hold them:
    (name, JSON of {item id: those keys}). An item whose keys went into a block names it ("more")."""
    out, blocks = [], []
    for r, run in enumerate(runs):
        keys = set(run.get("deferred", ()))
        if not keys:
            out.append(run)
            continue
        items, parts, size = [], [], 0
        for item in run["view"]["items"]:
            record = item["record"]
            if not isinstance(record, dict) or not keys & record.keys():
                items.append(item)
                continue
            name = f"more-{r}-{len(blocks)}"
            parts.append(f"{embed_json(item['id'])}:{embed_json({k: v for k, v in record.items() if k in keys})}")
            size += len(parts[-1])
            items.append({**item, "record": {k: v for k, v in record.items() if k not in keys}, "more": name})
            if size >= BLOCK_BYTES:
                blocks.append((name, "{" + ",".join(parts) + "}"))
                parts, size = [], 0
        if parts:
            blocks.append((f"more-{r}-{len(blocks)}", "{" + ",".join(parts) + "}"))
        out.append({**run, "view": {**run["view"], "items": items}})
    return out, blocks


def _gzip64(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 6)).decode("ascii")


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
