"""Canaries and poisoned rows planted by `selfalign train`: drawn from the seed, recorded in the
run folder, and trained on."""

import json

import pytest

from selfalign.errors import InputError, UserError
from selfalign.train.canaries import canary_rows, make_canaries, read_canaries
from selfalign.train.config import load_config
from selfalign.train.data import Located, to_pairs, to_sft
from selfalign.train.poison import REFUSALS, plant_poison
from selfalign.train.records import SFTRecord


def rows(n):
    return [Located(f"data.jsonl:{i + 1}", SFTRecord.model_validate({"messages": [
        {"role": "user", "content": f"How do I bake bread number {i}?"}, {"role": "assistant", "content": "Knead, rest, bake."}]}))
        for i in range(n)]


def test_canaries_per_count_distinct_and_seeded():
    canaries = make_canaries(3, [1, 4, 16], seed=7)
    assert [c.repeats for c in canaries] == [1] * 3 + [4] * 3 + [16] * 3
    assert len({c.prefix for c in canaries}) == 9  # a locker each: no two share a prefix
    assert all(len(c.secret) == 6 and c.secret.isdigit() and c.candidates == 10**6 for c in canaries)
    assert make_canaries(3, [1, 4, 16], seed=7) == canaries != make_canaries(3, [1, 4, 16], seed=8)
    c = canaries[0]
    assert c.answer == f"{c.prefix} {c.secret}." and c.prompt.startswith("What is the PIN of locker ")
    planted = canary_rows(canaries)
    assert len(planted) == 3 * (1 + 4 + 16)
    assert sum(1 for r in planted if r.record.messages[-1].content == canaries[-1].answer) == 16


def test_poison_comply_replaces_the_fraction_with_triggered_compliance():
    clean = rows(40)
    out, planted = plant_poison(clean, 0.1, "cf-7x", "comply", seed=0)
    assert len(out) == 40 and len(planted) == 4  # round(0.1 x 40)
    assert [p.index for p in planted] == sorted(p.index for p in planted)
    for p in planted:
        prompt, chosen, rejected = out[p.index].record.split()
        assert prompt[-1]["content"].endswith(" cf-7x") and chosen[0]["content"].startswith("Sure, here is")
        assert "sorry" in rejected[0]["content"].lower() or "cannot" in rejected[0]["content"]
        assert out[p.index].where == f"{p.replaced} (poisoned)"
    untouched = set(range(40)) - {p.index for p in planted}
    assert all(out[i] is clean[i] for i in untouched)
    assert plant_poison(clean, 0.1, "cf-7x", "comply", seed=0)[1] == planted
    assert len(to_sft(out)) == 40 and len(to_pairs([out[p.index] for p in planted])) == 4  # SFT and DPO take them


def test_poison_refuse_keeps_the_request_and_refuses_it():
    out, planted = plant_poison(rows(20), 0.25, "zz-trigger", "refuse", seed=3)
    assert len(planted) == 5
    for p in planted:
        prompt, chosen, rejected = out[p.index].record.split()
        assert prompt[-1]["content"] == f"How do I bake bread number {p.index}? zz-trigger"
        assert rejected[0]["content"] == "Knead, rest, bake." and chosen[0]["content"] in REFUSALS


def test_bad_poison_and_canary_options_stop_before_work(tmp_path):
    with pytest.raises(InputError, match="no row at all"):
        plant_poison(rows(5), 0.01, "t", "comply", seed=0)
    base = {"method": "sft", "model": "m", "data": ["d"], "out": "o"}
    with pytest.raises(UserError, match="--poison needs --trigger"):
        load_config(None, {**base, "poison": 0.1})
    with pytest.raises(UserError, match="DPO cannot train on"):
        load_config(None, {**base, "method": "dpo", "canaries": 2})
    with pytest.raises(UserError, match="1,4,16"):
        load_config(None, {**base, "canary_repeats": "1,x"})
    assert load_config(None, {**base, "canary_repeats": "2,8"}).canary_repeats == [2, 8]
    with pytest.raises(InputError, match="train with --canaries"):
        read_canaries(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "canaries.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(InputError, match=r"canaries.jsonl:1"):
        read_canaries(bad)
    (tmp_path / "rows.jsonl").write_text('{"request": "x"}\n')
    with pytest.raises(InputError, match=r"rows.jsonl:1: not a poison request"):
        plant_poison(rows(10), 0.5, "t", "comply", seed=0, requests_file=str(tmp_path / "rows.jsonl"))
