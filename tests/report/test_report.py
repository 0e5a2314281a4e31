"""`selfalign report`: one self-contained page per set of runs; model text never becomes markup."""

import base64
import gzip
import hashlib
import json
import re
import shutil

import pytest
from clitools import selfalign
from sample_runs import HOSTILE

from selfalign.errors import UserError
from selfalign.report import build_report, read_run, read_runs, run_notes
from selfalign.report.overview import failure_groups
from selfalign.report.page import embed_json
from selfalign.store import Item, RunStore


def page_data(html):
    """The data block as the page's script reads it."""
    kind, block = re.search(r'<script type="(application/json|application/gzip)" id="report-data">(.*?)</script>', html, re.S).groups()
    return json.loads(block if kind == "application/json" else gzip.decompress(base64.b64decode(block)))


def sha256(text):
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_one_page_for_every_kind_of_run_side_by_side(sample_runs):
    html = build_report(list(map(str, sample_runs.values())))
    runs = page_data(html)["runs"]
    assert [r["kind"] for r in runs] == ["critique-revise", "matrix", "sandbox", "eval", "train", "attack",
                                         "self-instruct", "principles", "train", "verbose", "train"]  # self-align: its stages
    matrix = runs[1]
    assert matrix["overview"]["items"] == {"done": 4, "failed": 0, "pending": 0, "running": 0}
    assert matrix["overview"]["usage"]["calls"] > 0 and matrix["overview"]["tokens_per_second"] > 0
    record = matrix["view"]["items"][0]["record"]
    assert record["scene"]["roles"][0]["name"] == "neighbour" and record["events"] and "calls" not in record
    sandbox = runs[2]
    assert [m["round"] for m in sandbox["view"]["rounds"]] == [1, 2, 3] and len(sandbox["view"]["items"]) == 27
    judged = runs[3]["view"]["judged"]
    assert {j["scorer"] for j in judged} >= {"refusal", "harm", "pairwise"}
    assert any(j["record"] and j["record"].get("reasons") for j in judged)  # pairwise: the judge's reasons
    log = runs[4]["view"]["log"]  # the steps that logged a loss; the closing entry (train_loss) is not one
    assert [e["step"] for e in log] == list(range(1, 41)) and set(log[0]) == {"step", "loss", "learning_rate", "grad_norm", "epoch"}


