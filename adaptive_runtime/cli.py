"""The `adaptive-runtime` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = argparse.ArgumentParser(prog="adaptive-runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the monitoring scenario on an embedded SQLite file")
    parser.parse_args(argv)
    print("The demo arrives with the Runtime; the journal is ready to use.", file=sys.stderr)
    return 0
