"""The refusal direction (Arditi et al. 2024), for one model or two (base and tuned).

For each model, in steps (each one item of the run):

1. `activations`: the residual stream after every decoder layer at the last prompt token (the
   chat template's generation prompt included), for harmful and harmless prompts, in batched
   forward passes. Each set is split with the seed: the direction is the difference of means
   on one part (`direction.difference_of_means`), its separation (AUROC of the projections, and
   the standardised gap) is measured on the held-out part, per layer. The probe's layer is
   `--layer`, or the best-separating one in the first 80% of the layers.
2. `harmful`, `harmful-ablated`: greedy answers to the held-out harmful prompts, as they are
   and with the layer's direction projected out of the residual stream at every layer.
3. `harmless`, `harmless-added`: greedy answers to the held-out harmless prompts, as they are
   and with the direction added at the probe's layer.

An answer refuses when it holds a refusal phrase (the refusal scorer's list). The paper's
finding: ablation makes harmful requests answered, addition makes harmless ones refused.
With two models: the cosine between their directions at every layer, and the change in
separation (AUROC tuned - base), so alignment training shows inside the model.

Prompts: `--harmful FILE --harmless FILE` (any prompt file `selfalign` reads), or the shipped
sets (data/harmful.txt, data/harmless.txt: 20 requests each in the same three wordings, so that
the two sets differ in what is asked, not how).
"""

from __future__ import annotations

import math
import random
from importlib import resources
from typing import Any

import numpy as np

from selfalign.errors import InputError
from selfalign.store.inputs import load_items

from ..attacks.results import md_escape
from ..scorers import load_refusal_phrases, refusal_phrase
from ..stats import bootstrap_mean
from .base import ProbeContext, ProbeOptions
from .direction import auroc, choose_layer, cosine, difference_of_means, projections, standardised_gap
from .hooks import encode_prompts, greedy_answers, last_token_activations, steered

STEPS = ["activations", "harmful", "harmful-ablated", "harmless", "harmless-added"]
AUROC_RESAMPLES = 1_000


def _prompts(path: str | None, shipped: str) -> list[list[dict[str, str]]]:
    if path is None:
        lines = resources.files(__package__).joinpath(f"data/{shipped}.txt").read_text("utf-8").splitlines()
        return [[{"role": "user", "content": line}] for line in lines if line.strip()]
    return [list(item.messages) for item in load_items(path)]


def split(prompts: list[Any], held_out: float, seed: int | str) -> tuple[list[Any], list[Any]]:
    """(direction part, held-out part), shuffled with the seed; each part keeps at least one."""
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    cut = min(len(prompts) - 1, max(1, round(len(prompts) * (1 - held_out))))
    return [prompts[i] for i in order[:cut]], [prompts[i] for i in order[cut:]]


