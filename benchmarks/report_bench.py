"""The report of a large MATRIX run: page size, build time, and in headless Chromium the time to
open the page, to answer a search and a filter, and to open an item.

    python benchmarks/report_bench.py                         # 10,000 items shaped like --roles 2 --steps 2
    python benchmarks/report_bench.py --roles 5 --steps 5     # the paper's scene size
    python benchmarks/report_bench.py --items 1000 --json

Records are written straight through the run store (no model): each has the shape of a MATRIX
record, validated by its schema, with text as long as SmolLM2-135M writes it (answers of about
650 characters, actions, reasons and consequences of about 110; measured on our SmolLM2 runs),
of words drawn from the shipped Sandbox stance answers.
Every plan step gets the ego's action and a reaction from two roles; 2% of the items fail.
Three pages of the same run: as `selfalign report` writes it ("gzip": each item's scene and events
in blocks after the script, inflated when the item is opened), with the whole records in the one
gzipped block as before ("gzip-whole"), and as plain JSON.
Budgets (from the issue): a page under 50 MB that opens and answers a filter in under 2 s.
Needs Chromium and Playwright (make test-browser installs both).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from selfalign.methods.matrix.record import RECORD_FORMAT, MatrixRecord
from selfalign.methods.sandbox import load_stances
from selfalign.report import read_runs, render_page
from selfalign.report.page import COMPRESS_ABOVE
from selfalign.store import Item, RunStore

# English words as they come in our shipped stance answers, so the text is about as varied
WORDS = sorted({w for p in load_stances(None).pairs for w in (p.question + " " + p.answer).split()})


def text(rng: random.Random, chars: int) -> str:
    words = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words).capitalize() + "."


def record(rng: random.Random, roles: int, steps: int) -> dict:
    names = [f"role {k}" for k in range(roles)]
    events, memory = [], []
    for step in range(steps):
        ego = len(events)
        conflict = rng.random() < 0.3
        events.append({"index": ego, "step": step, "depth": 0, "actor": "asker", "action": text(rng, 110),
                       "feasible": True, "reason": text(rng, 110), "consequence": text(rng, 110),
                       "value_conflict": conflict, "conflict": "harm to another" if conflict else "",
                       "perceivers": names[:2]})
        for name in names[:2]:
            events.append({"index": len(events), "step": step, "depth": 1, "responds_to": ego, "actor": name,
                           "action": text(rng, 110), "feasible": rng.random() > 0.1, "reason": text(rng, 110),
                           "consequence": text(rng, 110), "perceivers": ["asker"]})
    for e in events:
        if e["feasible"]:
            memory.append({"event": e["index"], "text": f"{e['actor']}: {e['action']} -> {e['consequence']}"})
    rec = {
        "format": RECORD_FORMAT,
        "initial": text(rng, 650),
        "scene": {"situation": text(rng, 200), "ego": "asker", "target": text(rng, 80), "impact": [text(rng, 120)] * 2,
                  "outcome": text(rng, 150), "roles": [{"name": n, "kind": "person", "description": text(rng, 120)} for n in names],
                  "plan": [text(rng, 100) for _ in range(steps)]},
        "events": events,
        "memory": {"summary": "", "entries": memory},
        "consequences": {"harms": [{"who": names[0], "what": text(rng, 100)}], "summary": text(rng, 300), "answer_gist": text(rng, 150)},
        "revised": text(rng, 650),
        "harm_found": True,
        "role_memories": {n: [e["index"] for e in events if n in e["perceivers"] or e["actor"] == n] for n in names},
        "stopped": "plan_done",
        "calls": [],
    }
    return MatrixRecord.model_validate(rec).model_dump(mode="json")


def write_run(folder: Path, items: int, roles: int, steps: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    store = RunStore(folder)
    store.bind_config("matrix", {"model": "synthetic", "num_roles": roles, "num_steps": steps, "seed": seed})
    store.add_items([Item(f"{i:06d}", i, ({"role": "user", "content": f"Question {i}: " + text(rng, 80)},)) for i in range(items)])
    for i in range(items):
        if rng.random() < 0.02:
            store.mark_failed(f"{i:06d}", "SchemaError: no valid Verdict after 3 attempts", {"calls": 9})
        else:
            store.mark_done(f"{i:06d}", record(rng, roles, steps), {"calls": 9 * steps, "prompt_tokens": 5000, "completion_tokens": 900})
    store.close()


def browse(page_path: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(page_path.resolve().as_uri() + "#r0", wait_until="commit")
        page.wait_for_selector(".items .row")
        opened = time.perf_counter() - start
        page.wait_for_load_state("load")
        # the browser's own clock, from the start of the navigation: the list painted, the whole file read
        painted, read = page.evaluate("""() => [
            performance.getEntriesByName("first-contentful-paint")[0].startTime,
            performance.getEntriesByType("navigation")[0].loadEventEnd]""")

        def timed(action) -> tuple[float, float]:
            before = page.locator(".count").inner_text()
            start = time.perf_counter()
            action()
            page.wait_for_function("(b) => document.querySelector('.count').textContent !== b", arg=before)
            return time.perf_counter() - start, float(page.locator(".list").get_attribute("data-filter-ms"))

        search = timed(lambda: page.fill("input.search", "question 4242"))
        cleared = timed(lambda: page.fill("input.search", ""))
        conflicts = timed(lambda: page.check("input[data-filter='value conflicts']"))
        start = time.perf_counter()  # an item's detail: its block of scenes and events inflated on demand
        page.click(".items .row >> nth=7")
        page.wait_for_selector(".detail .timeline")
        item = time.perf_counter() - start
        browser.close()
    return {"open_s": opened, "painted_s": painted / 1000, "read_s": read / 1000, "search_s": search[0], "search_js_ms": search[1],
            "search_cleared_s": cleared[0], "filter_s": conflicts[0], "filter_js_ms": conflicts[1], "item_s": item}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--roles", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line too")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        start = time.perf_counter()
        write_run(folder, args.items, args.roles, args.steps)
        print(f"{args.items} MATRIX items (--roles {args.roles} --steps {args.steps}), written in {time.perf_counter() - start:.1f}s")
        figures = {"items": args.items, "roles": args.roles, "steps": args.steps}
        # the page as `selfalign report` writes it (gzipped past COMPRESS_ABOVE, each item's scene and
        # events in blocks read when it is opened), gzipped with the whole records in one block, and as plain JSON
        for name, compress_above, deferring in (("gzip", COMPRESS_ABOVE, True), ("gzip-whole", COMPRESS_ABOVE, False),
                                                ("json", 10**12, False)):
            start = time.perf_counter()
            runs = read_runs(folder)
            html = render_page(runs if deferring else [{**run, "deferred": []} for run in runs], compress_above)
            built = time.perf_counter() - start
            page = Path(tmp) / f"{name}.html"
            page.write_text(html, "utf-8")
            size = page.stat().st_size / 1e6
            f = {"page_mb": round(size, 1), "build_s": round(built, 2), **{k: round(v, 3) for k, v in browse(page).items()}}
            figures[name] = f
            print(f"{name}: page {f['page_mb']} MB (budget 50 MB: {'OK' if size < 50 else 'OVER'}), built in {built:.1f}s; "
                  f"headless Chromium: opened in {f['open_s']:.2f}s (list painted at {f['painted_s']:.2f}s, "
                  f"whole file read at {f['read_s']:.2f}s); search answered in {f['search_s']:.2f}s "
                  f"({f['search_js_ms']:.0f} ms in the page's script), cleared in {f['search_cleared_s']:.2f}s; "
                  f"'value conflicts' filter in {f['filter_s']:.2f}s ({f['filter_js_ms']:.0f} ms); an item opened in {f['item_s']:.2f}s; "
                  f"budget 2 s: {'OK' if max(f['open_s'], f['search_s'], f['filter_s']) < 2 else 'OVER'}")
        g, w, j = figures["gzip"], figures["gzip-whole"], figures["json"]
        print(f"gzip / gzip-whole: size {g['page_mb'] / w['page_mb']:.2f}x, open time {g['open_s'] / w['open_s']:.2f}x; "
              f"gzip / json: size {g['page_mb'] / j['page_mb']:.2f}x, open time {g['open_s'] / j['open_s']:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
