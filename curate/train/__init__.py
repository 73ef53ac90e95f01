"""SSL training: a method-agnostic loop over pretext tasks, schedules, checkpoints."""
from curate.train.config import TrainConfig
from curate.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
