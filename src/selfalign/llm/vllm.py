"""`vllm:ID_OR_PATH`: vLLM's async engine in this process (GPU machines, `selfalign[vllm]`).

vLLM batches by itself (continuous batching), so every `complete()` is simply one engine
request. The chat template is applied here with the model's Hugging Face tokenizer, and the
prompt goes in as token ids, so `hf:` and `vllm:` see the same prompt. JSON schemas become
vLLM structured outputs (`StructuredOutputsParams`, or `GuidedDecodingParams` on vLLM older
than 0.10.2).

Log-likelihoods (`loglikelihood`): context and continuation are tokenised as lm-evaluation-
harness does (`scoring.encode_pair`) and sent as token ids with `prompt_logprobs`; a
continuation's score is the sum of its tokens' prompt log-probabilities, greedy when each has
rank 1. Every continuation is its own engine request; vLLM batches them.

No retries, no cache: the `Model` wrapper does those.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from typing import Any

from .errors import ModelError
from .extras import require
from .scoring import encode_pair
from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, TextRequest


class VLLMProvider:
    """vLLM's AsyncLLM engine, built from `AsyncEngineArgs(model=model, **engine_args)`.

    Any vLLM engine argument may be passed, e.g. `tensor_parallel_size=2`,
    `gpu_memory_utilization=0.85`, `max_model_len=8192`, `dtype="bfloat16"`.
    """

    constrained = True
    #: vLLM's SamplingParams take a logit bias; n-gram penalties would need a per-request
    #: logits processor, which vLLM's V1 engine no longer takes.
    sampling_fields = frozenset({"logit_bias"})

    def __init__(self, model: str, **engine_args: Any) -> None:
        vllm = require("vllm", "vllm")
        from transformers import AutoTokenizer

        self.name = "vllm:" + model
        self._vllm = vllm
        args = vllm.AsyncEngineArgs(model=model, **engine_args)
        self.engine = vllm.AsyncLLMEngine.from_engine_args(args)  # AsyncLLM on the v1 engine
        self.tokenizer = AutoTokenizer.from_pretrained(
            engine_args.get("tokenizer") or model,
            trust_remote_code=bool(engine_args.get("trust_remote_code", False)),
        )
        self._ids = itertools.count()

    async def complete(self, request: ChatRequest) -> Completion:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(
                f"{self.name} has no chat template (is it a base model?). Use a chat/instruct "
                "model, add a 'chat_template' to its tokenizer_config.json, or prompt it with raw text."
            )
        messages = [m.model_dump() for m in request.messages]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return await self._generate(prompt_ids, self._sampling_params(request))

    def tokenize(self, text: str) -> list[int]:
        """`text` as token ids, without special tokens (for a logit bias)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def complete_text(self, request: TextRequest) -> Completion:
        """Continue a raw prompt (no chat template; the tokenizer adds BOS where the model uses one)."""
        prompt_ids = self.tokenizer(request.prompt)["input_ids"]
        return await self._generate(prompt_ids, self._sampling_params(ChatRequest((), request.sampling)))

    async def _generate(self, prompt_ids: list[int], params: Any) -> Completion:
        final = None
        async for output in self.engine.generate(
            {"prompt_token_ids": list(prompt_ids)}, params, f"selfalign-{next(self._ids)}"
        ):
            final = output
        if final is None or not final.outputs:
            raise ModelError(f"{self.name}: the engine returned no output")
        choice = final.outputs[0]
        return Completion(
            text=choice.text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(choice.token_ids),
            # vLLM says "stop" (EOS or stop string), "length" or "abort".
            finish_reason=choice.finish_reason or "stop",
        )

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        tok = self.tokenizer
        prefix_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        rows = [encode_pair(tok, request.context, c, prefix_id) for c in request.continuations]
        # prompt_logprobs=1: each position's own token's log-probability and rank
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = await asyncio.gather(*(self._final({"prompt_token_ids": r.context + r.continuation}, params) for r in rows))
        results = []
        for row, output in zip(rows, outputs, strict=True):
            positions = output.prompt_logprobs or []
            start = len(row.context)
            picked = [positions[start + i][token] for i, token in enumerate(row.continuation)]
            results.append(Loglikelihood(float(sum(p.logprob for p in picked)), all(p.rank == 1 for p in picked)))
        return results

    async def _final(self, prompt: dict[str, Any], params: Any) -> Any:
        final = None
        async for output in self.engine.generate(prompt, params, f"selfalign-{next(self._ids)}"):
            final = output
        if final is None:
            raise ModelError(f"{self.name}: the engine returned no output")
        return final

    def _sampling_params(self, request: ChatRequest) -> Any:
        s = request.sampling
        options: dict[str, Any] = dict(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            stop=list(s.stop) or None,
            seed=s.seed if s.seed is not None else 0,  # as hf:, an unseeded request uses seed 0
        )
        if s.logit_bias:
            options["logit_bias"] = dict(s.logit_bias)
        if request.json_schema is not None:
            options.update(self._structured(request.json_schema))
        return self._vllm.SamplingParams(**options)

    def _structured(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The SamplingParams field that constrains output to `schema`, for this vLLM version."""
        sampling = require("vllm.sampling_params", "vllm")
        if hasattr(sampling, "StructuredOutputsParams"):  # vLLM >= 0.10.2
            return {"structured_outputs": sampling.StructuredOutputsParams(json=schema)}
        if hasattr(sampling, "GuidedDecodingParams"):  # vLLM 0.6 - 0.11
            return {"guided_decoding": sampling.GuidedDecodingParams(json=schema)}
        raise ModelError(f"{self.name}: this vLLM has no structured outputs; install vllm>=0.8")

    async def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            result = shutdown()
            if inspect.isawaitable(result):
                await result
