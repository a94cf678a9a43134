"""The `adaptive-runtime` command: a thin layer over the library's calls.

Exit codes: 0 success; 1 a check found problems (verify, replay --verify); 2 bad
usage or arguments; 3 the journal can't be used (missing, not a journal, newer
schema, busy, damaged); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import AdaptiveRuntimeError, InvalidEventError, InvalidRulesError, JournalError

__all__ = ["EXIT_CHECK_FAILED", "EXIT_JOURNAL", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_JOURNAL = 0, 1, 2, 3
DEFAULT_DB = "adaptive_runtime.db"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adaptive-runtime",
        description="Decide about operational events, journal every decision, audit and replay them.",
        epilog="Exit codes: 0 ok, 1 a check found problems, 2 bad usage, 3 journal unusable.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the monitoring scenario on an embedded SQLite file",
        description="Process the README's monitoring scenario, journaled to a SQLite file, then print the history. Run it twice: the second run remembers the first.",
        epilog="example: adaptive-runtime demo --db /tmp/demo.db",
    )
    demo.add_argument(
        "--db", type=Path, default=Path(DEFAULT_DB), help=f"journal file (default: {DEFAULT_DB})"
    )
    demo.add_argument("--quiet", action="store_true", help="don't show the engines' log lines")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except (InvalidEventError, InvalidRulesError, ValueError) as exc:
        print(f"adaptive-runtime: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (JournalError, AdaptiveRuntimeError) as exc:
        print(f"adaptive-runtime: error: {exc}", file=sys.stderr)
        return EXIT_JOURNAL
    return code


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(args.db, show_logs=not args.quiet))
