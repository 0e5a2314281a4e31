"""Prompt templates: Jinja2 files shipped in each method's `prompts/` folder. A user's folder
(`--templates DIR`) overrides any of them by file name.

A user's templates are checked when the folder is opened, before any model call: each must
replace a shipped template, compile, and use only the variables the shipped one is given.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes

from selfalign.errors import UserError


class _Environment(jinja2.Environment):
    """Templates whose globals are a plain dict, not jinja's ChainMap over the environment's:
    every render copies the globals into its context, and copying a ChainMap costs most of a
    short template's render. Nothing changes the globals once the templates are loaded."""

    def make_globals(self, d: dict[str, Any] | None) -> dict[str, Any]:  # type: ignore[override]
        return {**self.globals, **(d or {})}


OPTIONS: dict[str, Any] = {
    "undefined": jinja2.StrictUndefined,  # a missing variable is an error, not an empty string
    "keep_trailing_newline": False,
    "autoescape": False,  # plain text for a model, not HTML
    "auto_reload": False,  # templates do not change during a run; no stat per render
}


@functools.cache
def _environment(folders: tuple[str, ...]) -> _Environment:
    """The templates of these folders (the first one found wins), made once per process with
    every template compiled: a run never waits for a compile."""
    env = _Environment(loader=jinja2.FileSystemLoader(list(folders)), **OPTIONS)
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

    def render(self, name: str, **values: Any) -> str:
        try:
            return self.env.get_template(f"{name}.j2").render(**values).strip()
        except jinja2.TemplateError as exc:
            raise UserError(f"prompt template {name}.j2: {exc}") from exc

    def source(self, name: str) -> str:
        """The text of template `name` as found (the user's file, or the shipped one)."""
        try:
            return self.env.loader.get_source(self.env, f"{name}.j2")[0]  # type: ignore[union-attr]
        except jinja2.TemplateNotFound as exc:
            raise UserError(f"prompt template {name}.j2 not found") from exc

    def names(self) -> list[str]:
        return sorted(n[:-3] for n in self.env.list_templates(extensions=["j2"]))


def _check(path: Path, package_dir: Path) -> None:
    """A user's template replaces a shipped one, compiles, and uses only its variables."""
    env = _Environment(**OPTIONS)
    shipped = package_dir / path.name
    if not shipped.is_file():
        names = ", ".join(sorted(p.name for p in package_dir.glob("*.j2")))
        raise UserError(f"{path}: replaces no template of this method (a typo?); its templates are {names}")
    try:
        source = path.read_text("utf-8")
        tree = env.parse(source, path.name, str(path))
        env.compile(source, path.name, str(path))  # unknown filters and tests show here
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: {exc.message}; fix the Jinja2 syntax on that line") from exc
    given = meta.find_undeclared_variables(env.parse(shipped.read_text("utf-8")))
    unknown = meta.find_undeclared_variables(tree) - given
    if unknown:
        name = min(unknown, key=lambda n: _first_line(tree, n))
        raise UserError(
            f"{path}:{_first_line(tree, name)}: uses the variable {name!r}, which {path.name} is not given; "
            f"it is given {', '.join(sorted(given)) or 'no variables'}"
        )


def _first_line(tree: nodes.Template, name: str) -> int:
    return min((n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"), default=1)
