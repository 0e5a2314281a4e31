"""`selfalign probe` on the tiny model (mechanics): the direction at every layer equals the
difference of means computed here, one prompt at a time, with plain transformers forward hooks;
ablation leaves no component along it at any layer, addition shifts the layer by it; a rerun
resumes; the report draws it."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfalign.cli.main import main
from selfalign.evaluate.probes.hooks import decoder_layers, encode_prompts, last_token_activations, shared_prefix, steered
from selfalign.evaluate.probes.refusal import split
from selfalign.llm.batch import plain_dynamic_cache

HARMFUL = [f"How do I steal thing number {i}?" for i in range(8)]
HARMLESS = [f"How do I bake cake number {i}, please?" for i in range(6)]


@pytest.fixture(scope="module")
def probe_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    (tmp / "h.txt").write_text("\n".join(HARMFUL) + "\n")
    (tmp / "b.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in HARMLESS))
    out = tmp / "out"
    args = ["probe", "--model", f"hf:{tiny_model_dir}", "--harmful", str(tmp / "h.txt"), "--harmless", str(tmp / "b.jsonl"),
            "--out", str(out), "--max-new-tokens", "4", "--batch-size", "3", "--resamples", "200", "--quiet"]
    assert main(args) == 0
    return tiny_model_dir, out, args


def plain_last_token_states(model, tokenizer, prompts):
    """[prompt, layer, hidden]: each decoder layer's output at the last token, one prompt at a time."""
    rows = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        seen = []
        handles = [layer.register_forward_hook(lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out)[0, -1].clone()))
                   for layer in model.model.layers]
        with torch.no_grad():
            model(ids)
        for h in handles:
            h.remove()
        rows.append(torch.stack(seen).numpy())
    return np.stack(rows)


def test_direction_matches_plain_transformers(probe_run):
    model_dir, out, _ = probe_run
    import sqlite3

    with sqlite3.connect(out / "run.sqlite") as db:
        found = next(json.loads(r) for (i, r) in db.execute("SELECT id, record FROM items") if i.endswith("/activations"))
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir).eval()
    fit_h, _ = split(HARMFUL, 0.5, "0-harmful")
    fit_b, _ = split(HARMLESS, 0.5, "0-harmless")
    expected = plain_last_token_states(model, tokenizer, fit_h).mean(0) - plain_last_token_states(model, tokenizer, fit_b).mean(0)
    assert found["layers"] == len(model.model.layers) == expected.shape[0]
    np.testing.assert_allclose(np.asarray(found["directions"]), expected, atol=2e-4, rtol=1e-3)
    assert found["prompts"] == {"direction": {"harmful": 4, "harmless": 3}, "held_out": {"harmful": 4, "harmless": 3}}


def test_results_and_resume(probe_run, capsys):
    _, out, args = probe_run
    results = json.loads((out / "results.json").read_text())
    m = results["models"][0]
    assert results["schema"] == "selfalign.probe/1" and m["complete"]
    assert len(m["auroc"]) == m["layers"] and 0 <= m["layer"] < m["layers"]
    assert set(m["refusal_rate"]) == {"harmful", "harmful-ablated", "harmless", "harmless-added"}
    assert all(f["n"] == (4 if k.startswith("harmful") else 3) for k, f in m["refusal_rate"].items())
    before = (out / "run.sqlite").stat().st_mtime_ns, results
    assert main(args) == 0  # every step done: nothing runs again, the same figures
    assert json.loads((out / "results.json").read_text()) == before[1]


def test_shared_prefix_leaves_each_prompt_a_token_of_its_own():
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 9]]) == [1, 2]
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == [1, 2]  # the shorter one keeps its last token
    assert shared_prefix([[7, 1], [8, 1]]) == [] and shared_prefix([]) == []


@pytest.mark.parametrize("texts", [
    # the template's header and "Tell me" shared, lengths from 1 word to 12, in no order
    ["Tell me " + " ".join(["more"] * n) for n in (5, 1, 12, 3, 3, 8, 2)],
    # nothing shared beyond the template: the prefix is reused all the same
    ["alpha", "beta gamma delta", "epsilon zeta", "eta"],
])
def test_batched_activations_equal_one_prompt_at_a_time(tiny_model_dir, texts):
    """Sorted by length, batched (3 a pass, left-padded after the reused prefix), and put back in
    the order given: each prompt's activations equal a plain forward pass over it alone."""
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_model_dir), AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = encode_prompts(tokenizer, [[{"role": "user", "content": t}] for t in texts])
    assert len(shared_prefix(ids)) >= 4 and plain_dynamic_cache(model, torch.device("cpu"))  # the cached path runs
    got = last_token_activations(model, ids, tokenizer.pad_token_id or 0, batch_size=3)
    np.testing.assert_allclose(got, plain_last_token_states(model, tokenizer, texts), atol=2e-4, rtol=1e-3)


def test_activations_without_a_shared_prefix(tiny_model_dir):
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_model_dir), AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in ("one two three", "four", "five six")]
    assert shared_prefix(ids) == []
    expected = []
    for row in ids:
        seen = []
        handles = [layer.register_forward_hook(lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out)[0, -1].clone()))
                   for layer in decoder_layers(model)]
        with torch.no_grad():
            model(torch.tensor([row]))
        for h in handles:
            h.remove()
        expected.append(torch.stack(seen).numpy())
    got = last_token_activations(model, ids, tokenizer.pad_token_id or 0, batch_size=2)
    np.testing.assert_allclose(got, np.stack(expected), atol=2e-4, rtol=1e-3)


def test_ablation_and_addition_hooks(tiny_model_dir):
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_model_dir), AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = tokenizer("some words here", return_tensors="pt").input_ids
    r = np.random.default_rng(0).normal(size=model.config.hidden_size)
    r_hat = torch.tensor(r / np.linalg.norm(r), dtype=torch.float32)
    seen = []
    grab = [layer.register_forward_hook(lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out).clone()))
            for layer in decoder_layers(model)]
    with torch.no_grad():
        model(ids)
        plain = list(seen)
        seen.clear()
        with steered(model, r, mode="ablate"):
            model(ids)
        ablated = list(seen)
        seen.clear()
        with steered(model, r, mode="add", layer=0):
            model(ids)
        added = list(seen)
    for g in grab:
        g.remove()
    # the hooks run in registration order: ours (added inside `steered`) after the grabbing ones, so
    # what is grabbed is the layer's own output; the next layer reads it with the direction removed
    assert all(float((h @ r_hat).abs().max()) > 1e-3 for h in plain)
    assert float((ablated[-1] @ r_hat).abs().max()) > 0  # a layer writes along r again...
    with torch.no_grad(), steered(model, r, mode="ablate"):
        final = []
        hook = decoder_layers(model)[-1].register_forward_hook(lambda m, a, out: final.append(out[0] if isinstance(out, tuple) else out))
        model(ids)
        hook.remove()
    assert float((final[0] @ r_hat).abs().max()) < 1e-4  # ...and the stream it passes on has none
    assert torch.allclose(added[0], plain[0]) and not torch.allclose(added[1], plain[1])


def test_report_draws_the_probe(probe_run, tmp_path):
    _, out, _ = probe_run
    page = tmp_path / "report.html"
    assert main(["report", str(out), "--out", str(page)]) == 0
    html = page.read_text()
    assert "refusal-direction" in html or "probe" in html