def test_the_page_asks_for_nothing_and_its_csp_allows_only_its_own_script_and_style(sample_runs):
    html = build_report([str(sample_runs["matrix"])])
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    assert csp.startswith("default-src 'none';")
    assert f"script-src '{sha256(scripts[0])}'" in csp and f"style-src '{sha256(styles[0])}'" in csp
    outside_data = re.sub(r'<script type="application/json".*?</script>', "", html, flags=re.S)
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|@import|url\(|fetch\(|XMLHttpRequest|WebSocket", outside_data)


def test_hostile_text_stays_inside_the_json_block(hostile_runs):
    html = build_report(list(map(str, hostile_runs.values())))
    head, data = html.split('<script type="application/json" id="report-data">')
    block, tail = data.split("</script>", 1)  # the first end tag is the block's own
    assert "<" not in block and ">" not in block and "\u2028" not in block
    assert tail.count("</script>") == 1 and "<!--" not in html
    decoded = json.dumps(page_data(html))
    assert decoded.count(json.dumps(HOSTILE)[1:-1]) > 20  # the text is all there, as data


def test_a_large_report_is_gzipped_into_base64(sample_runs):
    runs = [str(sample_runs["sandbox"])]
    plain, packed = build_report(runs), build_report(runs, compress_above=1000)
    assert 'type="application/gzip"' in packed and re.search(r'id="report-data">[A-Za-z0-9+/=]+</script>', packed)
    block = lambda html: html.split('id="report-data">')[1].split("</script>")[0]  # noqa: E731
    assert page_data(packed) == page_data(plain) and len(block(packed)) < len(block(plain)) / 2


def detail_blocks(html):
    """The blocks of record keys a large page holds apart: {name: {item id: keys}}."""
    found = re.findall(r'<script type="application/gzip" id="(more-[0-9-]+)">([A-Za-z0-9+/=]+)</script>', html)
    return {name: json.loads(gzip.decompress(base64.b64decode(b64))) for name, b64 in found}


def test_a_large_page_holds_scenes_and_events_apart_until_an_item_is_opened(sample_runs, monkeypatch):
    runs = [str(sample_runs["matrix"]), str(sample_runs["critique-revise"])]
    plain = page_data(build_report(runs))["runs"]
    events = [it["record"]["events"] for it in plain[0]["view"]["items"]]
    assert [it["record"]["brief"] for it in plain[0]["view"]["items"]] == [  # what the list reads: counted by hand
        {"events": len(e), "rejected": sum(not x["feasible"] for x in e), "value_conflicts": sum(x["value_conflict"] for x in e),
         "situation": it["record"]["scene"]["situation"]} for e, it in zip(events, plain[0]["view"]["items"])]
    monkeypatch.setattr("selfalign.report.page.BLOCK_BYTES", 1)  # a block per item
    html = build_report(runs, compress_above=0)
    packed, blocks = page_data(html)["runs"], detail_blocks(html)
    items = packed[0]["view"]["items"]
    assert len(blocks) == len(items) == 4 and html.index('id="more-') > html.index("<script>")  # after the script: drawn before read
    assert all(set(it["record"]) == {"format", "initial", "revised", "harm_found", "finish_reason", "stopped", "brief"} for it in items)
    whole = [{**it, "record": {**it["record"], **blocks[it["more"]][it["id"]]}} for it in items]
    for item in whole:
        del item["more"]
    assert whole == plain[0]["view"]["items"] and packed[1] == plain[1]  # nothing lost; a run without deferred keys whole
    monkeypatch.setattr("selfalign.report.page.BLOCK_BYTES", 10**9)
    assert len(detail_blocks(build_report(runs, compress_above=0))) == 1


def test_embedded_json_escapes_what_html_reads():
    assert embed_json("</script><!--&\u2028") == '"\\u003c/script\\u003e\\u003c!--\\u0026\\u2028"'
    assert json.loads(embed_json({"a": "\ud800 lone"})) == {"a": "\ud800 lone"}  # a lone surrogate survives
    assert embed_json({"x": float("nan"), "y": [float("inf"), 1.5]}) == '{"x":null,"y":[null,1.5]}'


def test_full_adds_the_raw_simulation_calls(sample_runs):
    item = read_run(sample_runs["matrix"], full=True)["view"]["items"][0]
    assert item["record"]["calls"] and item["record"]["calls"][0]["messages"]


def test_failures_are_grouped_by_reason_with_numbers_blanked(tmp_path):
    store = RunStore(tmp_path / "run")
    store.bind_config("matrix", {"seed": 0})
    store.add_items([Item(f"{i:03d}", i, ({"role": "user", "content": f"q{i}"},)) for i in range(5)])
    for i, reason in enumerate(["SchemaError: no valid Plan after 3 attempts", "SchemaError: no valid Plan after 4 attempts",
                                "ItemFailed: cut at 512 tokens"]):
        store.mark_failed(f"{i:03d}", reason, {"calls": 2})
    store.mark_done("003", {"x": 1}, {"calls": 1, "prompt_tokens": 10, "completion_tokens": 5})
    store.close()
    overview = read_run(tmp_path / "run")["overview"]
    assert overview["items"] == {"done": 1, "failed": 3, "pending": 1, "running": 0}
    assert overview["usage"] == {"calls": 7, "prompt_tokens": 10, "completion_tokens": 5}
    assert [(g["reason"], g["n"], g["ids"]) for g in overview["failures"]] == [
        ("SchemaError: no valid Plan after N attempts", 2, ["000", "001"]),
        ("ItemFailed: cut at N tokens", 1, ["002"]),
    ]
    assert failure_groups([]) == []


def test_a_run_of_a_method_without_a_view_gets_its_overview_and_items(tmp_path):
    store = RunStore(tmp_path / "other")
    store.bind_config("some-new-method", {"x": 1})
    store.add_items([Item("m/template/-/b1", 0, ({"role": "user", "content": "pick a lock"},))])
    store.mark_done("m/template/-/b1", {"answer": "no"}, {"calls": 1})
    store.close()
    (tmp_path / "other" / "results.json").write_text('{"schema": "selfalign.attack/1"}')
    run = read_run(tmp_path / "other")
    assert run["kind"] == "run" and run["overview"]["method"] == "some-new-method"
    assert run["view"]["items"][0]["record"] == {"answer": "no"}


def test_attack_runs_carry_their_figures_and_every_attempt(sample_runs, tmp_path):
    run = read_run(sample_runs["attack"])
    results, items = run["view"]["results"], run["view"]["items"]
    assert run["kind"] == "attack" and "successes" not in results  # each attempt is an item already
    asr = {(f["attack"], f["variant"], f["scorer"]): f["value"] for f in results["figures"]
           if f["metric"] == "attack_success_rate" and f["category"] is None}
    assert asr[("none", None, "harm")] == 0.0 and asr[("template", "novelist", "harm")] == 1.0
    assert asr[("template", "any", "refusal")] == 1.0
    succeeded = [it for it in items if any(s.get("success") for s in it["record"]["scores"].values())]
    assert succeeded and all("thriller novel" in it["record"]["messages"][-1]["content"] for it in succeeded)
    (sample_runs["attack"] / "results.json").rename(tmp_path / "moved.json")  # an unfinished run: no figures yet
    try:
        assert read_run(sample_runs["attack"])["view"]["results"] is None
    finally:
        (tmp_path / "moved.json").rename(sample_runs["attack"] / "results.json")


def test_a_self_align_folder_shows_each_stage_with_its_figures(sample_runs):
    stages = read_runs(sample_runs["self-align"])
    assert [(r["kind"], r["name"].rsplit("/", 1)[1]) for r in stages] == [
        ("self-instruct", "1-self-instruct"), ("principles", "2-principles"), ("train", "3-engrave"),
        ("verbose", "4-verbose"), ("train", "5-distill")]
    stage1, stage2, _, stage4, _ = (r["view"] for r in stages)
    assert stage1["prompts"][0] == {"prompt": "Can my landlord enter without notice?", "source": "red-team",
                                    "type": "legal expertise", "topic": "Tenant Law"}
    assert len(stage1["prompts"]) == 4 and stage1["red_team"]["per_type"] == {"legal expertise": 1}
    kept = [it["record"] for it in stage2["items"] if not it["record"]["dropped"]]
    assert kept[0]["principles"] == ["ethical", "question assessment"] and "text" not in kept[0]
    lost = [it["record"] for it in stage2["items"] if it["record"]["dropped"] == "format lost"]
    assert lost and all(r["text"] == "no format here" for r in lost)  # all there is of such an answer
    assert stage4["principled"] == {"000000": {  # stage 2's work on the same question, beside the verbose answer
        "answer": kept[0]["answer"],
        "thoughts": "I am a helpful, ethical and reliable assistant. Rule 1 (ethical) and rule 4 (question assessment).",
        "principles": ["ethical", "question assessment"], "dropped": None}}
    assert read_run(sample_runs["self-align"] / "4-verbose")["view"]["principled"]


def test_a_training_run_not_yet_finished_shows_its_last_whole_checkpoint(tmp_path):
    for step, written in ((10, 10), (20, 10)):  # checkpoint-20 was cut while being written
        folder = tmp_path / "ckpt" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        log = [{"step": s, "loss": 1.0 / s, "learning_rate": 1e-5} for s in range(1, written + 1)]
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": written, "log_history": log}))
    run = read_run(tmp_path / "ckpt")
    assert run["kind"] == "train" and run["view"]["state_file"].endswith("checkpoint-10/trainer_state.json")
    assert len(run["view"]["log"]) == 10 and not run["overview"]["finished"]


def test_folders_that_are_not_runs_are_named(tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path}: not a run folder.*results.json"):
        read_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema": "other"}')
    with pytest.raises(UserError, match="not an evaluation's results"):
        read_run(tmp_path)


def test_command_writes_the_page_into_the_run_by_default(sample_runs, tmp_path):
    proc = selfalign("report", sample_runs["critique-revise"])
    page = sample_runs["critique-revise"] / "report.html"
    assert f"report: {page}" in proc.stdout and page_data(page.read_text())["runs"][0]["kind"] == "critique-revise"
    proc = selfalign("report", sample_runs["train"], tmp_path / "nothing", "--out", tmp_path / "r.html", check=False)
    assert proc.returncode == 2 and "nothing: not a run folder" in proc.stderr and not (tmp_path / "r.html").exists()


def test_a_self_align_folder_that_stopped_early_shows_the_stages_that_ran_and_names_the_others(sample_runs, tmp_path):
    stopped = tmp_path / "sa"
    stopped.mkdir()
    shutil.copytree(sample_runs["self-align"] / "1-self-instruct", stopped / "1-self-instruct")
    (stopped / "1-self-instruct" / "prompts.jsonl").write_text("")  # it kept nothing, so self-align stopped there
    assert [r["name"] for r in read_runs(stopped)] == [str(stopped / "1-self-instruct")]
    notes = run_notes(stopped)
    assert notes == [f"{stopped} (self-align): stages that ran: 1-self-instruct; stages that did not run: 2-principles, "
                     f"3-engrave, 4-verbose, 5-distill. It stopped in 1-self-instruct, which is not recorded as finished in "
                     f"stages.json: it failed, kept nothing for the next stage, or was stopped; see {stopped / '1-self-instruct'}."]
    assert json.dumps(notes[0])[1:-1] in build_report([str(stopped)])
    assert run_notes(sample_runs["self-align"]) == []  # every stage ran
