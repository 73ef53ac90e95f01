"""The `curate` command line: `parser` declares the commands, `commands` runs them, `main` ties them."""
from __future__ import annotations

import signal
import sys

from curate.cli.commands import clear_killed_writes, configure_logging, set_decode_limits
from curate.cli.parser import build_parser

__all__ = ["build_parser", "configure_logging", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts `cmd &` with SIGINT ignored, and children inherit that (an app started so would
        # start runs that its Cancel, a SIGINT, cannot stop): here SIGINT always saves the work and stops.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    configure_logging(args.verbose)
    try:
        if getattr(args, "threads", None) is not None:
            from curate.train.device import set_threads  # torch: loaded only when asked

            set_threads(args.threads)
        set_decode_limits(args)
        clear_killed_writes(getattr(args, "workspace", None))
        result = args.func(args)
        return result if isinstance(result, int) else 0
    except KeyboardInterrupt:
        print("interrupted: work done so far is saved; rerun the command (with --resume for train) to continue",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, FileExistsError, RuntimeError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
