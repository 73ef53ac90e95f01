"""Pretext tasks, one file each, registered by name (the CLI's `--task` values)."""
from curate.pretext.base import TASKS, MultiTask, PretextTask, TaskSpec, TwoViewTask, parse_task
from curate.registry import import_submodules

import_submodules(__name__)

__all__ = ["TASKS", "MultiTask", "PretextTask", "TaskSpec", "TwoViewTask", "parse_task"]
