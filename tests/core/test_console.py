"""What the console shows: --quiet on every command hiding every bar (the libraries' included),
progress without a terminal as a line per tenth, each bar named for what it counts, a
changed-settings refusal before any model loads, and a hub id without network failing at once."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from clitools import selfalign

from selfalign import progress
from selfalign.cli.main import build_parser


def subcommands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices


def rules(tmp_path):
    path = tmp_path / "replies.jsonl"
    lines = [{"match": "Critique", "reply": "It could cause harm."}, {"match": "Rewrite", "reply": "A safer answer."},
             {"match": "", "reply": "First answer."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return f"scripted:{path}"


def prompts(tmp_path, n):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"instruction number {i}"}) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_takes_quiet(name):
    command = subcommands()[name]
    assert "--quiet" in command._option_string_actions
    assert command._option_string_actions["--quiet"].default is False  # train's parser suppresses defaults


def test_without_a_terminal_progress_is_a_line_per_tenth_named_for_what_it_counts(tmp_path):
    proc = selfalign("critique-revise", "--model", rules(tmp_path), "--prompts", prompts(tmp_path, 25),
                     "--out", tmp_path / "run")
    assert "\r" not in proc.stderr  # a log stays readable
    lines = [line for line in proc.stderr.splitlines() if line.startswith("critique-revise items: ")]
    assert len(lines) == 10 and lines[-1].startswith("critique-revise items: 100% (25/25 items)")
    assert "failed=0" in lines[-1]


def test_quiet_hides_our_bars_and_the_libraries(tmp_path, tiny_model_dir):
    quiet = selfalign("critique-revise", "--model", rules(tmp_path), "--prompts", prompts(tmp_path, 25),
                      "--out", tmp_path / "run", "--quiet")
    assert "%" not in quiet.stderr
    saved = selfalign("save-model", f"hf:{tiny_model_dir}", tmp_path / "saved", "-q")  # loads and writes weights
    assert "Loading weights" not in saved.stderr and "Writing" not in saved.stderr and "%" not in saved.stderr


def test_line_progress_prints_each_tenth_once_and_nothing_when_silent(capsys):
    bar = progress.LineProgress(30, "answers of hf:m", unit="item")
    for _ in range(30):
        bar.update(1)
    bar.set_postfix(failed=0)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[0] == "answers of hf:m: 10% (3/30 items)"
    assert lines[-1] == "answers of hf:m: 100% (30/30 items)"
    silent = progress.LineProgress(30, "x", unit="item", silent=True)
    silent.update(30)
    assert capsys.readouterr().err == ""


def test_changed_settings_are_refused_before_the_model_loads(tmp_path):
    out = tmp_path / "run"
    selfalign("critique-revise", "--model", rules(tmp_path), "--prompts", prompts(tmp_path, 2), "--out", out, "-q")
    # the new model does not exist: refusing before loading it says what is wrong with the folder
    changed = selfalign("critique-revise", "--model", f"hf:{tmp_path / 'no-such-model'}", "--prompts",
                        prompts(tmp_path, 2), "--out", out, "-q", check=False)
    assert changed.returncode == 2
    assert "other settings" in changed.stderr and "no-such-model" in changed.stderr  # the diff names it
    assert "cannot load" not in changed.stderr and "no such local" not in changed.stderr


def offline_environment(**extra):
    """A hub that cannot be reached (the .invalid domain never resolves), and no proxy to ask."""
    proxies = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE")
    return {**{k: v for k, v in os.environ.items() if k not in proxies}, "HF_ENDPOINT": "https://hub.invalid", **extra}


def hub_cache(tmp_path, tiny_model_dir, repo_id):
    """A hub cache holding `repo_id` as huggingface_hub lays it out: refs/main -> snapshots/REV."""
    folder = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    shutil.copytree(tiny_model_dir, folder / "snapshots" / ("0" * 40))
    return tmp_path / "hub"


def test_a_hub_id_without_network_fails_at_once_or_loads_from_the_cache(tmp_path, tiny_model_dir):
    cache = hub_cache(tmp_path, tiny_model_dir, "local/tiny")
    env = offline_environment(HF_HUB_CACHE=str(cache))
    missing = selfalign("save-model", "hf:nobody/no-such-model", tmp_path / "a", "-q", check=False, env=env)
    assert missing.returncode == 2
    assert "hub.invalid cannot be reached" in missing.stderr and "not in the local hub cache" in missing.stderr
    cached = selfalign("save-model", "hf:local/tiny", tmp_path / "b", "-q", env=env)
    assert cached.returncode == 0 and (tmp_path / "b" / "config.json").is_file()


def test_a_hub_dataset_without_network_fails_at_once_saying_why(tmp_path):
    env = offline_environment(HF_DATASETS_CACHE=str(tmp_path / "datasets"))
    proc = selfalign("critique-revise", "--model", rules(tmp_path), "--prompts", "nobody/no-such-dataset",
                     "--out", tmp_path / "run", "-q", check=False, env=env)
    assert proc.returncode == 2
    assert "not in the local datasets cache, and the hub cannot be asked: hub.invalid cannot be reached" in proc.stderr


def test_quiet_silences_a_plain_tqdm_bar_of_a_library():
    """transformers' GGUF conversion makes a plain tqdm bar, outside its own switch."""
    code = ("from selfalign import progress; progress.configure(quiet=True); from tqdm.auto import tqdm; "
            "[x for x in tqdm(range(3), desc='Converting and de-quantizing')]")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Converting" not in proc.stderr
