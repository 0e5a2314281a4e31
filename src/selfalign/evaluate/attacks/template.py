"""Jailbreak templates: the behaviour placed into a written prompt that tries to talk the model
out of refusing. One variant per template.

`--jailbreaks FILE` replaces the shipped set (`data/jailbreaks.jsonl`, written for this project).
Rows are `{"name": ..., "template": "... {behavior} ..."}`, or the public in-the-wild format (a
`prompt` field holding the jailbreak text, as JSONL or CSV), whose placeholder for the request
is `[INSERT PROMPT HERE]`. A template without a placeholder gets the request after it, on its own
paragraph, as in-the-wild jailbreaks are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfalign.errors import InputError
from selfalign.formats.rows import BrokenRow, read_rows, rows_of_text

from .base import Attempt, AttackContext, Behavior
from .options import AttackOptions

PLACEHOLDERS = ("{behavior}", "[INSERT PROMPT HERE]")
FIX = ('each row must be {"name": "NAME", "template": "... {behavior} ..."}, or an in-the-wild row with the jailbreak '
       'text in "prompt" (its request placeholder [INSERT PROMPT HERE])')


@dataclass(frozen=True)
class Jailbreak:
    name: str
    template: str

    def apply(self, behavior: str) -> str:
        placeholder = next((p for p in PLACEHOLDERS if p in self.template), None)
        if placeholder is None:
            return f"{self.template.rstrip()}\n\n{behavior}"
        return self.template.replace(placeholder, behavior)


def load_jailbreaks(path: str | None) -> list[Jailbreak]:
    if path is None:
        where = "selfalign/evaluate/attacks/data/jailbreaks.jsonl"
        rows = rows_of_text(resources.files(__package__).joinpath("data/jailbreaks.jsonl").read_text("utf-8"), where, ".jsonl", FIX)
    elif not Path(path).is_file():
        raise InputError(f"--jailbreaks {path}: no such file; {FIX}")
    else:
        rows = read_rows(path, FIX)
    jailbreaks: dict[str, Jailbreak] = {}
    for n, row in enumerate(rows, 1):
        value = row.value
        if isinstance(value, BrokenRow):
            raise InputError(value.problem)
        if not isinstance(value, dict):
            raise InputError(f"{row.where}: expected an object, got {type(value).__name__}; {FIX}")
        text = value.get("template", value.get("prompt"))
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{row.where}: no jailbreak text in 'template' or 'prompt' (fields: {sorted(value)}); {FIX}")
        name = str(value.get("name") or value.get("id") or f"row{n}").strip()
        if name in jailbreaks:
            raise InputError(f"{row.where}: a second template named {name!r}; give each a unique 'name'")
        jailbreaks[name] = Jailbreak(name, text)
    if not jailbreaks:
        raise InputError(f"{path}: no templates; {FIX}")
    return list(jailbreaks.values())


class TemplateAttack:
    name = "template"
    needs: tuple[str, ...] = ()
    harmful_only = True

    def __init__(self, options: AttackOptions) -> None:
        self.jailbreaks = {j.name: j for j in load_jailbreaks(options.jailbreaks_file)}

    def variants(self) -> list[str]:
        return list(self.jailbreaks)

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt:
        messages = [{"role": "user", "content": self.jailbreaks[variant].apply(behavior.text)}]
        return Attempt(messages, await ctx.ask(messages))


FACTORIES = {"template": TemplateAttack}
