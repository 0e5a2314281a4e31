"""MATRIX at inference time ("LLM with MATRIX"): every chat request is answered by simulating
the scene its answer touches and returning the revised answer; no training.

    from selfalign.methods.matrix.serving import matrix_answerer
    app = create_app(matrix_answerer(model, MatrixConfig(num_roles=3)), "matrix")

The response's `selfalign.matrix` field holds the trace: the initial answer, the scene, the
event log, the memory, the consequence summary, why the simulation stopped, and the usage of
all its calls. The request's temperature applies to every call, its max_tokens to the answers
(structured calls use config.json_max_tokens), its seed replaces the config's seed. An answer
cut at max_tokens is returned as it is, with finish_reason "length". The same
request (messages and seed) always gets the same simulation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from selfalign.errors import UserError
from selfalign.llm import Model
from selfalign.llm.types import Completion, Message, Sampling
from selfalign.llm.usage import Usage, current_usage
from selfalign.methods.prompts import Prompts
from selfalign.store.inputs import Item

from .calls import PROMPTS_DIR
from .config import MatrixConfig
from .simulate import run_item


def matrix_answerer(model: Model, config: MatrixConfig | None = None, prompts: Prompts | None = None) -> Any:
    """An answerer for `selfalign.serve.create_app`: (messages, sampling, json_schema) ->
    (Completion with the revised answer, {"matrix": trace})."""
    base = config or MatrixConfig()
    prompts = prompts or Prompts(PROMPTS_DIR, base.templates)

    async def answer(
        messages: tuple[Message, ...], sampling: Sampling, json_schema: dict[str, Any] | None
    ) -> tuple[Completion, dict[str, Any]]:
        if json_schema is not None:
            raise UserError("response_format is not supported with --matrix: the revised answer is free text")
        if not messages or messages[-1].role != "user":
            raise UserError("the last message must be the user's turn")
        config = base.model_copy(
            update={
                "temperature": sampling.temperature,
                "max_tokens": sampling.max_tokens,
                "revision_max_tokens": sampling.max_tokens,
                "keep_truncated": True,  # a server returns a cut answer with finish_reason "length"
                "seed": base.seed if sampling.seed is None else sampling.seed,
            }
        )
        item = request_item(messages)
        usage = Usage()
        token = current_usage.set(usage)
        try:
            record = await run_item(item, model, config, prompts)
        finally:
            current_usage.reset(token)
        completion = Completion(
            text=record.revised,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            finish_reason=record.finish_reason,
        )
        trace = record.model_dump(mode="json", exclude={"calls"})
        trace["usage"] = usage.to_json()
        return completion, {"matrix": trace}

    return answer


def request_item(messages: tuple[Message, ...]) -> Item:
    """The request as an item whose id is a hash of its messages (the seeds derive from it)."""
    turns = tuple({"role": m.role, "content": m.content} for m in messages)
    digest = hashlib.sha256(json.dumps(turns, sort_keys=True).encode()).hexdigest()[:16]
    return Item(id=f"req-{digest}", idx=0, messages=turns)
