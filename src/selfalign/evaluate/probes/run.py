"""`run_probe`: every (model, step) of a probe is one item of one resumable run in OUT/run.sqlite,
run in order, one model loaded at a time; a rerun skips the steps already done. The figures go
to OUT/results.json (schema selfalign.probe/1) and OUT/results.md.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from selfalign.errors import UserError
from selfalign.runner import run_items
from selfalign.store import RunStore
from selfalign.store.files import write_text_atomic
from selfalign.store.inputs import Item

from .base import Probe, ProbeContext, ProbeOptions, build_probe

SCHEMA = "selfalign.probe/1"


class ProbeConfig(BaseModel):
    models: list[str] = Field(min_length=1, max_length=2)
    probe: str = "refusal-direction"
    out: str
    options: ProbeOptions = ProbeOptions()
    device: str | None = None
    progress: bool = True


def run_probe(config: ProbeConfig) -> dict[str, Any]:
    """Run (or resume) the probe on every model; returns results.json's content."""
    not_hf = [m for m in config.models if not m.startswith("hf:")]
    if not_hf:
        raise UserError(f"--model {not_hf[0]}: a probe reads a model's activations, so it needs a local hf: model")
    probe = build_probe(config.probe, config.options)
    items = [Item(f"{_key(spec)}/{step}", n, ({"role": "user", "content": f"{probe.name}: {step}"},), {"model": spec, "step": step})
             for n, (spec, step) in enumerate((spec, step) for spec in config.models for step in probe.steps())]
    store = RunStore(config.out)
    try:
        store.bind_config("probe", {"probe": probe.name, "options": config.options.model_dump(mode="json")})
        records = _records(store)
        asyncio.run(run_items(store, items, _worker(config, probe, records), concurrency=1, progress=config.progress))
        records = _records(store)
        failures = dict(store.failures())
    finally:
        store.close()
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for item in items:
        if item.id in records:
            by_model.setdefault(item.extra["model"], {})[item.extra["step"]] = records[item.id]
    results = {"schema": SCHEMA, "probe": probe.name, "options": config.options.model_dump(mode="json"),
               **probe.results(by_model, config.models),
               "failed_items": [{"id": i.id, "reason": failures[i.id]} for i in items if i.id in failures]}
    write_text_atomic(Path(config.out) / "results.json", json.dumps(results, indent=2))
    write_text_atomic(Path(config.out) / "results.md", probe.render(results))
    return results


def _records(store: RunStore) -> dict[str, dict[str, Any]]:
    return {item.id: record for item, record in store.done_records()}


def _worker(config: ProbeConfig, probe: Probe, done: dict[str, dict[str, Any]]) -> Any:
    loaded: dict[str, tuple[Any, Any, int]] = {}

    async def work(item: Item) -> dict[str, Any]:
        spec, step = item.extra["model"], item.extra["step"]
        if spec not in loaded:
            loaded.clear()  # one model in memory at a time: items run model by model
            gc.collect()
            loaded[spec] = _load(spec, config.device)
        model, tokenizer, pad_id = loaded[spec]
        earlier = {s: done[f"{_key(spec)}/{s}"] for s in probe.steps() if f"{_key(spec)}/{s}" in done}
        record = probe.run(ProbeContext(spec, model, tokenizer, pad_id, earlier), step)
        done[item.id] = record
        return record

    return work


def _load(spec: str, device: str | None) -> tuple[Any, Any, int]:
    import torch

    from selfalign.llm.checkpoints import load_pretrained

    model, tokenizer = load_pretrained(spec.removeprefix("hf:"), dtype=torch.float32)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{spec} has no chat template; the probe reads chat models' prompts as they are asked")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return model, tokenizer, int(pad)


def _key(spec: str) -> str:
    return hashlib.sha256(spec.encode()).hexdigest()[:10]
