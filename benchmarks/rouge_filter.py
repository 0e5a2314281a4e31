"""The self-instruct ROUGE-L filter: the pruned exact pool (methods/principles/rouge.py) against
the brute-force loop over rouge-score's scorer, on the same candidates, in one run.

    python benchmarks/rouge_filter.py                  # 20,000 candidates; brute force on the first 1,000
    python benchmarks/rouge_filter.py --candidates 5000 --brute 2000

Candidates are synthetic instructions (templates over a Zipf-distributed vocabulary, 5 to 40
words) with 15% planted near-duplicates (one or two words of an earlier candidate changed), so
the pool grows as it does in self-instruct. Each candidate is compared with every instruction
kept before it and kept when none has ROUGE-L F1 above 0.7. Brute force over all 20,000 takes
hours, so it runs on the first --brute candidates; both ways keep the same set there (checked),
and its time for all candidates is estimated from its pairs per second.
"""

from __future__ import annotations

import argparse
import random
import time

from selfalign.methods.principles.rouge import THRESHOLD, RougePool, brute_force_scorer

OPENINGS = ["Write", "Explain", "Describe", "List", "Give me", "Summarise", "Suggest", "Compare", "Create",
            "How do I", "What is", "Why does", "Plan", "Draft", "Translate", "Classify", "Recommend"]


def candidates(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.15:
            words = rng.choice(out).split()
            for _ in range(rng.randint(1, 2)):
                words[rng.randrange(len(words))] = rng.choices(vocab, weights)[0]
            out.append(" ".join(words))
        else:
            body = rng.choices(vocab, weights, k=rng.randint(4, 39))
            out.append(f"{rng.choice(OPENINGS)} {' '.join(body)}.")
    return out


def fast(texts: list[str]) -> tuple[list[str], float, int]:
    start = time.perf_counter()
    pool, kept = RougePool(), []
    for text in texts:
        if not pool.too_similar(text):
            pool.add(text)
            kept.append(text)
    return kept, time.perf_counter() - start, pool.exact_pairs


def brute(texts: list[str]) -> tuple[list[str], float, int]:
    scorer, kept, pairs = brute_force_scorer(), [], 0
    start = time.perf_counter()
    for text in texts:
        pairs += len(kept)
        if all(scorer.score(k, text)["rougeL"].fmeasure <= THRESHOLD for k in kept):
            kept.append(text)
    return kept, time.perf_counter() - start, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=20_000)
    parser.add_argument("--brute", type=int, default=1_000, help="candidates the brute-force loop filters")
    args = parser.parse_args()
    texts = candidates(args.candidates)
    sample = texts[: args.brute]

    kept_sample, t_fast_sample, _ = fast(sample)
    kept_brute, t_brute, pairs = brute(sample)
    assert kept_sample == kept_brute, "the fast pool kept another set than brute force"
    print(f"first {len(sample)} candidates: brute force {t_brute:.2f}s ({pairs} pairs scored), "
          f"fast {t_fast_sample:.2f}s, {t_brute / t_fast_sample:.0f}x; both keep the same {len(kept_brute)}")

    kept, t_fast, exact = fast(texts)
    all_pairs = sum(range(len(kept)))  # at least: every kept one compared with those before it
    estimate = all_pairs * t_brute / max(pairs, 1)
    print(f"all {len(texts)} candidates: fast {t_fast:.2f}s, kept {len(kept)}, exact LCS on {exact} pairs; "
          f"brute force estimated at over {estimate:.0f}s ({estimate / t_fast:.0f}x)")


if __name__ == "__main__":
    main()
