"""Seeds derived from the run seed, the item and the step, so every call of a run has its own
reproducible seed whatever order items finish in."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts: derive_seed(run_seed, item_id, "critique")."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
