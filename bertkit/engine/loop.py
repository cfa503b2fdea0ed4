"""The one training engine, on Accelerate, for pretraining and fine-tuning alike.

It knows nothing of tasks: it gets a model whose forward returns ``.loss`` when the batch holds labels (or a
``loss(outputs, batch)`` that computes it from the outputs), a list of features, an ``evaluate(model) -> metrics``
callback and the name of the metric to maximise. It runs AdamW with linear warm-up and decay, gradient
accumulation and clipping, evaluation every N steps or per epoch, keeps the best model through ``on_best``, stops
early on patience, and writes resumable checkpoints atomically. A reporter (``bertkit.report``) is told about
every step and evaluation; the engine itself prints nothing. It is configured by `EngineOptions`
(``engine/setup.py``), never by a command's settings, and its inference (``run_model``) is the shared loop of
``engine/inference.py``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import torch

from bertkit.engine import processes
from bertkit.engine.batching import ListDataset, TokenWeights, collate, make_batch_sampler
from bertkit.engine.checkpoints import load_newest_checkpoint, save_checkpoint
from bertkit.engine.inference import TARGETS, model_outputs
from bertkit.engine.packing import NOT_INPUTS, batch_counts, packed_collator
from bertkit.engine.setup import EngineOptions, linear_schedule, make_accelerator, make_optimizer, timed_schedule
from bertkit.engine.signals import EXIT_CODES, StopRequests
from bertkit.engine.state import FitResult, TrainState, _Run, _Window
from bertkit.errors import BertkitError, RunInterrupted
from bertkit.modeling.dropout import use_fast_dropout
from bertkit.modeling.top_layer import labelled_top

T = TypeVar("T")


class Engine:
    """Train and run models with Accelerate; see the module docstring."""

    def __init__(self, options: EngineOptions, **accelerator_options):
        self.options = options
        self.reporter = None
        # accelerator_options: e.g. log_with/project_dir for --report-to (bertkit/tracking.py)
        self.micro_batches = options.micro_batches
        self.accelerator = make_accelerator(
            options.precision,
            options.grad_accum * self.micro_batches,
            options.distributed_timeout,
            **accelerator_options,
        )
        self._clock = time.perf_counter()
        self._window = _Window()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # ------------------------------------------------------------------ several processes (engine/processes.py)
    def prepare_once(self, build: Callable[[], T]) -> T:
        """`build()` once per machine; see `bertkit.engine.processes.prepare_once`."""
        return processes.prepare_once(self.accelerator, build)

    def on_main(self, work: Callable[[], T]) -> T | None:
        """`work()` on the main process only; see `bertkit.engine.processes.on_main`."""
        return processes.on_main(self.accelerator, work)

    def share_error(self, error: str | None) -> None:
        processes.share_error(self.accelerator, error)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        model: torch.nn.Module,
        features: Sequence[dict],
        *,
        run_dir: Path,
        pad_token_id: int = 0,
        evaluate: Callable[[torch.nn.Module], dict] | None = None,
        main_metric: str = "accuracy",
        greater_is_better: bool = True,
        on_best: Callable[[torch.nn.Module, dict], None] | None = None,
        collate_fn: Callable | None = None,
        reporter=None,
        lengths: Sequence[int] | None = None,
        on_epoch: Callable[[int], None] | None = None,
        resume_hint: str = "",
        loss_over_tokens: bool = False,
        loss: Callable[[Mapping, dict], torch.Tensor] | None = None,
    ) -> FitResult:
        """Train `model` on `features`; the returned metrics are those of the best evaluation (the saved model).

        `lengths` (each feature's length) spares reading every feature to group them, e.g. from a disk cache.
        `on_epoch(epoch)` is called as each epoch starts (e.g. to draw new masks).
        `loss_over_tokens`: the model's loss is a mean over labelled tokens; weight batches by them (TokenWeights).
        `loss(outputs, batch)`: the training loss from the model's outputs (e.g. weighted per example); the model
        then sees no targets. None: the model's own `.loss`.
        With `settings.time_budget_seconds`, the learning-rate schedule runs over the training time instead of
        a step count and training stops cleanly when the budget is spent.
        SIGINT/SIGTERM save a checkpoint at the next step and raise RunInterrupted (exit 130/143), whose message
        ends with `resume_hint` (what continues the run; the caller knows the command line, the engine does not).
        """
        s, accelerator = self.options, self.accelerator
        self.reporter, self.resume_hint, self.on_epoch = reporter, resume_hint, on_epoch
        if accelerator.device.type == "cpu":  # torch's CPU dropout masks are ~17% of a step; see modeling/dropout.py
            use_fast_dropout(model)
        labelled_top(model)  # a tagger's last layer computes only where the loss reads
        self.loss = loss
        if lengths is None:
            lengths = [len(f["input_ids"]) for f in features]
        # One global batch per step, split across processes (see make_accelerator).
        # --micro-batches N: the sampler draws micro-batches of batch_size / N and N of them make one batch.
        micro_batch = s.batch_size // self.micro_batches
        sampler = make_batch_sampler(
            self.options.batch_sampler,
            lengths,
            micro_batch * accelerator.num_processes,
            s.seed,
            s.length_grouping,
            batches_per_step=s.grad_accum * self.micro_batches,
        )
        if s.batch_sampler == "packed":
            collate_fn = packed_collator(model, pad_token_id, collate_fn)
        # Its own generator: each new iterator draws a seed from it, and drawing from the global RNG
        # would shift dropout after a mid-epoch resume (a fresh iterator that the uninterrupted run never made).
        loader = torch.utils.data.DataLoader(
            ListDataset(features),
            batch_sampler=sampler,
            generator=torch.Generator().manual_seed(s.seed),
            collate_fn=collate_fn or (lambda batch: collate(batch, pad_token_id)),
        )
        optimizer = make_optimizer(model, s.learning_rate, s.weight_decay, s.layer_lr_decay)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

        batches_per_epoch = len(sampler)  # before any set_position: the whole epoch
        steps_per_epoch = max(1, math.ceil(batches_per_epoch / (s.grad_accum * self.micro_batches)))
        state = TrainState()
        self.budget = s.time_budget_seconds
        if self.budget:  # the schedule runs over the time budget; --max-steps (if given) still caps the run
            total_steps = s.max_steps if s.max_steps >= 0 else sys.maxsize
            scheduler = timed_schedule(optimizer, s.warmup_ratio, lambda: self._elapsed(state) / self.budget)
        else:
            total_steps = s.max_steps if s.max_steps >= 0 else max(1, math.ceil(s.epochs * steps_per_epoch))
            scheduler = linear_schedule(optimizer, int(s.warmup_ratio * total_steps), total_steps)
        # Not prepared by Accelerate (it would step once per process), but saved with every checkpoint.
        accelerator.register_for_checkpointing(scheduler)

        if s.resume:
            state.__dict__.update(asdict(self.resume(run_dir)))  # in place: the timed schedule reads `state`
        state.check_layout(
            run_dir,
            self.accelerator.num_processes,
            self.options.batch_size,
            self.micro_batches,
            self.options.batch_sampler,
        )
        if self.reporter:
            self.reporter.start(
                total_steps=None if total_steps == sys.maxsize else total_steps,
                done=state.step,
                steps_per_epoch=steps_per_epoch,
            )

        run = _Run(
            model,
            loader,
            sampler,
            optimizer,
            scheduler,
            total_steps,
            batches_per_epoch,
            run_dir,
            lambda: self._evaluate(model, evaluate, state, main_metric, greater_is_better, on_best),
            TokenWeights(features, micro_batch) if loss_over_tokens else None,
        )
        with StopRequests() as stops:
            stopped_early = self._train(run, state, stops)
        self._bank_time(state)
        if evaluate and not (state.history and state.history[-1]["step"] == state.step):
            self._evaluate(model, evaluate, state, main_metric, greater_is_better, on_best)
        best = [entry["metrics"] for entry in state.history if entry["step"] == state.best_step]
        final = best[-1] if best else None
        if on_best and not evaluate and self.is_main:
            on_best(accelerator.unwrap_model(model), {})
        accelerator.wait_for_everyone()
        if self.reporter:
            self.reporter.finish()
        self.model = model
        epochs = state.epoch + state.batch_in_epoch / max(1, batches_per_epoch)
        return FitResult(state=state, final_metrics=final or {}, stopped_early=stopped_early, epochs=epochs)

    def _elapsed(self, state: TrainState) -> float:
        """Training seconds so far, evaluations and checkpoints excluded."""
        return state.train_seconds + time.perf_counter() - self._clock

    def _out_of_time(self, state: TrainState) -> bool:
        return bool(self.budget) and self._elapsed(state) >= self.budget

    def _train(self, run: _Run, state: TrainState, stops: StopRequests) -> bool:
        """The epochs and steps; returns whether early stopping ended them."""
        s, accelerator, model, optimizer = self.options, self.accelerator, run.model, run.optimizer
        step_loss = torch.zeros((), device=accelerator.device)
        self._window, self._clock = _Window(), time.perf_counter()
        model.train()
        while state.step < run.total_steps and not self._out_of_time(state):
            # The batch order is a pure function of (seed, epoch): resuming starts at the right batch.
            run.sampler.set_position(state.epoch, state.batch_in_epoch)
            if self.on_epoch is not None:
                self.on_epoch(state.epoch)
            for batch in run.loader:
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        if self.loss is None:
                            loss = model(**{k: v for k, v in batch.items() if k not in NOT_INPUTS}).loss
                        else:
                            loss = self.loss(model(**{k: v for k, v in batch.items() if k not in TARGETS}), batch)
                    step_loss += loss.detach() / (s.grad_accum * self.micro_batches)  # logged unweighted
                    accelerator.backward(loss * run.weigh(batch) if run.weigh else loss)
                    if accelerator.sync_gradients:  # the accumulation is complete: one optimizer step
                        value, stop = self._agree(step_loss, bool(stops.requested))
                        if math.isfinite(value):
                            if s.max_grad_norm > 0:
                                accelerator.clip_grad_norm_(model.parameters(), s.max_grad_norm)
                            optimizer.step()
                        else:  # drop this step's gradients instead of poisoning the weights
                            self._nonfinite(state, value)
                        optimizer.zero_grad()
                examples, tokens = batch_counts(batch)
                examples *= accelerator.num_processes
                state.batch_in_epoch += 1
                state.examples_seen += examples
                self._window.examples += examples
                if tokens is not None:
                    tokens *= accelerator.num_processes
                    state.tokens_seen += tokens
                    self._window.tokens += tokens
                if not accelerator.sync_gradients:
                    continue
                if math.isfinite(value):
                    run.scheduler.step()
                    self._window.loss, self._window.steps = self._window.loss + value, self._window.steps + 1
                step_loss.zero_()
                state.step += 1
                self._log(state, run)
                stopped_early = False
                if s.eval_every and state.step % s.eval_every == 0 and run.evaluate():
                    stopped_early = self._patience_spent(state)
                saved = bool(s.save_every) and state.step % s.save_every == 0
                if saved:
                    self._save(run.run_dir, state)
                if stop:  # agreed by all processes, so all stop at this same step
                    self._interrupted(run.run_dir, state, stops.requested, saved)
                if state.step >= run.total_steps or stopped_early or self._out_of_time(state):
                    return stopped_early
            # The epoch ran to its end.
            state.epoch += 1
            state.batch_in_epoch = 0
            stopped_early = not s.eval_every and run.evaluate() and self._patience_spent(state)
            self._save(run.run_dir, state)
            if stopped_early:
                return True
        return False

    def _agree(self, step_loss: torch.Tensor, stop: bool) -> tuple[float, bool]:
        """The step's loss averaged over the processes, and whether any of them was asked to stop.

        One small collective per step keeps the processes in step: all skip a non-finite step
        together and all stop at the same step boundary.
        """
        if self.accelerator.num_processes == 1:
            return float(step_loss), stop
        both = torch.stack([step_loss.float(), torch.tensor(float(stop), device=step_loss.device)])
        both = self.accelerator.reduce(both, reduction="sum")
        return float(both[0]) / self.accelerator.num_processes, bool(both[1] > 0)

    def _log(self, state: TrainState, run: _Run) -> None:
        if state.step % self.options.log_every and state.step != run.total_steps:
            if self.reporter:
                self.reporter.advance(state.step)
            return
        self._bank_time(state)
        window = self._window
        if self.reporter:
            self.reporter.log_step(
                step=state.step,
                epoch=state.epoch + state.batch_in_epoch / max(1, run.batches_per_epoch),
                loss=window.loss / max(1, window.steps),
                lr=run.scheduler.get_last_lr()[0],
                examples_per_second=window.examples / max(window.seconds, 1e-9),
                tokens_per_second=window.tokens / max(window.seconds, 1e-9),
            )
        self._window = _Window()

    def _bank_time(self, state: TrainState) -> None:
        """Add the training time since the last call to the run and to the log window."""
        now = time.perf_counter()
        state.train_seconds += now - self._clock
        self._window.seconds += now - self._clock
        self._clock = now

    def _patience_spent(self, state: TrainState) -> bool:
        return bool(self.options.patience) and state.evals_without_improvement >= self.options.patience

    def _nonfinite(self, state: TrainState, value: float) -> None:
        state.nonfinite_skipped += 1
        if state.nonfinite_skipped > self.options.skip_nonfinite:
            raise BertkitError(
                f"step {state.step + 1}: the loss is {value}; lower --learning-rate, check the data, "
                "or pass --skip-nonfinite N to skip a few such steps"
            )
        if self.reporter:
            self.reporter.note(
                f"step {state.step + 1}: the loss is {value}; step skipped "
                f"({state.nonfinite_skipped} of --skip-nonfinite {self.options.skip_nonfinite})"
            )

    def _evaluate(self, model, evaluate, state: TrainState, main_metric: str, greater_is_better: bool, on_best) -> bool:
        """Evaluate and remember the best model; False when there is nothing to evaluate with."""
        if evaluate is None:
            return False
        self._bank_time(state)
        started = time.perf_counter()
        model.eval()
        metrics = evaluate(self.accelerator.unwrap_model(model))
        model.train()
        if main_metric not in metrics:
            raise RuntimeError(f"evaluation returned no '{main_metric}' (got {sorted(metrics)})")
        value = float(metrics[main_metric])
        state.history.append({"step": state.step, "epoch": state.epoch, "metrics": metrics})
        improved = state.best_metric is None or (
            value > state.best_metric if greater_is_better else value < state.best_metric
        )
        if improved:
            state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
            if on_best and self.is_main:
                on_best(self.accelerator.unwrap_model(model), metrics)
        else:
            state.evals_without_improvement += 1
        seconds = time.perf_counter() - started
        state.eval_seconds += seconds
        if self.reporter:
            self.reporter.log_eval(step=state.step, metrics=metrics, improved=improved, seconds=seconds)
        self._clock = time.perf_counter()  # evaluation time is not training time
        return True

    # ------------------------------------------------------------------ checkpoints
    def _save(self, run_dir: Path, state: TrainState) -> Path:
        """A checkpoint of this step; its writing time is kept out of the training time."""
        self._bank_time(state)
        path = save_checkpoint(self.accelerator, run_dir, state.step, asdict(state), self.options.keep_checkpoints)
        self._clock = time.perf_counter()
        return path

    def _interrupted(self, run_dir: Path, state: TrainState, number: int, saved: bool) -> None:
        """Save (unless this step just was) and stop with the command that continues the run."""
        import signal

        path = run_dir / "checkpoints" / f"step-{state.step:08d}"
        if not saved:
            path = self._save(run_dir, state)
        name = signal.Signals(number).name if number else "a signal on another process"
        if self.reporter:
            self.reporter.finish()
        raise RunInterrupted(
            f"stopped by {name} at step {state.step}; checkpoint written to {path}; continue with: {self.resume_hint}",
            EXIT_CODES.get(number, 143),
        )

    def resume(self, run_dir: Path) -> TrainState:
        """Restore the newest complete checkpoint (model, optimizer, scheduler, RNG, data position)."""
        found = load_newest_checkpoint(self.accelerator, run_dir)
        if found is None:
            if self.reporter:
                self.reporter.note(f"{run_dir}: no complete checkpoint yet; starting from the beginning")
                self.reporter.rewind(0)
            return TrainState()
        path, saved = found
        state = TrainState(**saved)
        if self.reporter:
            self.reporter.note(
                f"Resuming from {path}: step {state.step}, epoch {state.epoch} "
                f"(batch {state.batch_in_epoch} of it), {state.examples_seen} examples seen"
            )
            self.reporter.rewind(state.step)
        return state

    # ------------------------------------------------------------------ inference
    def run_model(
        self,
        model: torch.nn.Module,
        features: Sequence[dict],
        batch_size: int,
        pad_token_id: int,
        outputs: Mapping[str, bool],
    ) -> Iterator[tuple[int, dict]]:
        """Yield (feature number, {output name: numpy array}) for every feature exactly once; see `model_outputs`."""
        return model_outputs(self.accelerator, model, features, batch_size, pad_token_id, outputs)