class RefusalDirection:
    name = "refusal-direction"

    def __init__(self, options: ProbeOptions) -> None:
        self.options = options
        harmful, harmless = _prompts(options.harmful, "harmful"), _prompts(options.harmless, "harmless")
        for flag, rows in (("--harmful", harmful), ("--harmless", harmless)):
            if len(rows) < 4:
                raise InputError(f"{flag}: {len(rows)} prompts; give at least 4 (half make the direction, half measure it)")
        self.fit = {"harmful": [], "harmless": []}
        self.held = {"harmful": [], "harmless": []}
        for name, rows in (("harmful", harmful), ("harmless", harmless)):
            self.fit[name], self.held[name] = split(rows, options.held_out, f"{options.seed}-{name}")
        self.phrases = load_refusal_phrases(options.refusal_phrases_file)

    def steps(self) -> list[str]:
        return list(STEPS)

    def run(self, ctx: ProbeContext, step: str) -> dict[str, Any]:
        if step == "activations":
            return self._activations(ctx)
        found = ctx.earlier["activations"]
        layer = found["layer"]
        direction = np.asarray(found["directions"][layer])
        kind = step.split("-")[0]
        prompts = encode_prompts(ctx.tokenizer, self.held[kind])
        generate = lambda: greedy_answers(ctx.model, ctx.tokenizer, prompts, ctx.pad_id, self.options.max_new_tokens)  # noqa: E731
        if step.endswith("ablated"):
            with steered(ctx.model, direction, mode="ablate"):
                answers = generate()
        elif step.endswith("added"):
            with steered(ctx.model, direction, mode="add", layer=layer):
                answers = generate()
        else:
            answers = generate()
        refused = [refusal_phrase(a, self.phrases) is not None for a in answers]
        return {"prompts": [c[-1]["content"] for c in self.held[kind]], "answers": answers, "refused": refused}

    def _activations(self, ctx: ProbeContext) -> dict[str, Any]:
        groups = [(part, name, rows) for part, sets in (("fit", self.fit), ("held", self.held)) for name, rows in sets.items()]
        # one pass over all four groups: sorted by length and sharing the template's prefix across all of them
        every = last_token_activations(ctx.model, encode_prompts(ctx.tokenizer, [r for _, _, rows in groups for r in rows]),
                                       ctx.pad_id, self.options.batch_size)
        acts, start = {}, 0
        for part, name, rows in groups:
            acts[part, name], start = every[start : start + len(rows)], start + len(rows)
        n_layers = acts["fit", "harmful"].shape[1]
        directions, aurocs, gaps, scores = [], [], [], []
        for layer in range(n_layers):
            r = difference_of_means(acts["fit", "harmful"][:, layer], acts["fit", "harmless"][:, layer])
            s_h, s_b = projections(acts["held", "harmful"][:, layer], r), projections(acts["held", "harmless"][:, layer], r)
            directions.append(r)
            aurocs.append(auroc(s_h, s_b))
            gaps.append(standardised_gap(s_h, s_b))
            scores.append((s_h, s_b))
        if self.options.layer is not None and not 0 <= self.options.layer < n_layers:
            raise InputError(f"--layer {self.options.layer}: {ctx.spec} has layers 0 to {n_layers - 1}")
        layer = self.options.layer if self.options.layer is not None else choose_layer(aurocs, gaps)
        return {"layers": n_layers, "layer": layer, "auroc": aurocs, "gap": [g if math.isfinite(g) else None for g in gaps], "norm": [float(np.linalg.norm(r)) for r in directions],
                "directions": [r.astype(np.float32).tolist() for r in directions],
                "held_out_scores": {"harmful": scores[layer][0].tolist(), "harmless": scores[layer][1].tolist()},
                "prompts": {part: {k: len(v) for k, v in sets.items()} for part, sets in (("direction", self.fit), ("held_out", self.held))}}

    def results(self, records: dict[str, dict[str, dict[str, Any]]], models: list[str]) -> dict[str, Any]:
        seed, resamples = self.options.seed, self.options.resamples
        per_model = []
        for spec in models:
            steps = records.get(spec, {})
            found = steps.get("activations")
            if found is None:
                per_model.append({"model": spec, "complete": False})
                continue
            refusal = {}
            for step in STEPS[1:]:
                if step in steps:
                    est = bootstrap_mean([float(r) for r in steps[step]["refused"]], resamples=resamples, seed=seed)
                    refusal[step] = {"value": est.value, "ci": [est.low, est.high], "n": est.n}
            held = found["held_out_scores"]
            per_model.append({"model": spec, "complete": all(s in steps for s in STEPS), "layers": found["layers"], "layer": found["layer"],
                              "auroc": found["auroc"], "gap": found["gap"], "norm": found["norm"],
                              "auroc_at_layer": {"value": found["auroc"][found["layer"]],
                                                 "ci": auroc_interval(held["harmful"], held["harmless"], seed)},
                              "refusal_rate": refusal, "prompts": found["prompts"]})
        out: dict[str, Any] = {"models": per_model}
        if len(models) == 2 and all(m.get("auroc") for m in per_model):
            out["comparison"] = compare(records[models[0]]["activations"], records[models[1]]["activations"])
        return out

    def render(self, results: dict[str, Any]) -> str:
        """Markdown: per model, the probe's layer, its separation and the refusal rates."""
        lines = ["# Refusal direction", "", "| model | layer | AUROC (held out) [95%] | " + " | ".join(f"refusal: {s}" for s in STEPS[1:]) + " |",
                 "|" + "---|" * (3 + len(STEPS) - 1)]
        for m in results["models"]:
            if "layer" not in m:
                lines.append(f"| {md_escape(m['model'])} | not run yet | | " + " | " * (len(STEPS) - 1))
                continue
            a = m["auroc_at_layer"]
            cells = [_estimate(m["refusal_rate"].get(s)) for s in STEPS[1:]]
            lines.append(f"| {md_escape(m['model'])} | {m['layer']} of {m['layers']} | {a['value']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}] | "
                         + " | ".join(cells) + " |")
        comparison = results.get("comparison")
        if comparison and comparison.get("comparable"):
            layer = comparison["layer"]
            lines += ["", f"Cosine between the two models' directions at layer {layer}: {comparison['cosine_at_layer']:.3f}; "
                          f"change in AUROC there (second - first): {comparison['auroc_change'][layer]:+.3f}."]
        lines += ["", "Refusal: share of held-out answers with a refusal phrase, [95% bootstrap interval]; ablated: the direction "
                      "projected out at every layer; added: the direction added at the probe's layer. Per-layer figures are in results.json."]
        return "\n".join(lines) + "\n"


def _estimate(fig: dict[str, Any] | None) -> str:
    return "" if fig is None else f"{fig['value']:.2f} [{fig['ci'][0]:.2f}, {fig['ci'][1]:.2f}] n={fig['n']}"


def auroc_interval(harmful: list[float], harmless: list[float], seed: int, resamples: int = AUROC_RESAMPLES) -> list[float]:
    """95% percentile bootstrap interval of the AUROC, each class resampled on its own."""
    rng = np.random.default_rng(seed)
    h, b = np.asarray(harmful), np.asarray(harmless)
    values = [auroc(h[rng.integers(0, h.size, h.size)], b[rng.integers(0, b.size, b.size)]) for _ in range(resamples)]
    low, high = np.quantile(values, [0.025, 0.975])
    return [float(low), float(high)]


def compare(base: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """Cosine between the two models' directions at every layer, and the change in separation."""
    if base["layers"] != tuned["layers"] or len(base["directions"][0]) != len(tuned["directions"][0]):
        return {"comparable": False, "reason": "the two models differ in layers or width"}
    cosines = [cosine(np.asarray(a), np.asarray(b)) for a, b in zip(base["directions"], tuned["directions"], strict=True)]
    return {"comparable": True, "cosine": cosines, "cosine_at_layer": cosines[base["layer"]], "layer": base["layer"],
            "auroc_change": [t - b for b, t in zip(base["auroc"], tuned["auroc"], strict=True)],
            "gap_change": [None if None in (b, t) else t - b for b, t in zip(base["gap"], tuned["gap"], strict=True)]}


FACTORIES = {"refusal-direction": RefusalDirection}
