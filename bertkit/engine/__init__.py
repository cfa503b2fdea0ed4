"""The shared engine: batching and the Accelerate training and inference loops."""

from bertkit.engine.loop import Engine, FitResult, TrainState
from bertkit.engine.setup import EngineOptions

__all__ = ["Engine", "EngineOptions", "FitResult", "TrainState"]
