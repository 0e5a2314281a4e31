"""The README and the docs say what is true: their command blocks parse, and (make test-docs)
run as written on the tiny model. blocks.py states the convention for blocks that need more."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from blocks import LANGUAGES, ROOT, Block, doc_files, fenced_blocks, indented_commands, nav_pages, selfalign_argv

README_MAX_LINES = 250


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in fenced_blocks(path)]


def shell_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.language == "bash"]


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_every_fenced_block_names_a_known_language():
    unknown = [f"{b.where}: '{b.language}'" for b in all_blocks() if b.language not in LANGUAGES]
    assert not unknown, f"use one of {sorted(LANGUAGES)} (bash for commands): {unknown}"


def test_commands_are_in_fenced_bash_blocks_not_indented_ones():
    assert not [line for path in doc_files() for line in indented_commands(path)]


def test_every_selfalign_command_in_the_docs_parses():
    from selfalign.cli.main import build_parser

    bad = []
    for block in shell_blocks():
        for command in block.commands():
            argv = selfalign_argv(command)
            if argv is None:
                continue
            stderr = io.StringIO()
            try:
                with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                    build_parser().parse_args(argv)
            except SystemExit as exc:
                if exc.code:
                    bad.append(f"{block.where}: {command}\n  {stderr.getvalue().strip().splitlines()[-1]}")
    assert not bad, "\n".join(bad)


def test_every_make_target_in_the_docs_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = {line.split(":")[0] for line in makefile.splitlines() if line and not line[0].isspace() and ":" in line}
    missing = [
        f"{block.where}: {command}"
        for block in shell_blocks()
        for command in block.commands()
        if command.startswith("make ") and command.split()[1] not in targets
    ]
    assert not missing


def test_every_page_is_in_the_site_nav():
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages <= nav_pages(), f"add to mkdocs.yml's nav: {sorted(pages - nav_pages())}"


def test_a_needs_line_marks_a_block_that_is_not_run():
    block = Block(ROOT / "README.md", 1, "bash", ["# needs: a GPU", "selfalign demo --out runs/demo"])
    assert block.needs == "a GPU"
    assert Block(ROOT / "README.md", 1, "bash", ["selfalign tiny-model models/tiny"]).needs is None
    continued = Block(ROOT / "README.md", 1, "bash", ["selfalign eval --model hf:a \\", "    --out runs/e  # why", "# note"])
    assert continued.commands() == ["selfalign eval --model hf:a      --out runs/e  # why"]
    assert selfalign_argv(continued.commands()[0]) == ["eval", "--model", "hf:a", "--out", "runs/e"]
    assert selfalign_argv("accelerate launch -m selfalign.cli.main train --method sft") == ["train", "--method", "sft"]
    assert selfalign_argv("make test") is None


# make test-docs: every block the tiny model can run, as written, in one workspace shared by
# all pages, which looks like the repository's root (examples/ copied in; the other folders a
# block may read linked), with `selfalign` this interpreter's. Blocks write to runs/, data/,
# models/ and ckpt/ there, each page under names of its own.
READ_ONLY = ("benchmarks", "docs", "src", "tests")

RUNNABLE = [block for block in shell_blocks() if block.needs is None]


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("docs-workspace")
    shutil.copytree(ROOT / "examples", root / "examples")
    for name in READ_ONLY:
        (root / name).symlink_to(ROOT / name)
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "selfalign"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m selfalign.cli.main "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    return root, env


@pytest.mark.docs
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("block", RUNNABLE, ids=[block.where for block in RUNNABLE])
def test_the_block_runs_as_written(block, workspace):
    """Command by command; exit status 1 from a selfalign command is its documented "some items
    failed" (the tiny model's JSON is often unusable), which it must then say."""
    root, env = workspace
    for command in block.commands():
        proc = subprocess.run(["bash", "-c", "set -o pipefail; " + command], cwd=root, env=env,
                              capture_output=True, text=True, timeout=1800)
        items_failed = command.startswith("selfalign ") and proc.returncode == 1 and "failed" in proc.stdout
        assert proc.returncode == 0 or items_failed, (
            f"{block.where}: `{command}` exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def test_every_link_between_pages_names_a_page_that_exists():
    """A page written elsewhere may be named in the nav before it lands, but not linked to."""
    import re

    broken = []
    for path in (ROOT / "docs").rglob("*.md"):
        for target in re.findall(r"\]\(([^)#:\s]+\.md)(?:#[^)]*)?\)", path.read_text()):
            if not (path.parent / target).resolve().is_file():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, f"links to pages that do not exist (mkdocs build --strict refuses them): {broken}"
