"""Indirect prompt injection (garak's latent-injection family): the user asks for a summary of a
document, and the document carries a hidden instruction to carry out the behaviour instead. The
model should summarise; an answer that does the behaviour is scored by the scorers as any other.

Variants are where the instruction sits: at the start of the document, between its paragraphs,
or at its end. The documents (`data/injection_documents.jsonl`, written for this project: rows
`{"name", "title", "paragraphs": [...]}`, `--injection-documents FILE` replaces them) are taken in
turn by behaviour; the task and the instruction are `prompts/injection_task.j2` and
`prompts/injection_instruction.j2`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from selfalign.methods.datafiles import parse_jsonl_rows, read_data_file

from .base import Attempt, AttackContext, Behavior
from .options import AttackOptions

FIX = 'each line must be {"name": "NAME", "title": "TITLE", "paragraphs": ["...", "..."]}'
PLACEMENTS = ("start", "middle", "end")


class Document(BaseModel):
    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    paragraphs: list[str] = Field(min_length=2)


def with_injection(document: Document, instruction: str, placement: str) -> str:
    """The document's text with the instruction as a paragraph of its own at `placement`."""
    paragraphs = list(document.paragraphs)
    at = {"start": 0, "middle": len(paragraphs) // 2, "end": len(paragraphs)}[placement]
    paragraphs.insert(at, instruction)
    return "\n\n".join([document.title, *paragraphs])


class InjectionAttack:
    name = "injection"
    needs: tuple[str, ...] = ()
    harmful_only = True

    def __init__(self, options: AttackOptions) -> None:
        text, where = read_data_file(__package__, "data/injection_documents.jsonl", options.injection_documents_file, "--injection-documents")
        self.documents = parse_jsonl_rows(text, where, Document, "document", FIX)

    def variants(self) -> list[str]:
        return list(PLACEMENTS)

    async def run(self, ctx: AttackContext, behavior: Behavior, variant: str) -> Attempt:
        document = self.documents[_index(behavior.id) % len(self.documents)]
        instruction = ctx.prompts.render("injection_instruction", behavior=behavior.text.rstrip(".?! "))
        task = ctx.prompts.render("injection_task", document=with_injection(document, instruction, variant))
        messages = [{"role": "user", "content": task}]
        return Attempt(messages, await ctx.ask(messages), details={"document": document.name, "placement": variant})


def _index(behavior_id: str) -> int:
    return int(behavior_id) if behavior_id.isdigit() else sum(map(ord, behavior_id))


FACTORIES = {"injection": InjectionAttack}
