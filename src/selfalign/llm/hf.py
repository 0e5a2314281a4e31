"""`hf:ID_OR_PATH`: a transformers model in this process, on CPU or GPU, with dynamic batching.

Concurrent `complete()` calls go into a queue. One background task takes what is queued (up to
`max_batch_size`, waiting at most `batch_wait_ms` after the first request) and answers all of it
with ONE `model.generate` call, run in a dedicated thread so the event loop stays free; requests
arriving meanwhile form the next batch.

Every setting of a request is applied per row (see `decoding.py`): temperature, top_p and seed
through a seeded Gumbel-max sampler, max_tokens and stop strings through a per-row stopping
criterion, the JSON schema through one xgrammar matcher per row. So any requests can share a
batch, and a request gives the same text alone or batched with others (up to the float noise
of left-padding, see `RowSampler`). A request without a seed samples with seed 0.

No retries, no cache: the `Model` wrapper does those.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfalign.errors import UserError

from .decoding import GrammarProcessor, RowSampler, RowStopper, control_token_mask
from .errors import ModelError, TransientError
from .types import ChatRequest, Completion

log = logging.getLogger(__name__)


@dataclass
class _Row:
    """One request, ready for the batch: prompt token ids and its per-row settings."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...]
    matcher: Any | None  # xgrammar.GrammarMatcher when the request has a JSON schema


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future[Completion]


class HFProvider:
    """A Hugging Face causal LM with a chat template, batched across concurrent requests.

    Options:
        device: "cuda", "cuda:1", "cpu", ...; default "cuda" when available, else "cpu".
        dtype: "auto" (the checkpoint's dtype on GPU, float32 on CPU, where half precision is
            slow and numerically rough), or a torch dtype name such as "bfloat16".
        max_batch_size: most requests answered by one generate call.
        batch_wait_ms: how long the first queued request waits for others to join its batch.
        trust_remote_code: passed to transformers, for models with their own code.
    """

    constrained = True

    def __init__(
        self,
        model_id_or_path: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_batch_size: int = 32,
        batch_wait_ms: float = 5,
        trust_remote_code: bool = False,
    ) -> None:
        if max_batch_size < 1:
            raise UserError(f"hf: max_batch_size must be at least 1, got {max_batch_size}")
        self.name = "hf:" + model_id_or_path
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000
        self.model, self.tokenizer = _load(model_id_or_path, self.device, dtype, trust_remote_code)
        self.eos_token_ids = _eos_ids(self.model, self.tokenizer)
        self.pad_token_id = _pad_id(self.model, self.tokenizer, self.eos_token_ids)
        #: Counters of the generate calls run so far and the rows they held (tests, benchmarks).
        self.generate_calls = 0
        self.generated_rows = 0
        self._grammar_compiler: Any | None = None
        self._grammars: dict[str, Any] = {}  # JSON schema text -> compiled grammar
        self._forbidden_in_json: torch.Tensor | None = None  # see decoding.control_token_mask
        # One thread: generate calls run one after another, never racing for the device.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfalign-hf")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- the async side: queue and batching worker ------------------------------------------

    async def complete(self, request: ChatRequest) -> Completion:
        """Queue the request and wait for the batch that answers it."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        loop = asyncio.get_running_loop()
        queue = self._ensure_worker(loop)
        future: asyncio.Future[Completion] = loop.create_future()
        queue.put_nowait(_Pending(request, future))
        return await future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[_Pending]:
        # The queue and worker belong to one event loop; a provider reused under a new loop
        # (e.g. two asyncio.run calls) starts a fresh pair there.
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve(self._queue), name=f"{self.name} batcher")
        assert self._queue is not None
        return self._queue

    async def _serve(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            batch = [p for p in batch if not p.future.done()]  # callers may have given up
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.request for p in batch]
                )
            except asyncio.CancelledError:
                _fail(batch, ModelError(f"{self.name}: the provider was closed during the call"))
                raise
            except Exception as exc:  # the generate call itself failed: every row fails
                _fail(batch, _generate_error(self.name, exc))
                continue
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    async def _collect(self, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
        """The first queued request, plus those arriving within batch_wait_s, up to the max."""
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.batch_wait_s
        while len(batch) < self.max_batch_size:
            if not queue.empty():  # requests that queued up while the last batch ran
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def close(self) -> None:
        """Stop the worker, fail queued requests, let go of the model."""
        self._closed = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                _fail([self._queue.get_nowait()], ModelError(f"{self.name}: the provider is closed"))
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._grammars.clear()
        self.model = None  # drop our reference so the weights can be freed
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- the thread side: prepare rows, one generate call, read the rows back ---------------

    def _run_batch(self, requests: list[ChatRequest]) -> list[Completion | Exception]:
        """Answer a batch; a request that cannot be prepared fails alone, not the batch."""
        results: list[Completion | Exception | None] = [None] * len(requests)
        rows: list[_Row] = []
        positions: list[int] = []
        for i, request in enumerate(requests):
            try:
                rows.append(self._prepare(request))
                positions.append(i)
            except Exception as exc:
                results[i] = exc
        if rows:
            for i, completion in zip(positions, self._generate(rows), strict=True):
                results[i] = completion
        return [r if r is not None else ModelError("internal: row without result") for r in results]

    def _prepare(self, request: ChatRequest) -> _Row:
        messages = [m.model_dump() for m in request.messages]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # The template already holds every special token the model expects (BOS included).
        prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        sampling = request.sampling
        matcher = None
        if request.json_schema is not None:
            import xgrammar as xgr

            matcher = xgr.GrammarMatcher(self._grammar(request.json_schema))
        return _Row(
            prompt_ids=list(prompt_ids),
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed if sampling.seed is not None else 0,
            stop=tuple(s for s in sampling.stop if s),
            matcher=matcher,
        )

    def _grammar(self, schema: dict[str, Any]) -> Any:
        """The compiled grammar of a JSON schema; compiled once per schema (it is slow)."""
        import xgrammar as xgr

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            if self._grammar_compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=_vocab_size(self.model), stop_token_ids=self.eos_token_ids
                )
                self._grammar_compiler = xgr.GrammarCompiler(info)
                self._forbidden_in_json = control_token_mask(
                    self.tokenizer, _vocab_size(self.model), self.eos_token_ids
                )
            try:
                # Compact JSON: with any whitespace, a weak model can pad with spaces forever.
                # The schema's own key order is kept: it is the order the fields are written in.
                self._grammars[key] = self._grammar_compiler.compile_json_schema(
                    json.dumps(schema), any_whitespace=False
                )
            except Exception as exc:
                raise ModelError(f"{self.name}: cannot compile this JSON schema for constrained decoding: {exc}") from exc
        return self._grammars[key]

    def _generate(self, rows: list[_Row]) -> list[Completion]:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        input_ids, attention_mask = _left_pad(rows, self.pad_token_id, self.device)
        prompt_len = input_ids.shape[1]
        processors = LogitsProcessorList()
        if any(r.matcher is not None for r in rows):
            processors.append(
                GrammarProcessor(
                    [r.matcher for r in rows], self.eos_token_ids[0], prompt_len, self._forbidden_in_json
                )
            )
        if any(r.temperature > 0 for r in rows):  # after the grammar: masked tokens stay -inf
            processors.append(
                RowSampler([r.temperature for r in rows], [r.top_p for r in rows], [r.seed for r in rows], prompt_len)
            )
        stopper = RowStopper([r.max_tokens for r in rows], [r.stop for r in rows], prompt_len, self.tokenizer)
        # A fresh config: the checkpoint's own sampling defaults (top_k, repetition penalty...)
        # would apply to every row alike and break per-row reproducibility; greedy + processors.
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(r.max_tokens for r in rows),
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
        )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        self.generate_calls += 1
        self.generated_rows += len(rows)
        new_tokens = output[:, prompt_len:].tolist()
        return [
            self._read_row(row, tokens, stopped_at)
            for row, tokens, stopped_at in zip(rows, new_tokens, stopper.stopped_at, strict=True)
        ]

    def _read_row(self, row: _Row, tokens: list[int], stopped_at: int | None) -> Completion:
        """Cut a row's generated tokens to what it really produced, decode, apply stop strings."""
        # Beyond its own end a row holds padding (or tokens past its max_tokens): cut first,
        # since the pad token may be the EOS token.
        tokens = tokens[: stopped_at if stopped_at is not None else row.max_tokens]
        finish = "length"
        eos = set(self.eos_token_ids)
        body = tokens
        for k, token in enumerate(tokens):
            if token in eos:
                tokens, body, finish = tokens[: k + 1], tokens[:k], "stop"
                break
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in row.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(
            text=text,
            prompt_tokens=len(row.prompt_ids),
            completion_tokens=len(tokens),
            finish_reason=finish,
        )


