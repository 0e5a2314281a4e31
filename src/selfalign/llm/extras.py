"""Lazy imports of optional dependencies, with the command that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or fail with the pip command for the selfalign extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"'{module}' is needed here but not installed. Install it with:\n"
            f"    pip install 'selfalign[{extra}]'"
        ) from exc
