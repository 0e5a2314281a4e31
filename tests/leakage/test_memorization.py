"""`selfalign train --canaries` then `selfalign attack --attacks memorization` on the tiny model:
exposure and extraction per repetition count and model, each canary's exposure equal to the one
computed here with plain transformers on the same candidates."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfalign.cli.main import main
from selfalign.evaluate.exposure import exposure, sample_candidates, skew_normal_exposure
from selfalign.train.canaries import read_canaries

CANDIDATES = 12


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model's matmuls are far smaller than thread start-up cost."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def canary_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memorization")
    data = tmp / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                                     {"role": "assistant", "content": "A kind answer."}]}) + "\n" for i in range(16)))
    ckpt = tmp / "ckpt"
    assert main(["train", "--method", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(ckpt),
                 "--canaries", "2", "--canary-repeats", "1,16", "--max-length", "64", "--lr", "1e-3", "--epochs", "2",
                 "--batch-size", "8"]) == 0
    out = tmp / "attack"
    assert main(["attack", "--model", f"hf:{tiny_model_dir}", "--model", f"hf:{ckpt}", "--attacks", "memorization",
                 "--train-run", str(ckpt), "--exposure-candidates", str(CANDIDATES), "--limit", "1", "--out", str(out),
                 "--max-tokens", "16", "--quiet", "--resamples", "200"]) == 0
    return ckpt, out


def ll_of(model, tokenizer, context, continuation):
    """Summed log-probability of `continuation`'s tokens after `context`, with plain transformers."""
    ids = tokenizer(context + continuation, add_special_tokens=False, return_tensors="pt").input_ids
    n_context = len(tokenizer(context, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
    return sum(float(logprobs[i - 1, ids[0, i]]) for i in range(n_context, ids.shape[1]))


def test_figures_per_repetition_count_and_model(canary_run):
    ckpt, out = canary_run
    results = json.loads((out / "results.json").read_text())
    rows = {(f["model"].rsplit("/", 1)[-1], f["scorer"], f["category"]): f for f in results["figures"] if f["attack"] == "memorization"}
    for model in ("ckpt", rows and next(k[0] for k in rows if k[0] != "ckpt")):
        for category in ("001 copies", "016 copies"):
            assert rows[(model, "rank", category)]["n"] == 2 and rows[(model, "extraction", category)]["n"] == 2
            assert rows[(model, "skew-normal", category)]["n"] == 2 and rows[(model, "skew-normal", category)]["metric"] == "exposure"
    # the tiny model sees the 16-copy canaries 32 times: they rank near the top of the sample
    assert rows[("ckpt", "rank", "016 copies")]["value"] > rows[("ckpt", "rank", "001 copies")]["value"]
    page = (out / "results.md").read_text()
    assert "memorization" in page and r"exposure \(rank\)" in page and r"exposure \(skew\-normal\)" in page  # Markdown-escaped


def test_exposure_matches_plain_transformers(canary_run):
    ckpt, out = canary_run
    import sqlite3

    with sqlite3.connect(out / "run.sqlite") as db:
        records = [json.loads(r) for (r,) in db.execute("SELECT record FROM items WHERE record IS NOT NULL")]
    mine = {r["behavior"]: r for r in records if r["attack"] == "memorization" and r["model"] == f"hf:{ckpt}"}
    tokenizer, model = AutoTokenizer.from_pretrained(ckpt), AutoModelForCausalLM.from_pretrained(ckpt).eval()
    canaries = read_canaries(ckpt)
    assert set(mine) == {c.id for c in canaries}
    for canary in canaries:
        context = tokenizer.apply_chat_template([{"role": "user", "content": canary.prompt}, {"role": "assistant", "content": canary.prefix}],
                                                continue_final_message=True, tokenize=False)
        others = sample_candidates(canary.secret, canary.candidates, CANDIDATES, f"0-{canary.id}")
        secret = ll_of(model, tokenizer, context, " " + canary.secret)
        other_lls = [ll_of(model, tokenizer, context, " " + o) for o in others]
        details = mine[canary.id]["details"]
        assert details["secret_loglikelihood"] == pytest.approx(secret, abs=1e-3)
        assert details["exposure"] == pytest.approx(exposure(secret, other_lls)) and details["candidates_scored"] == CANDIDATES
        assert mine[canary.id]["scores"]["rank"]["value"] == details["exposure"]
        extrapolated, fit = skew_normal_exposure(secret, other_lls)
        assert details["exposure_skewnorm"] == pytest.approx(extrapolated, rel=1e-2, abs=1e-2)
        assert details["skewnorm_fit"]["scale"] == pytest.approx(fit.scale, rel=1e-2)
        assert mine[canary.id]["scores"]["skew-normal"]["value"] == details["exposure_skewnorm"]
