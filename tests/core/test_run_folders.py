"""Damaged and unusual run folders: a damaged store stops run, export and report with exit 2,
the file, what is wrong and what to do, and is left as it was; a read-only folder can be
exported and reported, and a run on it stops with a clear error; printed commands are
shell-quoted; broken JSON is described once."""

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess

import pytest
from clitools import selfalign

from selfalign.errors import InputError
from selfalign.store import load_items

RULES = [{"match": "", "reply": "A fine answer."}]


@pytest.fixture(scope="module")
def made_run(tmp_path_factory):
    """A finished critique-revise run (scripted model) in a folder whose name has a space."""
    base = tmp_path_factory.mktemp("runs")
    (base / "rules.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RULES))
    (base / "p.jsonl").write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(40)))
    run = base / "my run"
    proc = selfalign(*command(base, run))
    return base, run, proc


def command(base, run):
    return ["critique-revise", "--model", f"scripted:{base / 'rules.jsonl'}", "--prompts", base / "p.jsonl", "--out", run]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "header":
        path.write_bytes(b"\x00garbage" * 12 + data[96:])
    else:  # pages overwritten in the middle, header intact
        middle = len(data) // 2
        path.write_bytes(data[:middle] + b"\xff" * 8192 + data[middle + 8192:])


@pytest.mark.parametrize("how", ["truncated", "header", "pages"])
def test_a_damaged_store_stops_every_command_with_what_to_do(tmp_path, made_run, how):
    base, original, _ = made_run
    run = tmp_path / "run copy"
    shutil.copytree(original, run)
    store = run / "run.sqlite"
    damage(store, how)
    before = (digest(store), sorted(p.name for p in run.iterdir()))
    commands = [command(base, run), ["export", run, "--format", "sft", "--to", tmp_path / "o.jsonl"],
                ["report", run, "--out", tmp_path / "r.html"]]
    if how != "pages":  # damaged pages show only to the reads that reach them (the failures' index does not)
        commands.append(["export", run, "--failures"])
    for args in commands:
        proc = selfalign(*args, check=False)
        assert proc.returncode == 2, (args[0], proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert f"{store}: the run store is damaged" in proc.stderr, proc.stderr
        assert f"mv {shlex.quote(str(store))} " in proc.stderr and "rerun the command" in proc.stderr
        assert (digest(store), sorted(p.name for p in run.iterdir())) == before  # nothing touched


@contextlib.contextmanager
def read_only(folder):
    """`folder` unwritable: by its mode, or (root ignores modes) by a read-only bind mount."""
    if os.geteuid() != 0:
        for path in [folder, *folder.iterdir()]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path in [folder, *folder.iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_run_folder_is_exported_and_reported_and_a_run_on_it_stops(tmp_path, made_run):
    base, original, _ = made_run
    run = tmp_path / "ro run"
    shutil.copytree(original, run)
    with read_only(run):
        assert not os.access(run, os.W_OK) or os.geteuid() == 0
        failures = selfalign("export", run, "--failures")
        assert "no failures" in failures.stdout
        exported = selfalign("export", run, "--format", "sft", "--to", tmp_path / "sft.jsonl")
        assert "wrote 40 sft rows" in exported.stdout
        selfalign("report", run, "--out", tmp_path / "report.html")
        assert "question 3" in (tmp_path / "report.html").read_text()
        in_place = selfalign("report", run, check=False)  # its default page is inside the folder
        again = selfalign(*command(base, run), check=False)
    assert in_place.returncode == 2 and f"{run / 'report.html'}: cannot write there" in in_place.stderr
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"{run}: cannot write this run folder" in again.stderr and "copy the folder somewhere writable" in again.stderr
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in original.iterdir())


def test_printed_next_commands_are_shell_quoted(made_run):
    _, run, proc = made_run
    line = next(line for line in proc.stdout.splitlines() if line.startswith("next:"))
    words = shlex.split(line.removeprefix("next:").split("   (")[0])
    assert words[:3] == ["selfalign", "export", str(run)]


def test_broken_json_is_described_once(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "unterminated\n')
    with pytest.raises(InputError) as err:
        load_items(bad)
    assert "Unterminated string starting at column 12" in str(err.value) and "at at" not in str(err.value)


def test_a_refused_resume_names_a_setting_that_changed_only_in_type(tmp_path):
    """1 and 1.0, or True and 1, are equal in Python but not as stored: the refusal names them."""
    from selfalign.errors import UserError
    from selfalign.store.run_store import RunStore

    store = RunStore(tmp_path / "run")
    store.bind_config("critique", {"temperature": 1, "greedy": True})
    store.close()
    store = RunStore(tmp_path / "run")
    try:
        with pytest.raises(UserError, match=r"greedy: True -> 1, temperature: 1 -> 1\.0"):
            store.bind_config("critique", {"temperature": 1.0, "greedy": 1})
    finally:
        store.close()
