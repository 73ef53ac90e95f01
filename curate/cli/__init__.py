"""The `curate` command line: `parser` declares the commands, `commands` runs them."""
from curate.cli.commands import configure_logging, main
from curate.cli.parser import build_parser

__all__ = ["build_parser", "configure_logging", "main"]
