"""Engines, one file each, registered by name (the CLI's `--engine` values): where the per-file work of
`curate scan`, the decoded-image cache and `curate embed` runs. The contract is in `base.py`."""
from curate.engines.base import (DEFAULT_ENGINE, ENGINES, EmbedJob, Engine, add_engine_options, create_engine,
                                 describe_run, engine_from_args, engine_names, engine_option_fields, register)
from curate.registry import import_submodules

import_submodules(__name__)

__all__ = ["DEFAULT_ENGINE", "ENGINES", "EmbedJob", "Engine", "add_engine_options", "create_engine", "describe_run",
           "engine_from_args", "engine_names", "engine_option_fields", "register"]
