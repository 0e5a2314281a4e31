"""The package's shape, as DESIGN.md draws it: imports point down the layers, no module imports
itself back through others (an import circle), counting imports made inside functions, and no
source file runs past 400 lines without saying why at its top."""

from __future__ import annotations

import ast
from pathlib import Path

import selfalign

PACKAGE = Path(selfalign.__file__).parent
#: DESIGN.md's layers, top first; `serve` sits below `cli`. What SHARED names serves every layer.
LAYERS = ["cli", "serve", "report", "evaluate", "train", "methods", "runner", "store", "llm"]
SHARED = {"", "errors", "redact", "progress", "formats", "data"}  # "": the package itself (its version)
MAX_LINES = 400
#: What a longer file's opening lines say, followed by the reason it is one file.
LONG_FILE_REASON = "Longer than 400 lines because"


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The selfalign modules `name` imports anywhere in its code, except under TYPE_CHECKING.
    `from . import x` of a submodule counts as importing the submodule, not the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & known.keys()
            found.update(submodules or {source})
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_module_imports_itself_back_through_others():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_point_down_the_layers():
    upward = []
    for module, imports in import_graph().items():
        if layer(module) not in LAYERS:
            continue
        for target in imports:
            if layer(target) in SHARED or layer(target) == layer(module):
                continue
            if layer(target) not in LAYERS or LAYERS.index(layer(target)) <= LAYERS.index(layer(module)):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_long_files_say_why_at_their_top():
    unexplained = []
    for module, path in module_files().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_LINES and not any(LONG_FILE_REASON in line for line in lines[:15]):
            unexplained.append(f"{path.relative_to(PACKAGE.parent)}: {len(lines)} lines")
    assert unexplained == [], f"split these by job, or give the reason at the top ({LONG_FILE_REASON} ...)"
