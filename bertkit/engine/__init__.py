"""The shared engine: batching and the Accelerate training and inference loops."""

from bertkit.engine.loop import Engine, FitResult, TrainState

__all__ = ["Engine", "FitResult", "TrainState"]
