"""What a training run carries between steps: its resumable state, the result of fit(), and the
per-run objects the loop passes around."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bertkit.engine.batching import LengthGroupedBatches
from bertkit.errors import BertkitError


@dataclass
class TrainState:
    """Where a run stands; saved with every checkpoint so `--resume` continues exactly there."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # global batches of the current epoch already trained on
    examples_seen: int = 0
    tokens_seen: int = 0  # non-padding tokens trained on
    best_metric: float | None = None
    best_step: int = 0
    evals_without_improvement: int = 0
    nonfinite_skipped: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # evaluation results by step
    processes: int = 1  # the batch order and RNG states depend on these three: a resume must match them
    global_batch: int = 0
    micro_batches: int = 0  # 0: a checkpoint from before --micro-batches (1 was the only choice)
    batch_sampler: str = ""  # "": a checkpoint from before --batch-sampler (length-grouped or, at 1, random)

    def check_layout(
        self, run_dir: Path, processes: int, batch_size: int, micro_batches: int, batch_sampler: str
    ) -> None:
        """A checkpoint continues only with the processes, global batch, micro-batches and sampler it was made
        with (the saved data position counts the sampler's micro-batches); a new run records them."""
        global_batch = batch_size * processes
        if self.global_batch and (self.processes, self.global_batch) != (processes, global_batch):
            raise BertkitError(
                f"{run_dir}: its checkpoint was made with {self.processes} process(es) and "
                f"--batch-size {self.global_batch // self.processes}; resume with the same "
                "--num-processes and --batch-size"
            )
        if self.global_batch and (self.micro_batches or 1) != micro_batches:
            raise BertkitError(
                f"{run_dir}: its checkpoint was made with --micro-batches {self.micro_batches or 1}; "
                "resume with the same --micro-batches"
            )
        if self.batch_sampler and self.batch_sampler != batch_sampler:
            raise BertkitError(
                f"{run_dir}: its checkpoint was made with --batch-sampler {self.batch_sampler}; "
                "resume with the same --batch-sampler"
            )
        self.processes, self.global_batch, self.micro_batches = processes, global_batch, micro_batches
        self.batch_sampler = batch_sampler


@dataclass
class FitResult:
    state: TrainState
    final_metrics: dict
    stopped_early: bool
    epochs: float = 0.0  # epochs trained, counted in the batches the sampler draws (all processes together)


@dataclass
class _Run:
    """What one fit() trains with, prepared by Accelerate."""

    model: torch.nn.Module
    loader: Any
    sampler: LengthGroupedBatches  # or a subclass (make_batch_sampler)
    optimizer: Any
    scheduler: Any
    total_steps: int
    batches_per_epoch: int
    run_dir: Path
    evaluate: Callable[[], bool]  # evaluate now; False when there is no evaluation data
    weigh: Callable[[dict], Any] | None = None  # the batch's loss weight (TokenWeights), or None


@dataclass
class _Window:
    """What the next log line averages over."""

    loss: float = 0.0
    steps: int = 0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
