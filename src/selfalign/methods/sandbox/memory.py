"""Agents' memories: past (question, answer) pairs with the embedding of the question.

Each memory keeps its text and its vector together, in one entry and one stored value (the
reference code matched answers and embeddings by insertion order across threads; here a row of
the matrix and its entry are appended in the same call and never separately). Recall is one
numpy matrix-vector product over the agent's memories, fast at tens of thousands of them.

Memories persist in the run's state table (namespace `sandbox.memory`, key
`a00017/r002/00003`): seeds are round 0, a revision of round r is stored as round r when that
round ends. An agent acting in round r recalls only memories of rounds < r.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .grid import agent_id, round_id

NAMESPACE = "sandbox.memory"


class StateStore(Protocol):
    """The part of the run store a simulation needs (selfalign.store.RunStore has it)."""

    def put_state(self, ns: str, key: str, value: Any) -> None: ...

    def get_state(self, ns: str, key: str) -> Any | None: ...

    def state_items(self, ns: str) -> list[tuple[str, Any]]: ...


@dataclass(frozen=True)
class MemoryEntry:
    question: str
    answer: str
    vector: np.ndarray  # unit-length float32 embedding of the question
    round: int  # 0 for seeds
    source: str  # "seed:good:3" or the item id of the revision, "r002-a00017"

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "round": self.round,
            "source": self.source,
            "vector": base64.b64encode(np.asarray(self.vector, dtype="<f4").tobytes()).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MemoryEntry":
        vector = np.frombuffer(base64.b64decode(data["vector"]), dtype="<f4").astype(np.float32)
        return cls(data["question"], data["answer"], vector, int(data["round"]), data["source"])


@dataclass(frozen=True)
class Recalled:
    question: str
    answer: str
    similarity: float
    source: str


class AgentMemory:
    """One agent's memories: entries plus a growing (n, dim) matrix of their vectors."""

    def __init__(self) -> None:
        self.entries: list[MemoryEntry] = []
        self._matrix: np.ndarray | None = None
        self._rounds = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: MemoryEntry) -> None:
        n = len(self.entries)
        vector = np.asarray(entry.vector, dtype=np.float32).ravel()
        if self._matrix is None:
            self._matrix = np.zeros((16, vector.shape[0]), dtype=np.float32)
            self._rounds = np.zeros(16, dtype=np.int32)
        if vector.shape[0] != self._matrix.shape[1]:
            raise ValueError(f"memory vector of size {vector.shape[0]}, expected {self._matrix.shape[1]}")
        if n == self._matrix.shape[0]:  # grow by doubling: appends stay O(1) amortised
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._rounds = np.concatenate([self._rounds, np.zeros_like(self._rounds)])
        self._matrix[n] = vector
        self._rounds[n] = entry.round
        self.entries.append(entry)

    def recall(self, query: np.ndarray, *, k: int = 1, threshold: float = 0.3, before_round: int | None = None) -> list[Recalled]:
        """The k memories most similar to `query` (cosine similarity >= threshold), best first;
        of equally similar ones the newest first (an agent's latest answer to the same question
        is its current stance). With before_round, only memories of earlier rounds."""
        n = len(self.entries)
        if n == 0 or k <= 0 or self._matrix is None:
            return []
        sims = self._matrix[:n] @ np.asarray(query, dtype=np.float32).ravel()
        eligible = sims >= threshold - 1e-6
        if before_round is not None:
            eligible &= self._rounds[:n] < before_round
        candidates = np.flatnonzero(eligible)
        if candidates.size == 0:
            return []
        if candidates.size > k:
            top = np.argpartition(-sims[candidates], k - 1)[:k]
            # argpartition may cut a tie at the k-th place arbitrarily: take every tied one, then sort
            cutoff = sims[candidates[top]].min()
            candidates = candidates[sims[candidates] >= cutoff]
        order = sorted(candidates.tolist(), key=lambda i: (-float(sims[i]), -i))[:k]
        return [
            Recalled(self.entries[i].question, self.entries[i].answer, round(float(sims[i]), 4), self.entries[i].source)
            for i in order
        ]


class MemoryBank:
    """Every agent's memory, loaded from and written through to the run's state table."""

    def __init__(self, agents: int) -> None:
        self.agents = [AgentMemory() for _ in range(agents)]
        self._keys: set[str] = set()

    def __getitem__(self, agent: int) -> AgentMemory:
        return self.agents[agent]

    @staticmethod
    def key(agent: int, round_: int, n: int) -> str:
        return f"{agent_id(agent)}/{round_id(round_)}/{n:05d}"

    @classmethod
    def load(cls, store: StateStore, agents: int) -> "MemoryBank":
        bank = cls(agents)
        for key, value in store.state_items(NAMESPACE):  # sorted by key: agent, round, then order
            agent = int(key[1:6])
            bank.agents[agent].add(MemoryEntry.from_json(value))
            bank._keys.add(key)
        return bank

    def add(self, store: StateStore, agent: int, n: int, entry: MemoryEntry) -> None:
        """Store and add one entry; adding the same key again (a resumed round end) is a no-op."""
        key = self.key(agent, entry.round, n)
        if key in self._keys:
            return
        store.put_state(NAMESPACE, key, entry.to_json())
        self.agents[agent].add(entry)
        self._keys.add(key)

    def size(self) -> int:
        return sum(len(a) for a in self.agents)
