"""One model call of a SELF-ALIGN stage: a prompt as raw text (a base model, as the paper
prompts one) or as one user message (a chat model)."""

from __future__ import annotations

from pathlib import Path

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.llm.types import ChatResult

PROMPTS_DIR = Path(__file__).parent / "prompts"


def use_raw(raw: bool | None, model: Model, *, prefer_raw: bool = False) -> bool:
    """Raw text when asked (`--raw`); by default, when the model has no chat template, or, for a
    stage that keeps more of a chat model's work in raw text (`prefer_raw`: stages 1 and 2, as
    measured on SmolLM2, benchmarks/results/principles_format.json), whenever the model
    completes raw text."""
    if raw and not model.completes_text:
        raise UserError(f"--raw: {model.name} does not complete raw text; drop --raw to prompt it as a chat model")
    if raw is not None:
        return raw
    if prefer_raw:
        return model.completes_text
    return model.completes_text and getattr(model.provider, "chat_format", "chat") == "plain"


async def ask(
    model: Model, prompt: str, *, raw: bool, seed: int, temperature: float, top_p: float, max_tokens: int,
    stop: tuple[str, ...] = (), logit_bias: dict[int, float] | None = None,
    ngram_penalties: dict[int, float] | None = None,
) -> ChatResult:
    sampling = dict(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, stop=stop)
    if logit_bias:
        sampling["logit_bias"] = logit_bias
    if ngram_penalties:
        sampling["ngram_penalties"] = ngram_penalties
    if raw:
        return await model.text(prompt, **sampling)
    return await model.chat([{"role": "user", "content": prompt}], **sampling)
