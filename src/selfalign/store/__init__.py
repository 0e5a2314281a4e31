"""The run store (one SQLite file per run), input loading and dataset export."""

from .inputs import Item, load_items
from .run_store import RunStore

__all__ = ["Item", "RunStore", "load_items"]
