"""Prompt templates: Jinja2 files shipped in each method's `prompts/` folder. A user's folder
(`--templates DIR`) overrides any of them by file name.

Templates render in a bounded sandbox (`jinja_sandbox.py`): a user's template is untrusted
input. A user's templates are checked when the folder is opened, before any model call: each
must replace a shipped template, compile, use only the variables the shipped one is given,
reach for no attribute outside them (`_` names), and render within the bounds when given
stand-in values. A render that breaks the sandbox or a bound later (on a branch the check did
not take) fails with the file and line too.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SecurityError

from selfalign.errors import UserError

from .jinja_sandbox import BoundedSandbox, render_bounded

OPTIONS: dict[str, Any] = {
    "undefined": jinja2.StrictUndefined,  # a missing variable is an error, not an empty string
    "keep_trailing_newline": False,
    "autoescape": False,  # plain text for a model, not HTML
    "auto_reload": False,  # templates do not change during a run; no stat per render
}

#: What a render can raise besides jinja's own errors: the sandbox's `range` past its limit.
_RENDER_ERRORS = (jinja2.TemplateError, OverflowError, RecursionError)


@functools.cache
def _environment(folders: tuple[str, ...]) -> BoundedSandbox:
    """The templates of these folders (the first one found wins), made once per process with
    every template compiled: a run never waits for a compile."""
    env = BoundedSandbox(loader=jinja2.FileSystemLoader(list(folders)), **OPTIONS)
    for name in env.list_templates(extensions=["j2"]):
        if "/" not in name:  # the templates a method renders (a user's are checked before)
            env.get_template(name)
    return env


class Prompts:
    def __init__(self, package_dir: Path, override_dir: str | Path | None = None) -> None:
        search = [str(override_dir)] if override_dir else []
        if override_dir and not Path(override_dir).is_dir():
            raise UserError(f"--templates {override_dir}: no such folder")
        if override_dir:
            for path in sorted(Path(override_dir).glob("*.j2")):
                _check(path, Path(package_dir))
        self.env = _environment((*search, str(package_dir)))
        self._templates: dict[str, jinja2.Template] = {}  # by name: jinja's own lookup takes a lock each time

    def render(self, name: str, **values: Any) -> str:
        try:
            template = self._templates.get(name)
            if template is None:
                template = self._templates[name] = self.env.get_template(f"{name}.j2")
            return render_bounded(template, values).strip()
        except _RENDER_ERRORS as exc:
            where = _where(exc) or f"prompt template {name}.j2"
            raise UserError(f"{where}: {_reason(exc)}") from exc

    def source(self, name: str) -> str:
        """The text of template `name` as found (the user's file, or the shipped one)."""
        try:
            return self.env.loader.get_source(self.env, f"{name}.j2")[0]  # type: ignore[union-attr]
        except jinja2.TemplateNotFound as exc:
            raise UserError(f"prompt template {name}.j2 not found") from exc

    def names(self) -> list[str]:
        return sorted(n[:-3] for n in self.env.list_templates(extensions=["j2"]))


def _check(path: Path, package_dir: Path) -> None:
    """A user's template replaces a shipped one, compiles, uses only its variables and their
    public attributes, and renders within the sandbox's bounds."""
    env = BoundedSandbox(loader=jinja2.FileSystemLoader(str(path.parent)), **OPTIONS)
    shipped = package_dir / path.name
    if not shipped.is_file():
        names = ", ".join(sorted(p.name for p in package_dir.glob("*.j2")))
        raise UserError(f"{path}: replaces no template of this method (a typo?); its templates are {names}")
    try:
        source = path.read_text("utf-8")
        tree = env.parse(source, path.name, str(path))
        template = env.get_template(path.name)  # unknown filters and tests show here
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: {exc.message}; fix the Jinja2 syntax on that line") from exc
    given = meta.find_undeclared_variables(env.parse(shipped.read_text("utf-8"))) - set(env.globals)
    unknown = meta.find_undeclared_variables(tree) - given - set(env.globals)
    if unknown:
        name = min(unknown, key=lambda n: _first_line(tree, n))
        raise UserError(
            f"{path}:{_first_line(tree, name)}: uses the variable {name!r}, which {path.name} is not given; "
            f"it is given {', '.join(sorted(given)) or 'no variables'}"
        )
    _check_attributes(tree, path)
    _dry_render(template, given, path)


def _check_attributes(tree: nodes.Template, path: Path) -> None:
    """No `x._name` nor `x['_name']`: the sandbox hides them; a template that asks is refused here."""
    for node in reversed(list(tree.find_all((nodes.Getattr, nodes.Getitem)))):  # innermost first
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise UserError(
                f"{path}:{node.lineno}: reaches for the attribute {name!r}, outside the values it is given; "
                "templates may read their variables and their public fields only"
            )


class _Probe:
    """A stand-in for every variable in the dry render: any field, item or call gives another."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Probe()

    def __getitem__(self, key: Any) -> Any:
        return _Probe()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _Probe()

    def __iter__(self) -> Any:
        return iter([_Probe()])

    def __len__(self) -> int:
        return 1

    def __str__(self) -> str:
        return "x"

    def __int__(self) -> int:
        return 1

    def __float__(self) -> float:
        return 1.0


def _dry_render(template: jinja2.Template, given: set[str], path: Path) -> None:
    """Render with stand-in values: a template that breaks the sandbox or a bound on the way
    is refused now. Other errors (a stand-in that is not the right type) prove nothing."""
    try:
        render_bounded(template, {name: _Probe() for name in given})
    except (SecurityError, OverflowError, RecursionError) as exc:
        line = _line(exc, template.filename)
        raise UserError(f"{path}:{line or 1}: {_reason(exc)}") from exc
    except Exception:  # noqa: BLE001 (the stand-ins' fault, not the template's)
        pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (SecurityError, OverflowError, RecursionError)):  # the sandbox's range raises OverflowError
        return f"refused by the template sandbox: {exc}"
    return str(exc)


def _where(exc: BaseException) -> str | None:
    """`file:line` of the template frame that raised `exc` (jinja puts template lines in tracebacks)."""
    tb: TracebackType | None = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    if found is None and isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        found = f"{exc.filename}:{exc.lineno}"
    return found


def _line(exc: BaseException, filename: str | None) -> int | None:
    tb: TracebackType | None = exc.__traceback__
    line = None
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _first_line(tree: nodes.Template, name: str) -> int:
    return min((n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"), default=1)
