"""The command blocks of README.md and docs/, as the docs tests read them.

The convention (README.md and docs/development.md say it too): a fenced ```bash block holds
commands that run as written, in order, from the repository's root after the install, on the
tiny model; a block whose first line is `# needs: WHAT` needs more (a real model, a GPU, the
network, a second terminal) and is not run, though its `selfalign` lines are still parsed.
Output, formulas and file listings go in ```text blocks; code in ```python, ```yaml, ```json.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {"bash", "text", "python", "yaml", "json"}
NEEDS = re.compile(r"^# needs: (?P<what>.+)$")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    lines: list[str]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def needs(self) -> str | None:
        match = NEEDS.match(self.lines[0]) if self.lines else None
        return match["what"] if match else None

    def commands(self) -> list[str]:
        """The block's commands: continuation lines joined, comments and blank lines left out."""
        joined, current = [], ""
        for line in self.lines:
            if line.rstrip().endswith("\\"):
                current += line.rstrip()[:-1] + " "
                continue
            current += line
            if current.strip() and not current.lstrip().startswith("#"):
                joined.append(current.strip())
            current = ""
        return joined


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    blocks, open_block = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            if open_block is None:
                open_block = Block(path, number, line[3:].strip(), [])
            else:
                blocks.append(open_block)
                open_block = None
        elif open_block is not None:
            open_block.lines.append(line)
    return blocks


def indented_commands(path: Path) -> list[str]:
    """Lines of indented code blocks that look like commands: they belong in fenced blocks."""
    found, in_fence, previous = [], False, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("    ") and not previous.strip():
            if re.match(r"(selfalign|make|python|pip|accelerate|lm_eval) ", line.strip()):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        previous = line
    return found


def selfalign_argv(command: str) -> list[str] | None:
    """The arguments a `selfalign ...` (or `... -m selfalign.cli.main ...`) command passes to
    selfalign's parser, a trailing comment and `$(...)` arguments removed; None for another
    program."""
    command = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", command)
    words = shlex.split(command, comments=True)
    for start, word in enumerate(words):
        if word == "selfalign" and start == 0:
            return words[1:]
        if word == "selfalign.cli.main" and start > 0 and words[start - 1] == "-m":
            return words[start + 1:]
    return None


def nav_pages() -> set[str]:
    """Every page named in mkdocs.yml's nav."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str):
            pages.add(node)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)

    walk(config["nav"])
    return pages
