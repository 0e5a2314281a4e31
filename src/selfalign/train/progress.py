"""What training shows while it runs. One progress bar (selfalign.progress): steps, the last
logged loss, and the time left (tqdm's estimate); transformers' own bar is off (`disable_tqdm`),
and the PrinterCallback it adds in its place, which prints each log as a dict, is removed
(train.run). And how often the loss is logged: every step of a short run, so its curves in
`selfalign report` have every point."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from selfalign.progress import progress_bar

LOGGING_STEPS = 10  # a long run logs every 10 steps unless --logging-steps says otherwise
SHORT_RUN = 100  # steps: a run this short logs every step


class LogShortRunsEveryStep(TrainerCallback):
    """Without `--logging-steps`, a run of at most SHORT_RUN steps logs every step (its length is
    known only once the trainer has counted its batches)."""

    def __init__(self, logging_steps: int | None) -> None:
        self.logging_steps = logging_steps

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.logging_steps is None and state.max_steps <= SHORT_RUN:
            state.logging_steps = 1


class ProgressBar(TrainerCallback):
    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.bar = progress_bar(state.max_steps, "training", unit="step", initial=state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", epoch=f"{state.epoch or 0:.2f}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
