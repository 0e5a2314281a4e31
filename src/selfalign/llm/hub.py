"""Whether the Hugging Face hub can be asked now, decided in seconds.

Without a network, transformers, huggingface_hub and datasets retry a hub id's downloads with
backoff for half a minute to a minute before they say so. So before a hub id is loaded, one TCP
connection to the hub's host (HF_ENDPOINT) is tried with a short timeout: when it fails, or
HF_HUB_OFFLINE is set, a model in the local hub cache loads from there (`local_files_only`,
checkpoints.py), a dataset from the datasets cache (`load_hub_dataset`), and one that is in
neither fails at once saying why. Behind a proxy (HTTPS_PROXY and the like) the hub is left to
answer.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any
from urllib.parse import urlsplit

#: Seconds the one connection to the hub's host may take.
CONNECT_TIMEOUT = 3.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_unreachable() -> str | None:
    """Why the hub cannot be asked now, or None when it can (or a proxy decides)."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    return _connect(constants.ENDPOINT)


@functools.lru_cache(maxsize=None)
def _connect(endpoint: str) -> str | None:
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        return f"{host} cannot be reached ({type(exc).__name__}: {exc})"
    return None


def in_hub_cache(repo_id: str) -> bool:
    """Whether a model `repo_id` lies in the local hub cache (its config.json, at least)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def load_hub_dataset(name: str, *args: Any, **kwargs: Any) -> Any:
    """`datasets.load_dataset(name, ...)`; when the hub cannot be asked, from the datasets cache
    alone (datasets' offline mode), failing at once with why when it is not there."""
    import datasets.config
    from datasets import load_dataset

    unreachable = hub_unreachable()
    if unreachable is None:
        return load_dataset(name, *args, **kwargs)
    saved, datasets.config.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE, True
    try:
        return load_dataset(name, *args, **kwargs)
    except Exception as exc:
        raise ConnectionError(f"not in the local datasets cache, and the hub cannot be asked: {unreachable}") from exc
    finally:
        datasets.config.HF_HUB_OFFLINE = saved
