"""What the bounded template sandbox costs per render, against a plain Jinja environment.

    PYTHONPATH=src python benchmarks/template_bench.py    # writes benchmarks/results/template_bench.json

MATRIX's react.j2 (the most rendered template: once per role per step) with values of a usual
size; the ratio is sandbox time over plain time.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import jinja2

from selfalign.methods.jinja_sandbox import BoundedSandbox, render_bounded
from selfalign.methods.prompts import OPTIONS

FOLDER = Path(__file__).parents[1] / "src/selfalign/methods/matrix/prompts"
VALUES = {
    "scene": {"situation": "s" * 200},
    "role": {"kind": "person", "name": "Ann", "description": "d" * 100},
    "memory": "m" * 2000,
    "perceived": {"actor": "Bob", "action": "a" * 200},
    "notice": None,
}


def per_render(render, n: int = 5000) -> float:
    render()
    start = time.perf_counter()
    for _ in range(n):
        render()
    return (time.perf_counter() - start) / n


def main() -> None:
    plain = jinja2.Environment(loader=jinja2.FileSystemLoader(FOLDER), **OPTIONS).get_template("react.j2")
    boxed = BoundedSandbox(loader=jinja2.FileSystemLoader(FOLDER), **OPTIONS).get_template("react.j2")
    assert plain.render(**VALUES) == render_bounded(boxed, VALUES)
    rounds = [(per_render(lambda: plain.render(**VALUES)), per_render(lambda: render_bounded(boxed, VALUES))) for _ in range(3)]
    plain_s, boxed_s = min(r[0] for r in rounds), min(r[1] for r in rounds)
    result = {"command": " ".join(["python", *sys.argv]), "machine": platform.processor() or platform.machine(),
              "plain_us": round(plain_s * 1e6, 1), "sandbox_us": round(boxed_s * 1e6, 1), "ratio": round(boxed_s / plain_s, 2)}
    print(f"react.j2: plain {result['plain_us']} us, bounded sandbox {result['sandbox_us']} us per render: {result['ratio']}x")
    out = Path(__file__).parent / "results" / "template_bench.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
