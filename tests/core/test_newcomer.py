"""What a new user meets first: exit codes, the closing lines, quiet logs, --help, --version,
shared generator options, a taken port, and a failed model load that leaves the folder free."""

import argparse
import json
import socket

import pytest
from clitools import selfalign

from selfalign.cli.main import HelpFormatter, build_parser


def rules(tmp_path, *extra):
    path = tmp_path / "replies.jsonl"
    lines = [*extra, {"match": "Critique", "reply": "It could cause harm."}, {"match": "Rewrite", "reply": "A safer answer."},
             {"match": "", "reply": "First answer."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return f"scripted:{path}"


def prompts(tmp_path, n=3):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"instruction number {i}"}) + "\n" for i in range(n)))
    return path


def test_all_done_exits_0_and_says_where_everything_is_and_what_to_run_next(tmp_path):
    out = tmp_path / "cr1"
    proc = selfalign("critique-revise", "--model", rules(tmp_path), "--prompts", prompts(tmp_path), "--out", out, "--quiet")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert f"run:     {out / 'run.sqlite'} (rerun the same command to resume)" in lines
    assert f"summary: {out / 'summary.json'}" in lines
    nxt = next(line for line in lines if line.startswith("next:"))
    command = nxt.removeprefix("next:").split("   (")[0].split()
    assert command[:2] == ["selfalign", "export"] and "(formats: preference, sft)" in nxt
    selfalign(*command[1:], cwd=tmp_path)  # the printed command runs as printed
    assert (tmp_path / "data" / "cr1-preference.jsonl").exists()
    assert selfalign("export", out, "--failures").stdout == f"no failures in {out}\n"


def test_some_items_failed_exits_1_and_the_failures_are_listed(tmp_path):
    model = rules(tmp_path, {"match": "number 1$", "reply": ""})  # an empty answer fails its item
    out = tmp_path / "run"
    proc = selfalign("critique-revise", "--model", model, "--prompts", prompts(tmp_path), "--out", out, "--quiet", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "2 done, 1 failed" in proc.stdout and f"selfalign export {out} --failures" in proc.stdout
    listed = selfalign("export", out, "--failures").stdout
    assert listed.count("\n") == 1 and "empty" in listed


def test_bad_usage_exits_2_naming_the_flag(tmp_path):
    missing = selfalign("critique-revise", "--prompts", prompts(tmp_path), "--out", tmp_path / "r", check=False)
    assert missing.returncode == 2 and "--model" in missing.stderr
    bad_matrix = selfalign("matrix", "--model", rules(tmp_path), "--prompts", prompts(tmp_path), "--out", tmp_path / "m",
                           "--roles", "0", check=False)
    assert bad_matrix.returncode == 2 and "--roles" in bad_matrix.stderr and "num_roles" not in bad_matrix.stderr


def test_a_failed_model_load_leaves_the_folder_free_for_other_settings(tmp_path):
    out = tmp_path / "run"
    failed = selfalign("critique-revise", "--model", f"hf:{tmp_path / 'no-such-model'}", "--prompts", prompts(tmp_path),
                       "--out", out, "--seed", "3", check=False)
    assert failed.returncode == 2 and "--model hf:" in failed.stderr and "Traceback" not in failed.stderr
    ok = selfalign("critique-revise", "--model", rules(tmp_path), "--prompts", prompts(tmp_path), "--out", out, "--quiet")
    assert "3 done, 0 failed" in ok.stdout


def subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("selfalign", parser), *sub.choices.items()]


@pytest.mark.parametrize("name,parser", subcommands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_has_a_help_line_with_its_default_or_required(name, parser):
    formatter = HelpFormatter(name)
    for action in parser._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = formatter._get_help_string(action)
        assert action.help, f"{name} {action.option_strings[0]} has no help"
        assert "default" in text or "required" in text, f"{name} {action.option_strings[0]}: {text!r}"


def test_help_shows_defaults_and_required_and_version_exists():
    text = selfalign("sandbox", "--help").stdout
    for piece in ("--prompts FILE, --questions FILE", "(required)", "--limit", "--quiet", "(default: 32)", "(default: off)"):
        assert piece in " ".join(text.split()), piece
    from selfalign import __version__

    assert selfalign("--version").stdout.strip() == f"selfalign {__version__}"


def test_sandbox_takes_the_shared_options():
    parser = build_parser()
    base = ["sandbox", "--model", "m", "--out", "o", "--limit", "3", "--quiet"]
    assert parser.parse_args([*base, "--prompts", "q.jsonl"]).prompts == "q.jsonl"
    args = parser.parse_args([*base, "--questions", "q.jsonl"])  # the old name still works
    assert (args.prompts, args.limit, args.quiet) == ("q.jsonl", 3, True)


def test_serve_refuses_a_taken_port_before_saying_it_serves(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = selfalign("serve", "--model", rules(tmp_path), "--port", port, check=False, timeout=60)
    assert proc.returncode == 2 and f"--port {port}" in proc.stderr
    assert "serving" not in proc.stdout


def test_logs_have_no_line_per_request_unless_verbose_and_one_short_line_per_retry(tmp_path, serve):
    import itertools

    from fastapi.responses import JSONResponse

    from selfalign.llm import Model
    from selfalign.llm.scripted import ScriptedProvider
    from selfalign.serve import app_for_model

    app = app_for_model(Model(ScriptedProvider(lambda req: "An answer.")), "m")
    counter = itertools.count(1)

    @app.middleware("http")
    async def flaky(request, call_next):  # every fifth request: a long error page
        if request.url.path.endswith("/chat/completions") and next(counter) % 5 == 0:
            return JSONResponse({"error": {"message": "overloaded\n" + "<p>busy</p>" * 200}}, status_code=503)
        return await call_next(request)

    server = serve(app)
    args = ["critique-revise", "--model", f"openai:m@{server.url}/v1", "--prompts", prompts(tmp_path, 4), "--quiet"]
    quiet = selfalign(*args, "--out", tmp_path / "a")
    assert "HTTP Request" not in quiet.stderr
    retries = [line for line in quiet.stderr.splitlines() if "retry" in line]
    assert retries and all(len(line) < 260 and "HTTP 503" in line for line in retries)
    loud = selfalign("-v", *args, "--out", tmp_path / "b", "--seed", "1")
    assert "HTTP Request: POST" in loud.stderr
