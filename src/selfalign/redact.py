"""Secrets out of error text: the one function every error passes through before it is stored
(run.sqlite), printed (the console, logs), exported or shown in a report.

    redact("HTTP 401: bad key sk-proj-abc123def456 for Bearer eyJhbGciOi...")
    # -> "HTTP 401: bad key [redacted] for Bearer [redacted]"

What is redacted: the API keys configured for this process (`add_secret`, and the values of
environment variables named *_API_KEY, *_TOKEN, *_SECRET, *_PASSWORD), and anything shaped like
a key wherever it comes from: `sk-...`, `Bearer ...`, `api_key=...`, `hf_...`, `ghp_...`, and
the password in a URL (`https://user:password@host`).
"""

from __future__ import annotations

import logging
import os
import re

MARK = "[redacted]"
_MIN_SECRET = 8  # shorter values ("EMPTY", "none") are placeholders, and redacting them would garble text
_SECRET_ENV = re.compile(r"(?:^|_)(?:API_?KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
_SHAPES = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),  # OpenAI and compatible keys (sk-..., sk-proj-...)
    re.compile(r"\b(?:hf|ghp|gho|ghs|xox[abp])_[A-Za-z0-9]{16,}"),  # Hugging Face, GitHub, Slack tokens
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)(\b(?:api[_-]?key|access[_-]?token|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]{8,}"),
    re.compile(r"(://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
]
_added: set[str] = set()


def add_secret(value: str | None) -> None:
    """Redact `value` (a configured API key) from every error from now on."""
    if value and len(value) >= _MIN_SECRET:
        _added.add(value)


def _secrets() -> list[str]:
    from_env = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET}
    return sorted(_added | from_env, key=len, reverse=True)  # a key inside a longer one goes second


def redact(text: str) -> str:
    """`text` with every secret replaced by [redacted]."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MARK)
    for shape in _SHAPES:
        text = shape.sub(lambda m: (m.group(1) if m.re.groups else "") + MARK, text)
    return text


def redact_exception(exc: BaseException) -> BaseException:
    """`exc` with its message (string arguments) redacted in place, and so its causes."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.args = tuple(redact(a) if isinstance(a, str) else a for a in link.args)
        link = link.__cause__ or link.__context__
    return exc


def redact_log_records() -> None:
    """Every log record made from now on, by any logger, has its message (and its exception's)
    redacted as it is made: whichever handler prints it (tqdm's during a run included)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacted(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            redact_exception(record.exc_info[1])
        return record

    redacted.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted)
