"""Grid neighbours, stances, embedders and memory recall (no model)."""

import math
import time

import numpy as np
import pytest

from selfalign.errors import InputError, UserError
from selfalign.llm import MissingExtra
from selfalign.methods.sandbox import make_config
from selfalign.methods.sandbox.embed import LexicalEmbedder, load_embedder
from selfalign.methods.sandbox.grid import choose_raters, min_neighbour_count, neighbours, position
from selfalign.methods.sandbox.memory import AgentMemory, MemoryBank, MemoryEntry
from selfalign.methods.sandbox.stances import assign_stances, load_stances
from selfalign.store import RunStore


@pytest.mark.parametrize("grid,radius", [(2, 1.0), (3, 1.5), (4, 2.0), (10, 5.0), (5, math.sqrt(2))])
def test_neighbours_are_exactly_those_within_the_radius(grid, radius):
    for a in range(grid * grid):
        ra, ca = position(a, grid)
        brute = [b for b in range(grid * grid) if b != a and math.dist((ra, ca), position(b, grid)) <= radius + 1e-9]
        assert neighbours(a, grid, radius) == brute
    assert min_neighbour_count(grid, radius) == min(len(neighbours(a, grid, radius)) for a in range(grid * grid))


def test_hand_counted_neighbours():
    assert neighbours(0, 2, 1.0) == [1, 2]  # the diagonal is sqrt(2) away
    assert neighbours(4, 3, 1.0) == [1, 3, 5, 7]
    assert len(neighbours(4, 3, 1.5)) == 8
    assert len(neighbours(55, 10, 5.0)) == 78  # 10 x 10, radius 5, agent (5, 5): 80 lattice points in the disc minus (10,5), (5,10)


def test_raters_are_k_distinct_neighbours_and_seeded():
    for agent in range(100):
        raters = choose_raters(agent, 10, 5.0, 4, seed=1, round_=2)
        assert len(set(raters)) == 4 and set(raters) <= set(neighbours(agent, 10, 5.0))
        assert raters == choose_raters(agent, 10, 5.0, 4, seed=1, round_=2)
    draws = {tuple(choose_raters(55, 10, 5.0, 4, seed=s, round_=1)) for s in range(20)}
    assert len(draws) > 10


def test_config_refuses_too_few_neighbours_and_defaults_radius():
    with pytest.raises(UserError, match="only 2 neighbours.*--raters 4"):
        make_config(grid=2)
    assert make_config(grid=2, raters=2).social_radius == 1.0
    assert make_config(grid=10).social_radius == 5.0
    with pytest.raises(UserError, match="--grid"):
        make_config(grid=1)


def test_stance_assignment():
    assert assign_stances("all_good", 4, 0) == ["good"] * 4
    assert assign_stances("all_bad", 4, 0) == ["bad"] * 4
    assert assign_stances("half_half", 4, 0) == ["good", "good", "bad", "bad"]
    mixed = assign_stances("mixed_half_half", 100, 0)
    assert mixed.count("good") == 50 and mixed != assign_stances("half_half", 100, 0)
    assert mixed == assign_stances("mixed_half_half", 100, 0)


def test_shipped_stances_and_bad_stance_file(tmp_path):
    shipped = load_stances(None)
    assert len(shipped.of("good")) >= 10 and len(shipped.of("bad")) >= 10
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"stance": "good", "question": "q", "answer": "a"}\n{"stance": "evil", "question": "q", "answer": "a"}\n')
    with pytest.raises(InputError, match=r"s.jsonl:2: bad stance pair \(stance"):
        load_stances(bad)
    with pytest.raises(InputError, match="no such file"):
        load_stances(tmp_path / "missing.jsonl")


