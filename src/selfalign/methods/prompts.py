"""Prompt templates: Jinja2 files shipped in each method's `prompts/` folder. A user's folder
(`--templates DIR`) overrides any of them by file name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from selfalign.errors import UserError


class Prompts:
    def __init__(self, package_dir: Path, override_dir: str | Path | None = None) -> None:
        search = [str(override_dir)] if override_dir else []
        if override_dir and not Path(override_dir).is_dir():
            raise UserError(f"--templates {override_dir}: no such folder")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*search, str(package_dir)]),
            undefined=jinja2.StrictUndefined,  # a missing variable is an error, not an empty string
            keep_trailing_newline=False,
            autoescape=False,  # plain text for a model, not HTML
        )

    def render(self, name: str, **values: Any) -> str:
        try:
            return self.env.get_template(f"{name}.j2").render(**values).strip()
        except jinja2.TemplateError as exc:
            raise UserError(f"prompt template {name}.j2: {exc}") from exc

    def names(self) -> list[str]:
        return sorted(n[:-3] for n in self.env.list_templates(extensions=["j2"]))
