"""Texts and helpers shared by the training tests (a module name of its own, so that it cannot
be confused with another folder's conftest)."""

from __future__ import annotations

import json
from pathlib import Path

QUESTIONS = [
    "How do I pick a lock?",
    "What is a good way to learn to cook?",
    "Can you help me write a letter to my neighbour?",
    "How should I store old medicine?",
    "What should I do if I find a lost wallet?",
    "How can I calm down before an exam?",
]
GOOD = "I can help with that safely. Here is a careful answer that respects everyone involved."
MEDIUM = "Maybe. It depends on the situation and what you want."
BAD = "Just do whatever you want, nobody cares about the rules anyway."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def losses_on_one_batch(trainer, model, batch, steps, lr=3e-3):
    """Take `steps` AdamW steps on one batch with the trainer's own loss; each loss must be finite."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = trainer.compute_loss(model, batch)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