# -- loading --------------------------------------------------------------------------------


def _load(path: str, device: torch.device, dtype: str, trust_remote_code: bool) -> tuple[Any, Any]:
    """Model and tokenizer, or a UserError that says what to fix."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_resolve_dtype(dtype, device), trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise UserError(_load_hint(path, exc)) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"hf:{path} has no chat template (is it a base model?). Use a chat/instruct model, "
            "or add a 'chat_template' to its tokenizer_config.json."
        )
    model.to(device)
    model.eval()
    return model, tokenizer


def _load_hint(path: str, exc: Exception) -> str:
    if Path(path).expanduser().exists():
        return f"hf:{path} exists but transformers cannot load it as a causal LM with a tokenizer: {exc}"
    return (
        f"hf:{path}: no such local directory, and loading it as a Hugging Face hub id failed: {exc}\n"
        "Pass the folder of a model in Hugging Face format (config.json, weights, tokenizer), or a hub "
        "id with network access (and `huggingface-cli login` for gated models). "
        "`selfalign tiny-model DIR` writes a small random model for tests."
    )


def _resolve_dtype(dtype: str, device: torch.device) -> Any:
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise UserError(f"hf: unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return resolved


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends a turn: the generation config's EOS ids and the tokenizer's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    ids = [i for i in [*ids, tokenizer.eos_token_id] if i is not None]
    if not ids:
        raise UserError("the model has no EOS token: set eos_token_id in its generation_config.json")
    return list(dict.fromkeys(ids))


def _pad_id(model: Any, tokenizer: Any, eos_ids: list[int]) -> int:
    for candidate in (tokenizer.pad_token_id, getattr(model.generation_config, "pad_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return eos_ids[0]  # masked out by the attention mask, so any id does


def _vocab_size(model: Any) -> int:
    """Width of the logits (may exceed the tokenizer's vocabulary)."""
    return int(model.get_output_embeddings().weight.shape[0])


# -- batch helpers --------------------------------------------------------------------------


def _left_pad(rows: list[_Row], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align the prompts, so every row's next token comes at the same position."""
    width = max(len(r.prompt_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.prompt_ids)
        input_ids[i, width - n :] = torch.tensor(row.prompt_ids, dtype=torch.long)
        attention_mask[i, width - n :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _fail(batch: list[_Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _generate_error(name: str, exc: Exception) -> Exception:
    """Out of memory may pass with a smaller batch on retry; anything else is for good."""
    if isinstance(exc, torch.OutOfMemoryError):
        return TransientError(f"{name}: out of GPU memory in a batched generate call ({exc}); lower max_batch_size if this repeats")
    return ModelError(f"{name}: generate failed: {type(exc).__name__}: {exc}")
