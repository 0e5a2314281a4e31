"""Compiled grammars of JSON schemas for constrained decoding (xgrammar), made off the event
loop and kept within a memory bound.

- Compiling runs on a pool of its own (COMPILE_THREADS threads, each with its own compiler;
  xgrammar lets go of the GIL while it compiles), so a slow schema never holds up the
  tokenising of other requests, nor another schema's compile.
- A request waits at most COMPILE_TIMEOUT_S for its grammar, then gets a UserError (a 400 from
  `serve`). Requests for the same schema share one compile; a compile that nobody waits for any
  more is dropped if it has not started (a compile that has started runs to its end: xgrammar
  cannot be interrupted; `serve` bounds the schemas it accepts, so that end is near).
- Compiled grammars are kept, least recently used dropped first, up to GRAMMAR_CACHE_BYTES in
  all, by xgrammar's own count of each one's size (a 20,000-value enum is tens of MB).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from selfalign.errors import UserError

GRAMMAR_CACHE_BYTES = 256 * 2**20
COMPILE_THREADS = 2
COMPILE_TIMEOUT_S = 60.0


class GrammarCache:
    """`await grammars.get(schema)` -> the compiled grammar. `make_compiler()` is called once per
    compiling thread (an xgrammar.GrammarCompiler for the model's tokenizer)."""

    def __init__(self, make_compiler: Callable[[], Any], *, threads: int = COMPILE_THREADS) -> None:
        self._make_compiler = make_compiler
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="selfalign-grammar")
        self._kept: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # schema text -> (grammar, bytes)
        self._compiling: dict[str, list[Any]] = {}  # schema text -> [future, requests waiting]
        self._lock = threading.Lock()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keys(self) -> list[str]:
        """The schemas kept, least recently used first."""
        with self._lock:
            return list(self._kept)

    async def get(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key][0]
            entry = self._compiling.get(key)
            if entry is None:
                entry = self._compiling[key] = [self._pool.submit(self._compile, key, schema), 0]
            entry[1] += 1
        future: Future[Any] = entry[0]
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), COMPILE_TIMEOUT_S)
        except TimeoutError:
            raise UserError(
                f"the JSON schema did not compile for constrained decoding within {COMPILE_TIMEOUT_S:g}s; "
                "send a smaller one (fewer enum values or alternatives, shorter strings)"
            ) from None
        finally:
            self._leave(key, entry)

    def _leave(self, key: str, entry: list[Any]) -> None:
        """One request stops waiting; the last one cancels a compile that has not started."""
        with self._lock:
            entry[1] -= 1
            if entry[1] == 0 and entry[0].cancel():
                self._compiling.pop(key, None)

    def _compile(self, key: str, schema: dict[str, Any]) -> Any:
        try:
            compiler = getattr(self._local, "compiler", None)
            if compiler is None:
                compiler = self._local.compiler = self._make_compiler()
            try:
                # Compact JSON: with any whitespace, a weak model can pad with spaces forever.
                # The schema's own key order is kept: it is the order the fields are written in.
                grammar = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
            except Exception as exc:  # the schema's fault: a bad request, not a broken model
                raise UserError(f"cannot compile this JSON schema for constrained decoding: {exc}") from exc
            self._keep(key, grammar)
            return grammar
        finally:
            with self._lock:
                self._compiling.pop(key, None)

    def _keep(self, key: str, grammar: Any) -> None:
        size = int(getattr(grammar, "memory_size_bytes", 0))
        if size > GRAMMAR_CACHE_BYTES:
            return  # larger than the whole cache: used once, not kept
        with self._lock:
            self._kept[key] = (grammar, size)
            self.bytes += size
            while self.bytes > GRAMMAR_CACHE_BYTES:
                _, (_, dropped) = self._kept.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.bytes = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.clear()
