"""How long xgrammar takes to compile, and how much a compiled grammar holds, for schemas at and
past serve's bounds: what the bounds in serve/schema_check.py keep a request to.

    PYTHONPATH=src python benchmarks/grammar_compile.py [--model DIR]   # default: a tiny model built here
    # writes benchmarks/results/grammar_compile.json

Each schema is compiled once, on a fresh compiler without xgrammar's cache, on a thread, while
the main thread measures its own longest wait (xgrammar lets go of the GIL while it compiles).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SCHEMAS = {
    "enum of 1,000 (the bound)": {"enum": [f"value-{i}" for i in range(1_000)]},
    "enum of 5,000 (refused by serve)": {"enum": [f"value-{i}" for i in range(5_000)]},
    "pattern (a{100}){100}": {"type": "string", "pattern": "(a{100}){100}"},
    "pattern (a{1000}){1000}": {"type": "string", "pattern": "(a{1000}){1000}"},
    "string of 50,000-100,000 characters": {"type": "string", "minLength": 50_000, "maxLength": 100_000},
    "array of 100,000 objects": {"type": "array", "minItems": 100_000, "maxItems": 100_000,
                                 "items": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    "30 properties x 30 consts": {"type": "object", "properties": {
        f"k{i}": {"anyOf": [{"const": f"v{j}"} for j in range(30)]} for i in range(30)}},
}


def compile_timed(info, schema):
    import xgrammar as xgr

    compiler = xgr.GrammarCompiler(info, cache_enabled=False)
    result = {}

    def work():
        start = time.perf_counter()
        grammar = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        result.update(seconds=round(time.perf_counter() - start, 3), bytes=grammar.memory_size_bytes)

    thread = threading.Thread(target=work)
    thread.start()
    longest, last = 0.0, time.perf_counter()
    while thread.is_alive():
        time.sleep(0.005)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    result["main_thread_longest_wait_ms"] = round(1000 * longest, 1)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a Hugging Face model folder (its tokenizer is used)")
    args = p.parse_args()
    import xgrammar as xgr
    from transformers import AutoTokenizer

    model = args.model
    if model is None:
        model = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "selfalign.cli.main", "tiny-model", model], check=True, capture_output=True)
    info = xgr.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(model))
    results = {name: {"schema_chars": len(json.dumps(schema)), **compile_timed(info, schema)} for name, schema in SCHEMAS.items()}
    for name, r in results.items():
        print(f"{name:>38}: {r['seconds']:.3f} s, {r['bytes'] / 2**20:.2f} MiB, main thread waited at most {r['main_thread_longest_wait_ms']} ms")
    out = Path(__file__).parent / "results" / "grammar_compile.json"
    record = {"command": " ".join(["python", *sys.argv]), "model": args.model or "selfalign tiny-model",
              "machine": platform.machine(), "results": results}
    out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
