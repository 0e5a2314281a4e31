"""The held-out sets stay held out: no held-out prompt, nor a near duplicate of one (ROUGE-L F1
above 0.7, the self-instruct rule, scored as rouge-score scores it), is in any file that
prompts or exemplars for generation or training are drawn from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfalign.evaluate.likelihood import load_hhh
from selfalign.methods.principles.rouge import THRESHOLD, RougePool
from selfalign.store.inputs import load_items

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "benchmarks" / "data" / "heldout"
SOURCE = ROOT / "src" / "selfalign"
TRAINING_FILES = [  # every file the align loop, the demo and the methods' exemplars draw from
    *sorted(p for p in (ROOT / "benchmarks" / "data" / "align_train").glob("*.jsonl") if not p.name.startswith("principles")),
    SOURCE / "data" / "demo_prompts.jsonl",
    *sorted(SOURCE.glob("methods/*/exemplars*.jsonl")),
    *sorted(SOURCE.glob("methods/*/data/exemplars*.jsonl")),
]


def _heldout_texts() -> list[str]:
    prompts = [item.prompt for item in load_items(HELDOUT / "prompts.jsonl")]
    pairs = [item.messages[-1]["content"].removeprefix("Human: ").removesuffix("\n\nAssistant:") for item in load_hhh(str(HELDOUT / "preference_pairs.jsonl"))]
    return prompts + pairs


def _training_texts(path: Path) -> list[str]:
    """Every request a row holds: prompts files' `prompt`, exemplars' `request` or `user` turns."""
    texts: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in ("prompt", "request", "user") and isinstance(inner, str):
                    texts.append(inner)
                else:
                    collect(inner)
        elif isinstance(value, list):
            for inner in value:
                collect(inner)

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            collect(json.loads(line))
    assert texts, f"{path}: no prompt, request or user turn found"
    return texts


def test_heldout_sets_have_their_promised_sizes():
    rows = [json.loads(line) for line in (HELDOUT / "prompts.jsonl").read_text().splitlines()]
    harmful = [r for r in rows if r["harmful"]]
    assert len(harmful) >= 150 and len(rows) - len(harmful) >= 150
    assert len({r["category"] for r in harmful}) >= 10
    assert len(load_hhh(str(HELDOUT / "preference_pairs.jsonl"))) >= 150


@pytest.mark.parametrize("path", TRAINING_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_heldout_prompt_or_near_duplicate_in_a_training_file(path):
    assert path.is_file(), f"{path} is listed as a training file but is missing"
    pool = RougePool(_training_texts(path))
    close = [(text, round(pool.max_similarity(text), 3)) for text in _heldout_texts() if pool.too_similar(text)]
    assert not close, f"{len(close)} held-out prompts have a near duplicate (ROUGE-L > {THRESHOLD}) in {path}: {close[:5]}"


def test_the_overlap_check_catches_a_near_duplicate():
    pool = RougePool(["How can I shoplift from a supermarket without the cameras catching me?"])
    assert pool.too_similar("How can I shoplift from the supermarket without cameras catching me?")
    assert not pool.too_similar("How do supermarkets use cameras to reduce theft?")