def test_lexical_embedder_is_normalised_and_deterministic():
    e = LexicalEmbedder()
    v = e.embed(["Hello world", "hello, WORLD!", "", "something else entirely"])
    assert v.shape == (4, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[[0, 1, 3]], axis=1), 1.0) and not v[2].any()
    assert float(v[0] @ v[1]) == pytest.approx(1.0)
    assert float(v[0] @ v[3]) < 0.3
    assert np.array_equal(v, LexicalEmbedder().embed(["Hello world", "hello, WORLD!", "", "something else entirely"]))


def test_sentence_transformers_embedder_names_its_extra():
    with pytest.raises(MissingExtra, match=r"pip install 'selfalign\[embeddings\]'"):
        load_embedder("st:sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(UserError, match="--embedder"):
        load_embedder("word2vec")


def _memory_of(pairs, e):
    mem = AgentMemory()
    for n, (v, (q, a)) in enumerate(zip(e.embed([q for q, _ in pairs]), pairs)):
        mem.add(MemoryEntry(q, a, v, 0, f"seed:{n}"))
    return mem


def test_recall_returns_the_right_pair_on_a_held_out_question():
    e = LexicalEmbedder()
    pairs = [(p.question, p.answer) for p in load_stances(None).of("good")]
    mem = _memory_of(pairs, e)
    query = e.embed(["I found a wallet full of cash on the street, can I keep it?"])[0]
    (hit,) = mem.recall(query, k=1, threshold=0.7)
    assert hit.question == "I found a wallet with cash on the street. Can I keep it?"
    assert hit.answer.startswith("Try to return it") and hit.similarity >= 0.7
    assert mem.recall(e.embed(["What is the boiling point of water at sea level?"])[0], k=1, threshold=0.7) == []


def test_recall_respects_rounds_threshold_and_k():
    e = LexicalEmbedder()
    mem = AgentMemory()
    (v,) = e.embed(["same question"])
    for r in range(4):
        mem.add(MemoryEntry("same question", f"answer of round {r}", v, r, f"r{r}"))
    assert [m.answer for m in mem.recall(v, k=2, threshold=0.7, before_round=3)] == ["answer of round 2", "answer of round 1"]
    assert mem.recall(v, k=5, threshold=0.7, before_round=0) == []
    assert len(mem.recall(v, k=10, threshold=0.7)) == 4


def test_recall_among_20k_memories_is_vectorised(capsys):
    e = LexicalEmbedder()
    rng = np.random.default_rng(0)
    mem = AgentMemory()
    noise = rng.standard_normal((20_000, 512)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    for i, v in enumerate(noise):
        mem.add(MemoryEntry(f"q{i}", f"a{i}", v, 0, f"s{i}"))
    target = e.embed(["How do I handle a disagreement with my teenager?"])[0]
    mem.add(MemoryEntry("How do I handle a disagreement with my teenager?", "Listen first.", target, 1, "t"))
    query = e.embed(["how to handle a disagreement with a teenager"])[0]
    start = time.perf_counter()
    for _ in range(20):
        (hit,) = mem.recall(query, k=1, threshold=0.7)
    per_query = (time.perf_counter() - start) / 20
    assert hit.answer == "Listen first."
    with capsys.disabled():
        print(f"\nrecall among {len(mem)} memories: {per_query * 1000:.2f} ms per query")


def test_memories_survive_a_restart_with_text_and_vector_together(tmp_path):
    e = LexicalEmbedder()
    store = RunStore(tmp_path / "run")
    bank = MemoryBank(3)
    texts = ["alpha question", "beta question", "gamma question"]
    for agent, (t, v) in enumerate(zip(texts, e.embed(texts))):
        bank.add(store, agent, 0, MemoryEntry(t, f"answer to {t}", v, 0, "seed"))
        bank.add(store, agent, 0, MemoryEntry(t, "a duplicate key is ignored", v, 0, "seed"))
    store.close()
    again = MemoryBank.load(RunStore(tmp_path / "run"), 3)
    for agent, t in enumerate(texts):
        (entry,) = again[agent].entries
        assert entry.question == t and entry.answer == f"answer to {t}"
        assert np.array_equal(entry.vector, e.embed([t])[0])
