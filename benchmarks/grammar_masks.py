"""Grammar masks per decoding step: xgrammar's matchers filled one row at a time (what the `hf:`
engine did first) against its BatchGrammarMatcher (threads over the rows), at batch 8, 32, 64.

Each row is a matcher of one JSON schema (the Sandbox rating and a MATRIX verdict, alternating)
advanced by a different number of tokens of a valid answer, so the rows sit in different states
(inside a key, a string, a number), as in a running batch. The time is that of one step's mask
filling for the whole batch, best of several repeats.

    python benchmarks/grammar_masks.py                    # SmolLM2's tokenizer (49k tokens)
    python benchmarks/grammar_masks.py --model /tmp/tiny  # any tokenizer folder
"""

from __future__ import annotations

import argparse
import json
import os
import time

import xgrammar as xgr
from transformers import AutoTokenizer

from selfalign.methods.matrix.schemas import verdict_schema
from selfalign.methods.sandbox.record import Rating

Verdict = verdict_schema(("neighbour", "landlord"))  # the modulator's verdict on an action

ANSWERS = {
    Rating: {"rating": 6, "reason": "It is honest and kind, and it explains why."},
    Verdict: {"feasible": True, "reason": "the car park is open at night", "consequence": "the neighbour cannot leave",
              "value_conflict": True, "conflict": "harm to another", "perceivers": ["neighbour", "landlord"]},
}


def tokenizer_of(model: str | None):
    if model:
        return AutoTokenizer.from_pretrained(model)
    from selfalign.llm.checkpoints import smollm2_gguf

    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def matchers(compiler, tokenizer, batch: int) -> list:
    out = []
    for k in range(batch):
        schema = (Rating, Verdict)[k % 2]
        grammar = compiler.compile_json_schema(json.dumps(schema.model_json_schema()), any_whitespace=False)
        matcher = xgr.GrammarMatcher(grammar)
        tokens = tokenizer.encode(json.dumps(ANSWERS[schema]), add_special_tokens=False)  # as the engine writes it
        for token in tokens[: (k * 7) % max(1, len(tokens) - 1)]:  # a different state per row
            assert matcher.accept_token(token)
        out.append(matcher)
    return out


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="tokenizer folder (default: SmolLM2's)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    tokenizer = tokenizer_of(args.model)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer)
    compiler = xgr.GrammarCompiler(info)
    batcher = xgr.BatchGrammarMatcher(max_threads="auto")
    print(f"vocabulary {info.vocab_size} tokens; BatchGrammarMatcher threads: auto")
    for batch in args.batches:
        rows = matchers(compiler, tokenizer, batch)
        bitmask = xgr.allocate_token_bitmask(batch, info.vocab_size)
        indices = list(range(batch))

        def one_by_one() -> None:
            for k, m in enumerate(rows):
                m.fill_next_token_bitmask(bitmask, k)

        def batched() -> None:
            batcher.batch_fill_next_token_bitmask(rows, bitmask, indices)

        one_by_one()
        expected = bitmask.clone()
        batched()
        assert bitmask.equal(expected), "the two ways must give the same masks"
        loop, batch_time = best_of(args.repeats, one_by_one), best_of(args.repeats, batched)
        print(f"batch {batch:3d}: one row at a time {loop * 1e3:7.2f} ms, batched {batch_time * 1e3:7.2f} ms per step: "
              f"batched {loop / batch_time:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
