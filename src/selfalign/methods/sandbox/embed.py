"""Embedders for agents' memories: text -> unit-length float32 vectors.

    lexical            hashed content-word 1-2-grams and character 3-grams (function words
                       dropped), term counts, L2-normalised; needs no weights and runs
                       anywhere (the default)
    lexical:DIM        the same with DIM buckets (default 512)
    st:NAME            a sentence-transformers model (pip install 'selfalign[embeddings]'),
                       e.g. st:sentence-transformers/all-MiniLM-L6-v2
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol

import numpy as np

from selfalign.errors import UserError

LEXICAL_DIM = 512
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Function words carry the form of a question ("what should I do"), not its topic: every
# question shares them, so they would make unrelated questions look alike.
STOPWORDS = frozenset(
    "a an the i me my mine we our you your he she it its they them their is are was were be been being am "
    "do does did doing have has had of to in on at for with by from about as into than then that this these "
    "those and or but if so not no can could should would will shall may might must what which who whom whose "
    "how when where why there here just very really too also any some all it's i'm don't".split()
)


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length (or all zeros for empty text)."""
        ...


class LexicalEmbedder:
    """Feature hashing (signed, crc32) of lowercased content-word unigrams and bigrams and of
    character 3-grams inside them. Similar wording gives similar vectors; meaning is not
    understood. benchmarks/memory_threshold.py measures how well it recalls paraphrases."""

    def __init__(self, dim: int = LEXICAL_DIM) -> None:
        if dim < 8:
            raise UserError(f"--embedder lexical:{dim}: use at least 8 dimensions")
        self.dim = dim
        self.name = f"lexical:{dim}"

    def features(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
        feats = [f"w:{w}" for w in words]
        feats += [f"b:{a} {b}" for a, b in zip(words, words[1:])]
        for w in words:
            padded = f"<{w}>"
            feats += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
        return feats

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self.features(text):
                h = zlib.crc32(feat.encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return _normalise(out)


class SentenceTransformerEmbedder:
    def __init__(self, model_name: str, device: str | None = None) -> None:
        from selfalign.llm.extras import require

        st = require("sentence_transformers", "embeddings")
        self.name = f"st:{model_name}"
        self._model = st.SentenceTransformer(model_name, device=device)

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
        return _normalise(np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))


def load_embedder(spec: str, device: str | None = None) -> Embedder:
    kind, _, arg = spec.partition(":")
    if kind == "lexical":
        try:
            return LexicalEmbedder(int(arg) if arg else LEXICAL_DIM)
        except ValueError as exc:
            raise UserError(f"--embedder {spec}: expected lexical or lexical:DIM (an integer)") from exc
    if kind in ("st", "sentence-transformers") and arg:
        return SentenceTransformerEmbedder(arg, device=device)
    raise UserError(f"--embedder {spec}: expected lexical, lexical:DIM or st:MODEL_NAME")


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
