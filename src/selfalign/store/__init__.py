"""The run store (one SQLite file per run), input loading and dataset export."""

from .inputs import Inputs, Item, check_inputs, load_items
from .run_store import RunStore

__all__ = ["Inputs", "Item", "RunStore", "check_inputs", "load_items"]
