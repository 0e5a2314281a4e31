"""`hf:TARGET`: a transformers model in this process, on CPU or GPU.

A thin adapter: it loads the model (a Hugging Face folder, hub id or GGUF file, see
`checkpoints.py`), turns each chat request into token ids with the model's chat template and,
for structured output, an xgrammar matcher compiled from the JSON schema, and hands the row to
the continuous-batching engine (`engine.py`), which decodes all concurrent requests together.
`stream` also tells a caller the answer's text as it is decoded (`selfalign serve`'s streams).
A request without a seed samples with seed 0. A prompt longer than the model's context is
refused (UserError) before any decoding, and `max_tokens` is capped at what the context holds
after the prompt. Grammars are compiled on a pool of their own and kept within a memory bound
(`grammars.py`).

It also scores continuations (`loglikelihood`, plain text without the chat template) as
lm-evaluation-harness does (see `scoring.py`): the rows of concurrent requests share batched
forward passes, run in the engine's thread between two decoding steps.

No retries, no cache: the `Model` wrapper does those.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import torch

from selfalign.errors import UserError

from .checkpoints import load_pretrained, resolve_dtype
from .engine import BatchEngine, Row
from .errors import ModelError
from .grammars import GrammarCache
from .scoring import Batcher, ScoreRow, encode_pair, prompt_logprobs, score_rows
from .static_decode import MODES
from .text_stream import TextStream
from .types import ChatRequest, Completion, Loglikelihood, LoglikelihoodRequest, PromptLogprobs, Sampling, TextRequest

# How a model without a chat template is asked: "Question: ...\nAnswer:" (a system message as
# plain text first); callers stop generation at a next "\nQuestion:".
PLAIN_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}Question: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Answer: {{ m['content'] }}\n\n"
    "{% else %}{{ m['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Answer:{% endif %}"
)


class HFProvider:
    """A Hugging Face causal LM with a chat template, batched across concurrent requests.

    Options:
        device: "cuda", "cuda:1", "cpu", ...; default "cuda" when available, else "cpu".
        dtype: "auto" (the checkpoint's dtype on GPU, float32 on CPU, where half precision is
            slow and numerically rough), or a torch dtype name such as "bfloat16".
        max_batch_size: most requests decoded together (rows in the running batch).
        batch_wait_ms: how long the first request to an idle engine waits for others to join.
        trust_remote_code: passed to transformers, for models with their own code.
        plain_format: a model without a chat template (a base model) is asked in the plain
            "Question: ...\nAnswer:" format instead of refused; `chat_format` says which was used.
        compile_decode: "off" (default): decode steps as always, at shapes that grow every step.
            "graphs" (CUDA graphs, a GPU), "compile" (torch.compile) or "eager": decode steps at
            fixed shapes over a static KV cache (static_decode.py); unmeasured on a GPU so far,
            hence opt-in. Where a model cannot, decoding stays as always, with a log line.
    """

    constrained = True
    #: Optional sampling fields honoured (types.OPTIONAL_SAMPLING): by the engine's decoding.
    sampling_fields = frozenset({"logit_bias", "ngram_penalties"})
    #: A conversation ending with an assistant message is continued from it (a prefill).
    continues_final_message = True

    def __init__(
        self,
        target: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_batch_size: int = 32,
        batch_wait_ms: float = 5,
        trust_remote_code: bool = False,
        plain_format: bool = False,
        compile_decode: str = "off",
    ) -> None:
        if max_batch_size < 1:
            raise UserError(f"hf: max_batch_size must be at least 1, got {max_batch_size}")
        if compile_decode not in MODES:
            raise UserError(f"hf: compile_decode must be one of {', '.join(MODES)}, got {compile_decode!r}")
        self.name = "hf:" + target
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.tokenizer = load_pretrained(
            target, dtype=resolve_dtype(dtype, self.device), trust_remote_code=trust_remote_code
        )
        self.chat_format = "chat"
        if not getattr(self.tokenizer, "chat_template", None):
            if not plain_format:
                raise UserError(
                    f"hf:{target} has no chat template (is it a base model?). Use a chat/instruct model, "
                    "or add a 'chat_template' to its tokenizer_config.json."
                )
            self.tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
            self.chat_format = "plain"
        self.model.to(self.device)
        self.model.eval()
        #: The call cache's name for this model (model.py): a dtype other than float32 writes
        #: other texts, so a run resumed in another dtype does not take the first one's answers.
        weights = str(self.model.dtype).removeprefix("torch.")
        self.cache_identity = self.name if weights == "float32" else f"{self.name}@{weights}"
        eos_token_ids = _eos_ids(self.model, self.tokenizer)
        self.engine = BatchEngine(
            self.model,
            self.tokenizer,
            eos_token_ids=eos_token_ids,
            pad_token_id=_pad_id(self.model, self.tokenizer, eos_token_ids),
            max_batch_size=max_batch_size,
            batch_wait_ms=batch_wait_ms,
            name=self.name,
            compile_decode=compile_decode,
        )
        self._tokenizer_info: Any | None = None
        self._info_lock = threading.Lock()
        self._grammars = GrammarCache(self._grammar_compiler)
        self.context_length = _context_length(self.model, self.tokenizer)
        # Templating and tokenising stay off the event loop (grammars compile on their own pool).
        self._prepare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfalign-hf-prepare")
        self._scorer = Batcher(self._score, batch_wait_ms / 1000)
        # (prompt ids, top_k) -> PromptLogprobs
        self._prompt_scorer: Batcher[tuple[list[int], int], PromptLogprobs] = Batcher(self._score_prompts, batch_wait_ms / 1000)
        self._closed = False

    async def complete(self, request: ChatRequest) -> Completion:
        """Tokenise the request and wait for the engine's batch that answers it."""
        return await self.stream(request, None)

    async def stream(self, request: ChatRequest, on_text: Callable[[str], None] | None) -> Completion:
        """`complete`, telling `on_text` each piece of the answer's text as soon as later tokens
        can no longer change it (text_stream.py); what it was told starts the completion's text."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        row = await asyncio.get_running_loop().run_in_executor(self._prepare_pool, self._prepare, request)
        if request.json_schema is not None:
            import xgrammar as xgr

            row.matcher = xgr.GrammarMatcher(await self._grammars.get(request.json_schema))
        return await self.engine.generate(row, None if on_text is None else self._teller(row, on_text))

    def _teller(self, row: Row, on_text: Callable[[str], None]) -> Callable[[int], None]:
        text = TextStream.of_tokenizer(self.tokenizer, row.stop)  # an end-of-turn token decodes to nothing

        def tell(token: int) -> None:
            if piece := text.push(token):
                on_text(piece)

        return tell

    async def complete_text(self, request: TextRequest) -> Completion:
        """Continue a raw prompt (no chat template; the tokenizer adds BOS where the model uses one)."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        row = await asyncio.get_running_loop().run_in_executor(self._prepare_pool, self._prepare_text, request)
        return await self.engine.generate(row)

    async def loglikelihood(self, request: LoglikelihoodRequest) -> list[Loglikelihood]:
        """Each continuation's summed log-probability after the context, and whether it is greedy."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        rows = await asyncio.get_running_loop().run_in_executor(self._prepare_pool, self._encode, request)
        return await self._scorer.submit(rows)

    def _encode(self, request: LoglikelihoodRequest) -> list[ScoreRow]:
        # An empty context's token, as lm-evaluation-harness picks it: BOS, else the tokenizer's EOS.
        prefix_id = next(i for i in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id, self.engine.eos_token_ids[0]) if i is not None)
        rows = [encode_pair(self.tokenizer, request.context, c, prefix_id) for c in request.continuations]
        for row, text in zip(rows, request.continuations, strict=True):
            if not row.continuation:
                raise UserError(f"the continuation {text!r} has no tokens after its context; nothing to score")
            if len(row.continuation) > self._max_length:
                raise UserError(
                    f"the continuation {text[:40]!r}... is {len(row.continuation)} tokens, more than {self.name} "
                    f"reads at once ({self._max_length})"
                )
        return rows

    @property
    def _max_length(self) -> int:
        """Tokens a scored row may hold (lm-evaluation-harness's default when the model does not say)."""
        return self.context_length or 2048

    async def _score(self, rows: list[ScoreRow]) -> list[Loglikelihood]:
        pad_id = self.engine.pad_token_id
        return await self.engine.run_exclusive(
            lambda: score_rows(self.model, rows, pad_id=pad_id, max_length=self._max_length)
        )

    async def prompt_logprobs(self, prompts: list[str | list[int]], top_k: int) -> list[PromptLogprobs]:
        """Each prompt's (text, tokenised with the tokenizer's own special tokens, or token ids)
        token log-probabilities, the `top_k` most likely tokens at each position, and the greedy
        next token. Prompts of concurrent calls share forward passes."""
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        ids = await asyncio.get_running_loop().run_in_executor(self._prepare_pool, self._prompt_ids, prompts)
        results = await self._prompt_scorer.submit([(i, top_k) for i in ids])
        return [_fewer_top(r, top_k) for r in results]

    def _prompt_ids(self, prompts: list[str | list[int]]) -> list[list[int]]:
        vocab = _vocab_size(self.model)
        out = []
        for n, prompt in enumerate(prompts):
            ids = list(self.tokenizer(prompt)["input_ids"]) if isinstance(prompt, str) else list(prompt)
            if not ids:
                raise UserError(f"prompt {n} is empty: there is nothing to score")
            if any(not 0 <= i < vocab for i in ids):
                raise UserError(f"prompt {n} holds a token id outside this model's vocabulary (0 to {vocab - 1})")
            if len(ids) > self._max_length:
                raise UserError(f"prompt {n} is {len(ids)} tokens, and {self.name} reads at most {self._max_length}; shorten it")
            out.append(ids)
        return out

    async def _score_prompts(self, rows: list[tuple[list[int], int]]) -> list[PromptLogprobs]:
        """One pass for the prompts of many requests, with the most top tokens any of them asks."""
        prompts, top_k = [ids for ids, _ in rows], max(k for _, k in rows)
        pad_id = self.engine.pad_token_id
        return await self.engine.run_exclusive(
            lambda: prompt_logprobs(self.model, self.tokenizer, prompts, pad_id=pad_id, top_k=top_k)
        )

    async def close(self) -> None:
        """Stop the engine, fail queued requests, let go of the model."""
        self._closed = True
        await self.engine.close()
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)
        self._grammars.close()
        self.model = None  # drop our reference so the weights can be freed
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _prepare(self, request: ChatRequest) -> Row:
        messages = [m.model_dump() for m in request.messages]
        prefill = messages[-1]["role"] == "assistant"
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=not prefill, continue_final_message=prefill, tokenize=False
        )
        # The template already holds every special token the model expects (BOS included).
        prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._row(prompt_ids, request.sampling)  # its grammar, if any, is added by `complete`

    def _prepare_text(self, request: TextRequest) -> Row:
        return self._row(self.tokenizer(request.prompt)["input_ids"], request.sampling)

    def _row(self, prompt_ids: list[int], sampling: Sampling) -> Row:
        max_tokens = sampling.max_tokens
        if self.context_length is not None:
            if len(prompt_ids) >= self.context_length:
                raise UserError(
                    f"the prompt is {len(prompt_ids)} tokens, and {self.name} holds {self.context_length} tokens "
                    "in all (prompt and answer); shorten the messages"
                )
            max_tokens = min(max_tokens, self.context_length - len(prompt_ids))
        return Row(
            prompt_ids=list(prompt_ids),
            max_tokens=max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed if sampling.seed is not None else 0,
            stop=tuple(s for s in sampling.stop if s),
            logit_bias=self._logit_bias(sampling),
            ngram_penalties=tuple(sorted((sampling.ngram_penalties or {}).items())),
        )

    def _logit_bias(self, sampling: Sampling) -> tuple[tuple[int, float], ...]:
        bias = sampling.logit_bias or {}
        vocab = _vocab_size(self.model)
        if any(token >= vocab for token in bias):
            raise UserError(f"logit_bias names token {max(bias)}, and {self.name} has {vocab} tokens; "
                            "take the ids from this model's tokenizer")
        return tuple(sorted(bias.items()))

    def tokenize(self, text: str) -> list[int]:
        """`text` as token ids, without special tokens (for a logit bias)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _grammar_compiler(self) -> Any:
        """A grammar compiler for this model's tokenizer (one per compiling thread; xgrammar's
        own cache off: `GrammarCache` keeps grammars within its bound)."""
        import xgrammar as xgr

        with self._info_lock:
            if self._tokenizer_info is None:
                self._tokenizer_info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=_vocab_size(self.model), stop_token_ids=self.engine.eos_token_ids
                )
        return xgr.GrammarCompiler(self._tokenizer_info, cache_enabled=False)


# -- model facts ----------------------------------------------------------------------------


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


def _context_length(model: Any, tokenizer: Any) -> int | None:
    """Tokens the model holds in all (prompt and answer), from its config; None if unknown."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else None


def _fewer_top(result: PromptLogprobs, top_k: int) -> PromptLogprobs:
    """A result computed for a larger top_k (another request in the same pass), cut to top_k."""
    from dataclasses import replace

    cut = lambda t: replace(t, top=t.top[:top_k])  # noqa: E731
    return PromptLogprobs(tuple(cut(t) for t in result.tokens), cut(result.next))


def _vocab_size(model: Any) -> int:
    """Width of the logits (may exceed the tokenizer's vocabulary)."""
    return int(model.get_output_embeddings().weight.shape[0])
