"""The alignment methods. Each is a folder with its prompts, its record schema, an async
`run_item(item, model, config) -> Record`, and `EXPORTS`: format name -> a function from the
run's done records to `store.export.Exported` (the rows, and what was left out and why)."""

from __future__ import annotations

import importlib
from types import ModuleType

# The run store records a run's method by name; `export` finds the method's module here.
METHOD_MODULES = {
    "critique-revise": "selfalign.methods.critique",
    "matrix": "selfalign.methods.matrix",
    "sandbox": "selfalign.methods.sandbox",
    "principles": "selfalign.methods.principles.principled",
    "verbose": "selfalign.methods.principles.verbose",
}


def method_module(name: str) -> ModuleType:
    return importlib.import_module(METHOD_MODULES[name])
