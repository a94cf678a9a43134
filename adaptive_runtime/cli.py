"""The `adaptive-runtime` command: a thin layer over the library's audit and replay calls.

Exit codes: 0 success; 1 a check found problems (verify, replay --verify); 2 bad usage
or arguments; 3 the journal can't be used (missing, not a journal, newer schema, busy,
damaged); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import msgspec

from ._checks import MAX_EVENT_BYTES
from ._text import MAX_TS_NS, TerminalSafe, format_ts, is_age, parse_time, seq_or_time, shown, table
from .errors import (
    ConfigurationError,
    DuplicateEventError,
    InvalidImportError,
    JournalCorruptError,
    JournalError,
)
from .outcomes import EXIT_CHECK_FAILED, EXIT_JOURNAL, EXIT_OK, EXIT_USAGE, outcome_of

if TYPE_CHECKING:
    from .journal import Entry, Head, Journal
    from .projections.controls import Answer, DeadLetter, UnfinishedAction
    from .records import ApprovalGiven, LearningPolicy, Rule
    from .rulefiles import PolicyFile
    from .simulation.scenario import Scenario

__all__ = ["EXIT_CHECK_FAILED", "EXIT_JOURNAL", "EXIT_OK", "EXIT_USAGE", "main"]

DEFAULT_DB = "adaptive_runtime.db"
PROGRESS_EVERY = 100_000


class UsageError(ValueError):
    """A well-formed command that asks for something impossible (exit code 2)."""


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="URL",
        help=f"the journal: a path, sqlite:///path, postgresql://... or memory: (default: {DEFAULT_DB})",
    )

    def with_agent(help: str) -> argparse.ArgumentParser:
        parent = argparse.ArgumentParser(add_help=False, parents=[db])
        parent.add_argument("--agent", metavar="ID", help=help)
        return parent

    common = with_agent("only this agent's stream (default: all agents)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")

    parser = argparse.ArgumentParser(
        prog="adaptive-runtime",
        description="Decide about operational events, journal every decision, audit and replay them.",
        epilog="Exit codes: 0 ok, 1 a check found problems, 2 bad usage, 3 journal unusable, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"adaptive-runtime {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help: str,
        example: str,
        parents: Sequence[argparse.ArgumentParser],
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example: {example}",
            parents=list(parents),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    demo = command(
        "demo",
        _demo,
        "run the monitoring scenario on an embedded SQLite file and print the history",
        "adaptive-runtime demo --db /tmp/demo.db",
        [db],
    )
    demo.add_argument(
        "--agent", metavar="ID", default="prod-monitor", help="the agent (default: prod-monitor)"
    )
    demo.add_argument(
        "--quiet", action="store_true", help="don't show the engines' log lines (on stderr)"
    )
    demo.add_argument(
        "--plugins",
        metavar="NAMES",
        help="enable these installed plugins, comma-separated (see `plugins`)",
    )

    srv = command(
        "serve",
        _serve,
        "serve the HTTP API, the Alertmanager and CloudEvents receivers, /metrics and the dashboard"
        " (the `http` extra)",
        "adaptive-runtime serve --db fleet.db --tokens tokens.txt --bind 127.0.0.1:8080",
        [db],
    )
    srv.add_argument(
        "--bind",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="where to listen (default: 127.0.0.1:8080, loopback only)",
    )
    srv.add_argument(
        "--tokens",
        type=Path,
        metavar="FILE",
        help="bearer tokens, one 'SCOPES TOKEN' line each (scopes: read, write, approve); default:"
        " the ADAPTIVE_RUNTIME_TOKENS environment variable",
    )
    srv.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="accept every request without a token (for a test on loopback only)",
    )
    srv.add_argument(
        "--plugins",
        metavar="NAMES",
        help="enable these installed plugins, comma-separated (see `plugins`)",
    )
    srv.add_argument("--rules", type=Path, metavar="FILE", help="a policy file (TOML or JSON)")
    srv.add_argument(
        "--durability",
        choices=["full", "normal"],
        default="full",
        help="full: fsync every commit (default); normal: SQLite's WAL at synchronous=NORMAL",
    )
    srv.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="an Apprise URL to notify people through (repeatable; the notify extra); default:"
        " the lines of ADAPTIVE_RUNTIME_NOTIFY",
    )
    srv.add_argument(
        "--notify-priority",
        choices=["low", "normal", "high", "critical"],
        default="high",
        help="notify decisions at this priority or above (default: high); approval requests,"
        " dead letters and incidents always",
    )
    srv.add_argument(
        "--dry-run",
        action="store_true",
        help=(
            "decide and journal everything, run no action handler (each new action journaled"
            " as skipped; one owed from before stays owed, for a host that runs handlers)"
        ),
    )
    srv.add_argument(
        "--on-stop",
        choices=["interrupt", "wait"],
        default="interrupt",
        help="at SIGTERM: interrupt running actions (journaled; the next start resumes them) or"
        " wait for them to finish (default: interrupt)",
    )
    srv.add_argument(
        "--max-body",
        type=_body_size,
        default=1_048_576,
        metavar="BYTES",
        help="the largest request body accepted (default: 1 MiB)",
    )
    srv.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="info (the default) logs each request and the runtime's warnings; debug adds"
        " each decision's engine lines",
    )

    hist = command(
        "history",
        _history,
        "list decisions, newest first",
        "adaptive-runtime history --since 18h --priority high",
        [common, as_json],
    )
    hist.add_argument("--type", help="only this event type")
    hist.add_argument("--action", help="only this action")
    hist.add_argument(
        "--priority", choices=["low", "normal", "high", "critical"], help="only this priority"
    )
    hist.add_argument(
        "--since", help="not before this time (ISO 8601, Unix seconds, or an age like 18h)"
    )
    hist.add_argument("--until", help="not after this time")
    hist.add_argument("--limit", type=_count, default=20, help="at most this many (default: 20)")

    exp = command(
        "explain",
        _explain,
        "explain one decision: its event, context, confidence and the rules tried",
        "adaptive-runtime explain 12",
        [with_agent("refuse a decision of another agent (default: any agent's)"), as_json],
    )
    exp.add_argument("seq", type=_seq, help="the seq of a decision (or of its event)")

    rep = command(
        "replay",
        _replay,
        "re-decide journaled events: check determinism, or try other rules",
        "adaptive-runtime replay --verify   |   adaptive-runtime replay --rules new-rules.toml",
        [common, as_json],
    )
    mode = rep.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--verify", action="store_true", help="re-decide from empty and compare, byte for byte"
    )
    mode.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="what-if: which decisions would change under this policy file (its custom rules,"
        " [learning] and [fleet] tables; TOML or JSON)",
    )
    rep.add_argument(
        "--examples",
        type=_count,
        default=10,
        help="how many changed decisions to show (default: 10)",
    )

    ver = command(
        "verify",
        _verify,
        "check the hash chain, SQLite's integrity and every snapshot (the chain spans every agent)",
        "adaptive-runtime verify --expect-head 1234:9f2c...",
        [db, as_json],
    )
    ver.add_argument(
        "--expect-head",
        metavar="SEQ:DIGEST",
        help="a head printed earlier by `head`: also detects truncation",
    )

    command(
        "head",
        _head,
        "print the journal's head (seq:digest) to keep for detecting truncation later (the chain spans every agent)",
        "adaptive-runtime head > head.txt",
        [db],
    )

    out = command(
        "export",
        _export,
        "write the journal as JSON lines (with --agent, one agent's entries: readable, but not importable, since the chain spans every agent)",
        "adaptive-runtime export --out journal.jsonl",
        [common],
    )
    out.add_argument("--out", type=_file_to_write, help="file to write (default: standard output)")

    imp = command(
        "import",
        _import,
        "load exported JSON lines into a new journal, checking the chain",
        "adaptive-runtime import journal.jsonl --db restored.db",
        [db],
    )
    imp.add_argument("file", type=Path, help="a file written by `export` (- for standard input)")
    imp.add_argument(
        "--max-event-bytes",
        type=_count,
        default=MAX_EVENT_BYTES,
        help="the largest event to take, as the max_event_bytes of the host that journaled"
        f" them (default: {MAX_EVENT_BYTES:,}, the host's default)",
    )
    imp.add_argument(
        "--expect-head",
        metavar="SEQ:DIGEST",
        help="the head `export` (or `head`) printed: nothing is imported unless the file"
        " holds it, so an export cut short is refused",
    )

    command(
        "plugins",
        _plugins,
        "list the installed plugins and their versions, and the ones the journal was decided with",
        "adaptive-runtime plugins --db fleet.db",
        [db, as_json],
    )

    command(
        "agents",
        _agents,
        "list every agent with its entry count, last decision and open actions",
        "adaptive-runtime agents --db fleet.db",
        [db, as_json],
    )

    st = command(
        "state",
        _state,
        "show an agent's state now, or as of a seq or a time (time travel)",
        "adaptive-runtime state --agent prod-monitor --at 2026-11-26T03:00",
        [with_agent("the agent (needed when the journal holds more than one)"), as_json],
    )
    st.add_argument(
        "--at", help="a seq (a plain integer below 10^12) or a time (default: now, the last entry)"
    )

    sil = command(
        "silence",
        _silence,
        "silences and maintenance windows: inside one, matching decisions are made and"
        " journaled, and their actions skipped",
        "adaptive-runtime silence add --agent checkout --for 2h --comment 'deploy window'",
        [],
    )
    sil_sub = sil.add_subparsers(dest="silence_command", required=True, metavar="add|list|end")
    sil_add = sil_sub.add_parser("add", help="journal a silence", parents=[db])
    sil_add.add_argument("--agent", help="only this agent")
    sil_add.add_argument(
        "--target", help="only this target (the event's target, instance or service)"
    )
    sil_add.add_argument("--type", help="only this event type")
    sil_add.add_argument("--context", help="only this context, e.g. resource_pressure")
    sil_add.add_argument("--start", help="when it starts (default: now): ISO 8601 or Unix seconds")
    until = sil_add.add_mutually_exclusive_group(required=True)
    until.add_argument("--until", help="when it ends: ISO 8601 or Unix seconds")
    until.add_argument("--for", dest="duration", help="how long it lasts, e.g. 90m, 2h, 1d")
    sil_add.add_argument("--comment", required=True, help="why, for whoever reads it later")
    sil_add.add_argument(
        "--fire-after",
        action="store_true",
        help="when it ends, run the actions it skipped (once each); by default they never run",
    )
    sil_add.add_argument(
        "--by",
        default=os.environ.get("USER") or "cli",
        help="who sets it (default: $USER, else cli)",
    )
    sil_add.add_argument("--json", action="store_true", help="print JSON for scripts")
    sil_list = sil_sub.add_parser("list", help="the silences in force or to come", parents=[db])
    sil_list.add_argument("--all", action="store_true", help="the expired ones too")
    sil_list.add_argument("--json", action="store_true", help="print JSON for scripts")
    sil_end = sil_sub.add_parser("end", help="end a silence now", parents=[db])
    sil_end.add_argument("id", help="the silence's id (silence list shows it)")
    sil_end.add_argument(
        "--by",
        default=os.environ.get("USER") or "cli",
        help="who ends it (default: $USER, else cli)",
    )

    command(
        "approvals",
        _approvals,
        "list the actions waiting for a person's approval",
        "adaptive-runtime approvals --db fleet.db",
        [db, as_json],
    )
    for verb, handler, says in (
        ("approve", _approve, "approve a pending action: the host serving its agent runs it"),
        ("deny", _deny, "deny a pending action: it never runs"),
    ):
        answer = command(
            verb, handler, says, f"adaptive-runtime {verb} 12 --comment 'ok by ops'", [db]
        )
        answer.add_argument("seq", type=_seq, help="the decision's seq (approvals lists them)")
        answer.add_argument(
            "--by",
            default=os.environ.get("USER") or "cli",
            help="who answers (default: $USER, else cli)",
        )
        answer.add_argument("--comment", default="", help="why, shown by explain")
    acts = command(
        "actions",
        _actions,
        "list the actions not finished yet; with --failed, the dead letters (actions abandoned after their attempts, not retried or dismissed)",
        "adaptive-runtime actions   |   adaptive-runtime actions --failed",
        [db, as_json],
    )
    acts.add_argument("--failed", action="store_true", help="the dead letters instead")
    for verb, handler, says in (
        ("retry", _retry, "run a dead letter's action again, with its full retry policy"),
        ("dismiss", _dismiss, "take a dead letter off the list"),
    ):
        again = command(verb, handler, says, f"adaptive-runtime {verb} 12", [db])
        again.add_argument(
            "seq", type=_seq, help="the decision's seq (actions --failed lists them)"
        )
        again.add_argument(
            "--by",
            default=os.environ.get("USER") or "cli",
            help="who asks (default: $USER, else cli)",
        )

    bench = command(
        "bench",
        _bench,
        "run the benchmark suites (from a source checkout) and print figures, baselines, ratios and targets",
        "adaptive-runtime bench --large",
        [],
    )
    bench.add_argument(
        "--large",
        action="store_true",
        help="also replay 1M entries and stream 1M events for memory",
    )
    bench.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="report a pytest-benchmark JSON file instead of running",
    )
    bench.add_argument(
        "--out",
        type=Path,
        help="where to write summary.json and ratios.png (default: the checkout's"
        " bench/results, whatever the current folder: the report kept with the code)",
    )
    bench.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    bench.add_argument(
        "--runs",
        type=_runs,
        default=5,
        help="run the suites this many times: each figure is their median, with the spread",
    )
    stats = command(
        "stats",
        _stats,
        "counts by type, action, priority and hour, and how well confidence predicted outcomes",
        "adaptive-runtime stats --agent prod-monitor --plot reliability.png",
        [common, as_json],
    )
    stats.add_argument(
        "--plot",
        type=_png_to_write,
        metavar="PNG",
        help="write the recorded outcomes' reliability diagram",
    )

    tail = command(
        "tail",
        _tail,
        "print the newest entries; with --follow, every entry as it commits, until interrupted",
        "adaptive-runtime tail --follow --db postgresql://user:pw@db/ops",
        [common, as_json],
    )
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new entries")
    tail.add_argument(
        "--after",
        type=_count,
        metavar="SEQ",
        help="start after this seq, 0 for the first entry (default: the last --lines entries)",
    )
    tail.add_argument("--lines", "-n", type=_count, help="how many to show first (default: 10)")

    sim = command(
        "simulate",
        _simulate,
        "run a simulated fleet with known truth: success, regret and calibration of the runtime"
        " against rules-only and Thompson sampling",
        "adaptive-runtime simulate shift --seeds 5 --plot shift.png   |   adaptive-runtime simulate all",
        [],
    )
    sim.add_argument(
        "scenario",
        help="a scenario file (TOML), a shipped scenario (stationary, shift, severity-informative,"
        " severity-misleading), or `all` for every shipped one",
    )
    sim.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="a policy file: custom rules and/or a [learning] table for the runtime",
    )
    sim.add_argument(
        "--policy",
        metavar="NAMES",
        default="adaptive,rules,thompson",
        help="what to compare, comma-separated: adaptive (the runtime, told every outcome),"
        " rules (the runtime, told none), thompson (default: all three)",
    )
    sim.add_argument("--seeds", type=_count, default=5, help="how many seeds, 0..N-1 (default: 5)")
    sim.add_argument(
        "--plot",
        type=_png_to_write,
        metavar="PNG",
        help="write a reliability diagram and success over time (`all`: one file per scenario)",
    )
    sim.add_argument(
        "--db",
        type=_new_journal_file,
        metavar="FILE",
        help="keep the journal of the adaptive runtime's first seed here (a new file), to"
        " explain, stats or replay it",
    )
    sim.add_argument("--json", action="store_true", help="print the numbers as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    if not given:  # no command: say which there are
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if given[0] == "help":  # `help [COMMAND]`, as git and pip take it: that command's --help
        given = [*given[1:2], "--help"]
    unknown = _unknown_command(parser, given[0])
    if unknown is not None:
        print(f"adaptive-runtime: error: {unknown}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(given)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalSafe(sys.stdout), TerminalSafe(sys.stderr)
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = streams


def _unknown_command(parser: argparse.ArgumentParser, word: str) -> str | None:
    """Why `word` is no command, with the one meant if it is close to one; None if it is a
    command or an option. argparse listed all 23 commands and left the reader to find it."""
    if word.startswith("-"):
        return None
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if word in commands:
        return None
    from .engines.reachable import nearest

    starting = [c for c in commands if c.startswith(word.lower())]
    meant = starting[0] if len(starting) == 1 else nearest(word.lower(), list(commands))
    hint = f"did you mean {meant}? " if meant is not None else ""
    return f"no command {word!r}; {hint}`adaptive-runtime --help` lists the commands"


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:
        outcome = outcome_of(exc)
        if outcome is None:
            raise
        if not isinstance(exc, KeyboardInterrupt):
            print(f"adaptive-runtime: error: {exc}", file=sys.stderr)
        return outcome.exit_code
    return code


# -- helpers -------------------------------------------------------------------

MAX_SEQ = 2**63 - 1


def _seq(text: str) -> int:
    """A seq argument: a positive integer that fits a journal's seq."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 < value <= MAX_SEQ:
        raise argparse.ArgumentTypeError(f"a seq is from 1 to {MAX_SEQ}, not {text}")
    return value


def _file_to_write(text: str) -> Path:
    """A file argument the command will write: checked before any work, so that a long
    run does not end in an error about where its output goes."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no file; give a file name")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
    if path.exists() and not path.is_file():  # through a link: /dev/stdout names a pipe or a tty
        # export replaced /dev/full, as root, with a regular file (and reading a pipe's
        # first bytes, to look for a database, would wait for a writer)
        raise argparse.ArgumentTypeError(
            f"{text} is not a regular file (a device, a pipe or a socket); give a file name"
        )
    if _holds_a_database(path):  # `export --db j.db --out j.db` replaced the journal
        raise argparse.ArgumentTypeError(
            f"{text} is a SQLite database or its WAL (a journal?), which this never replaces;"
            " give another name"
        )
    return path


_DATABASE_MAGIC = (b"SQLite format 3\x00", b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
"""How a SQLite database file, and its WAL (either byte order), begin."""


def _holds_a_database(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            start = file.read(16)
    except OSError:  # not there (or not readable): nothing to lose by writing it
        return False
    return any(start.startswith(magic) for magic in _DATABASE_MAGIC)


def _new_journal_file(text: str) -> Path:
    """simulate --db: the SQLite file (a path or sqlite:///path) to keep a journal in.
    Read as a Path, a URL lost a slash (`postgresql://u@h/db` became
    `postgresql:/u@h/db`, which names another database, on the local socket), and
    `memory:` kept nothing."""
    from .journal.open import hide_passwords, is_memory, sqlite_path

    if is_memory(text):
        raise argparse.ArgumentTypeError(
            f"{text} would keep nothing once the simulation ends; give a new file"
        )
    try:
        path = sqlite_path(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if path is None:
        raise argparse.ArgumentTypeError(
            "simulate keeps its journal in a new SQLite file; give a path, not"
            f" {hide_passwords(text)}"
        )
    return Path(path)


def _png_to_write(text: str) -> Path:
    """--plot: a PNG file to write (matplotlib would take the format from any other
    suffix, some of them only to fail at the end of a long run, and add `.png` to none)."""
    path = _file_to_write(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(
            f"plots are PNG files: give a name ending in .png, not {text}"
        )
    return path


T = TypeVar("T")


def _written_plot(path: Path, write: Callable[[Path], T]) -> T:
    try:
        return write(path)
    except OSError as exc:
        raise UsageError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None


def _count(text: str) -> int:
    """A count argument: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    if value > MAX_SEQ:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEQ}, not {text}")
    return value


def _runs(text: str) -> int:
    """bench --runs: how many times to run the suites, at least once."""
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _body_size(text: str) -> int:
    """--max-body: a number of bytes, at least 1 KiB (an event's smallest request fits)."""
    value = _count(text)
    if value < 1024:
        raise argparse.ArgumentTypeError(f"must be at least 1024 bytes, not {text}")
    return value


def _open(args: argparse.Namespace, *, to_write: bool = False, entries: bool = False) -> Journal:
    """The journal --db names, which must exist; opened for reading only where the file
    can't be written (read-only storage), unless the command writes to it. `entries`: the
    command shows a stream's entries, so `--agent` may name the journal's own (`~host`)."""
    from .journal.open import describe, open_journal

    _refuse_memory(args.db)
    agent = getattr(args, "agent", None)
    if agent is not None and agent.startswith("~") and not entries:
        # ids starting with ~ are the journal's own: an agent's state, history or stats of
        # one is a view of nothing (the API answers 404 for it)
        raise UsageError(
            f"{shown(agent)} is the journal's own stream (the operators' controls), not an"
            " agent: `tail --agent ~host` and `export --agent ~host` show its entries"
        )
    journal = open_journal(args.db, create=False, read_only_ok=not to_write)
    if agent is None:
        return journal
    from .projections.audit import agents_beside

    others = agents_beside(journal, agent)
    if others is not None:
        journal.close()
        raise UsageError(
            f"agent {agent!r} has no entries in {describe(args.db)}; {_agents_known(others)}"
        )
    return journal


def _agents_known(streams: list[str]) -> str:
    """The journal's agents, for a message about one it has no entries of."""
    from .projections.audit import agents_clause

    return agents_clause(streams)


def _refuse_memory(db: str) -> None:
    """A command that uses a journal written before it can't use `memory:`: it would get
    a new, empty one, gone when the command ends."""
    from .journal.open import is_memory

    if is_memory(db):
        raise UsageError(
            f"--db {db} is a journal held in one process's memory: this command would"
            " get a new, empty one; give the path or URL of the journal to use"
        )


def _progress(what: str) -> Callable[[int], None]:
    def report(count: int) -> None:
        print(f"... {count:,} {what}", file=sys.stderr, flush=True)

    return report


def _note_tables_left_out(
    path: Path, policy: PolicyFile, applied: tuple[str, ...], why: str
) -> None:
    """Say on stderr which of a policy file's tables this command does not apply: a table
    it passed over in silence read as one that made no difference."""
    for name in ("fleet", "learning", "approvals"):
        if name not in applied and getattr(policy, name) is not None:
            print(f"note: the [{name}] table of {path} is not applied: {why}", file=sys.stderr)


def _note_rules_that_never_match(path: Path, policy: PolicyFile, journal: Journal | None) -> None:
    """Say on stderr which custom rules are for a context no event is given (a typo, most
    often), as a host warns at its start: "0 decisions would change" read as a verdict.
    `journal`: the one re-decided, whose journaled plugins may give such a context."""
    from .engines.reachable import unmatched_rules
    from .projections.fleet import journaled_plugins

    if policy.rules is None or (journal is not None and journaled_plugins(journal)):
        return
    for said in unmatched_rules(policy.rules):
        print(f"note: {path}: {said}", file=sys.stderr)


def _check_text_options(*given: tuple[str, str | None, int]) -> None:
    """Refuse an empty or unprintable text option by its own name (`--type`, where the
    library would name its `event_type`), before the journal is opened."""
    from .engines.silences import check_text_field

    for option, value, limit in given:
        if value is not None:
            check_text_field(option, value, limit)


def _note_unheeded_names(where: str, scenario: Scenario, rules: Sequence[Rule]) -> None:
    """Say on stderr which names in a scenario are likely typos: the run's figures still
    print, but an action no rule decides makes its regret look worse than it is."""
    from .simulation.scenario import unheeded_names

    for said in unheeded_names(scenario, rules):
        print(f"note: {where}: {said}", file=sys.stderr)


def _print_json(value: object) -> None:
    from .records import named

    print(json.dumps(named(value), indent=2, ensure_ascii=False))


# -- commands ------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    import asyncio  # here: only the demo runs an event loop

    from .demo import run_demo
    from .journal.open import sqlite_path

    path = sqlite_path(args.db)
    target: Path | str = Path(path) if path is not None else str(args.db)
    plugins = None if args.plugins is None else [p for p in args.plugins.split(",") if p]
    return asyncio.run(
        run_demo(target, agent=args.agent, show_logs=not args.quiet, plugins=plugins)
    )


def _serve(args: argparse.Namespace) -> int:
    try:
        from .service.app import ServiceConfig
        from .service.auth import ENV_TOKENS, Tokens
        from .service.server import serve
    except ImportError as exc:
        raise UsageError(
            f"serve needs the http extra: pip install 'adaptive-runtime[http]' ({exc.name} is missing)"
        ) from None
    plugins = None if args.plugins is None else [p for p in args.plugins.split(",") if p]
    notify = args.notify or os.environ.get("ADAPTIVE_RUNTIME_NOTIFY", "").split()
    tokens = Tokens.load(args.tokens)
    if args.tokens is not None and (exposed := Tokens.exposure(args.tokens)) is not None:
        print(f"adaptive-runtime: WARNING: {exposed}", file=sys.stderr)
    if args.tokens is not None and os.environ.get(ENV_TOKENS, "").strip():
        # a client holding a token of the variable's would be refused, with no word why
        print(
            f"adaptive-runtime: note: --tokens {args.tokens} is used; the tokens in"
            f" {ENV_TOKENS} are not",
            file=sys.stderr,
        )
    config = ServiceConfig(
        notify_urls=tuple(notify),
        notify_priority=args.notify_priority,
        tokens=tokens,
        insecure_no_auth=args.insecure_no_auth,
        max_body_bytes=args.max_body,
        on_stop=args.on_stop,
    )
    return serve(
        args.db,
        bind=args.bind,
        config=config,
        plugins=plugins,
        rules=args.rules,
        durability=args.durability,
        log_level=args.log_level,
        dry_run=args.dry_run,
    )


def _silence(args: argparse.Namespace) -> int:
    from .engines.reachable import near_event_type, unknown_context
    from .engines.silences import MAX_COMMENT, MAX_NAME, new_silence
    from .journal.open import open_journal
    from .projections.audit import agents_beside
    from .projections.fleet import HOST_STREAM, journaled_plugins
    from .projections.silences import Silences, read_silences
    from .records import SilenceEnded, SilenceMatcher, to_pending

    now = time.time_ns()
    if args.silence_command == "add":  # checked before the journal is opened (or made)
        if args.start is not None and is_age(args.start):
            # 30m ago: no earlier decision is silenced, and --for would end that much sooner
            msg = (
                f"--start {args.start} reads as an age, {args.start.strip()} ago; a silence"
                " from now needs no --start, and one that starts later needs the time it"
                " starts (ISO 8601 or Unix seconds)"
            )
            raise UsageError(msg)
        starts = parse_time(args.start) if args.start is not None else now
        ends = (
            parse_time(args.until)
            if args.until is not None
            else starts + _duration_ns(args.duration)
        )
        if ends > MAX_TS_NS:
            msg = f"--for {args.duration} would end past the year 2262, the last a time can name; give a shorter length"
            raise UsageError(msg)
        if ends <= now and args.until is not None and is_age(args.until):
            msg = (
                f"--until {args.until} reads as an age, {args.until.strip()} ago, so that"
                f" silence would already be over; for one that lasts {args.until.strip()},"
                f" give --for {args.until.strip()}"
            )
            raise UsageError(msg)
        _check_text_options(
            ("--agent", args.agent, MAX_NAME),
            ("--target", args.target, MAX_NAME),
            ("--type", args.type, MAX_NAME),
            ("--context", args.context, MAX_NAME),
            ("--comment", args.comment, MAX_COMMENT),
            ("--by", args.by, MAX_NAME),
        )
        silence = new_silence(
            SilenceMatcher(
                agent=args.agent, target=args.target, event_type=args.type, context=args.context
            ),
            starts_ns=starts,
            ends_ns=ends,
            comment=args.comment,
            by=args.by,
            fire_after=args.fire_after,
        )
        if ends <= now:
            raise UsageError("that silence would already be over; give a later --until")
    _refuse_memory(args.db)
    made = False  # a silence may be set before any host has made the journal
    try:
        journal = open_journal(args.db, create=False, read_only_ok=args.silence_command == "list")
    except JournalError:
        if args.silence_command != "add":
            raise
        journal = open_journal(args.db, create=True)  # what kept it from opening raises again
        made = journal.head().seq == 0
    try:
        silences = Silences()
        silences.fold(read_silences(journal))
        if args.silence_command == "add":
            journal.append([to_pending(HOST_STREAM, silence, now)])
            if args.json:
                _print_json(silence)
            else:
                print(f"{silence.id} set: {_silence_line(silence)}")
            if made:  # a mistyped --db would otherwise look like a silence in force
                from .journal.open import describe

                print(
                    f"note: there was no journal at {describe(args.db)}, so one was made to"
                    " hold this silence; hosts started on it will keep it. If you meant the"
                    " journal your hosts use, check --db.",
                    file=sys.stderr,
                )
            elif (
                args.agent is not None
                and (others := agents_beside(journal, args.agent)) is not None
            ):
                # a mistyped --agent would otherwise look like a window in force for the
                # agent meant, while that agent's actions go on running
                print(
                    f"note: agent {args.agent!r} has no entries in this journal"
                    f" ({_agents_known(others)}), so this silence holds nothing yet; it"
                    f" holds once {args.agent!r} decides. If you meant another agent,"
                    f" `silence end {silence.id}` and set it again.",
                    file=sys.stderr,
                )
            said = (
                None if args.context is None else unknown_context(args.context, "it holds nothing")
            )
            if said is not None and not journaled_plugins(journal):  # a plugin may give it
                print(
                    f"note: this silence is for {said}. If you meant another,"
                    f" `silence end {silence.id}` and set it again.",
                    file=sys.stderr,
                )
            said = None if args.type is None else near_event_type(args.type, "it holds nothing")
            if said is not None:  # actions of the type meant would run through the window
                print(
                    f"note: this silence is for {said}. If you meant another,"
                    f" `silence end {silence.id}` and set it again.",
                    file=sys.stderr,
                )
            return EXIT_OK
        if args.silence_command == "end":
            _check_text_options(("--by", args.by, MAX_NAME))
            if args.id in silences.ended_by:
                # what was asked holds (as a second approve of one action is its first
                # answer again); it was "no silence ...; --all shows them", which it doesn't
                print(
                    f"{args.id} was ended already, by {shown(silences.ended_by[args.id])};"
                    " nothing more was journaled"
                )
                return EXIT_OK
            if args.id not in silences.by_id:
                raise UsageError(f"no silence {args.id!r}; `silence list --all` shows them")
            journal.append([to_pending(HOST_STREAM, SilenceEnded(id=args.id, by=args.by), now)])
            print(f"{args.id} ended by {args.by}")
            if silences.by_id[args.id].fire_after:
                print(
                    "the actions it skipped run now: each host runs those of the agents it"
                    " serves within a second, or when it starts"
                )
            return EXIT_OK
        listed = silences.listed(now, ended=args.all)
        if args.json:
            _print_json(listed)
            return EXIT_OK
        if not listed:
            print("No silences in force or to come." if not args.all else "No silences.")
        for s in listed:
            state = (
                "in force"
                if s.starts_ns <= now < s.ends_ns
                else ("ended" if s.ends_ns <= now else "to come")
            )
            print(f"{s.id}  {state:8s}  {_silence_line(s)}")
        return EXIT_OK
    finally:
        journal.close()


def _approvals(args: argparse.Namespace) -> int:
    from .projections.controls import dead_letters, unanswered_approvals

    journal = _open(args)
    try:
        requests, answered = unanswered_approvals(journal)
        held = [] if args.json else [d for d in dead_letters(journal) if d.attempts == 0]
    finally:
        journal.close()
    now = time.time_ns()
    pending = [p for p in requests if p.open_at(now)]
    if args.json:
        _print_json(pending)
        return EXIT_OK
    timed_out = len(requests) - len(pending)
    if not pending:
        print("No action is waiting for approval.")
        _say_answered(answered)
        _say_timed_out(timed_out)
        _say_held(held)
        return EXIT_OK
    rows = [
        (
            p.decision_seq,
            p.agent,
            p.action,
            format_ts(p.requested_ns),
            format_ts(p.expires_ns),
            p.reason,
        )
        for p in pending
    ]
    print(table(("seq", "agent", "action", "asked", "denied after", "why"), rows))
    _say_answered(answered, before="\n")
    _say_timed_out(timed_out, before="\n")
    _say_held(held, before="\n")
    return EXIT_OK


def _say_answered(answered: dict[int, ApprovalGiven], before: str = "") -> None:
    """The requests answered while no host serving their agent ran: not waiting any more."""
    for seq, given in sorted(answered.items()):
        verdict = "approved" if given.approve else "denied"
        print(
            f"{before}seq {seq} was {verdict} by {given.by}; the host serving {given.agent}"
            " carries it out when it runs."
        )
        before = ""


def _say_held(held: list[DeadLetter], before: str = "") -> None:
    """The actions the controls left to a person as dead letters: a yes is a retry."""
    for d in held:
        print(
            f"{before}seq {d.decision_seq}: {d.action} for {d.agent} waits as a dead letter"
            f" ({d.reason}); `retry {d.decision_seq}` runs it, `dismiss {d.decision_seq}`"
            " drops it."
        )
        before = ""


def _say_timed_out(count: int, before: str = "") -> None:
    if count:
        print(
            f"{before}{_plural(count, 'request')} timed out unanswered: denied by default"
            " (a host journals that when it runs)."
        )


def _approve(args: argparse.Namespace) -> int:
    return _answer(args, approve=True)


def _deny(args: argparse.Namespace) -> int:
    return _answer(args, approve=False)


def _answer(args: argparse.Namespace, *, approve: bool) -> int:
    from .engines.events import approval_key
    from .engines.silences import MAX_COMMENT, MAX_NAME
    from .projections.controls import (
        answer_under,
        decided_unanswered,
        left_to_a_person,
        pending_approvals,
        refuse_unless_repeat,
    )
    from .records import ApprovalGiven

    _check_text_options(
        ("--by", args.by, MAX_NAME), ("--comment", args.comment or None, MAX_COMMENT)
    )
    journal = _open(args, to_write=True)
    try:
        found = [p for p in pending_approvals(journal).values() if p.decision_seq == args.seq]
        if not found:
            given = answer_under(journal, approval_key(args.seq))
            if given is not None:  # answered, and carried out since
                mine = ApprovalGiven(
                    agent=given.agent,
                    decision_seq=args.seq,
                    approve=approve,
                    by=args.by,
                    comment=args.comment,
                )
                refuse_unless_repeat(given, mine)
                print(
                    f"seq {args.seq} was {'approved' if approve else 'denied'} by {args.by} already"
                )
                return EXIT_OK
            ended = decided_unanswered(journal, args.seq)
            if ended is not None:
                raise ended
            hint = left_to_a_person(journal, args.seq) or "; `approvals` lists them"
            raise UsageError(f"no action is waiting for approval at seq {args.seq}{hint}")
        p = found[0]
        now = time.time_ns()
        if not p.open_at(now):
            raise UsageError(
                f"the approval request for the decision at seq {args.seq} timed out at"
                f" {format_ts(p.expires_ns)}: it is denied by default (a host journals that"
                " when it runs)"
            )
        record = ApprovalGiven(
            agent=p.agent,
            decision_seq=p.decision_seq,
            approve=approve,
            by=args.by,
            comment=args.comment,
        )
        _answer_once(journal, record, approval_key(p.decision_seq), now)
    finally:
        journal.close()
    verdict = "approved" if approve else "denied"
    print(
        f"{p.action} for the decision at seq {p.decision_seq} (agent {p.agent}) {verdict} by"
        f" {args.by}; the host serving {p.agent} carries it out within a second, or when it starts"
    )
    return EXIT_OK


def _actions(args: argparse.Namespace) -> int:
    from .projections.controls import dead_letters, unanswered_approvals, unfinished_actions

    journal = _open(args)
    try:
        letters = dead_letters(journal)
        unfinished = None if args.failed else unfinished_actions(journal)
        requests, _ = unanswered_approvals(journal) if unfinished is not None else ([], {})
    finally:
        journal.close()
    if unfinished is not None:
        now = time.time_ns()
        waiting = sum(1 for p in requests if p.open_at(now))
        return _unfinished(unfinished, len(letters), waiting, args.json)
    if args.json:
        _print_json(letters)
        return EXIT_OK
    if not letters:
        print("No dead letters: every abandoned action was retried or dismissed.")
        return EXIT_OK
    rows = [
        (d.decision_seq, d.agent, d.action, d.attempts, d.reason, format_ts(d.abandoned_ns))
        for d in letters
    ]
    print(table(("seq", "agent", "action", "attempts", "why", "abandoned"), rows))
    print("\n`retry SEQ` runs one again; `dismiss SEQ` takes it off the list.")
    return EXIT_OK


def _unfinished(actions: list[UnfinishedAction], dead: int, waiting: int, as_json: bool) -> int:
    if as_json:
        _print_json(actions)
        return EXIT_OK
    if actions:
        rows = [
            (a.decision_seq, a.agent, a.action, a.state, a.attempt, format_ts(a.due_ns))
            for a in actions
        ]
        print(table(("seq", "agent", "action", "state", "attempt", "due"), rows))
        print(
            f"\n{_plural(len(actions), 'action')} not finished; a host takes them up when it starts."
        )
    else:
        print("No action is waiting to run, retry or be verified.")
    if waiting:
        many = "waits" if waiting == 1 else "wait"
        print(f"{_plural(waiting, 'action')} {many} for approval besides: `approvals` lists them.")
    if dead:
        print(f"{_plural(dead, 'dead letter')} besides: `actions --failed` lists them.")
    return EXIT_OK


def _retry(args: argparse.Namespace) -> int:
    return _dead_letter_request(args, retry=True)


def _answer_once(journal: Journal, record: Answer, key: str, ts_ns: int) -> None:
    """Journal an operator's answer under its key: the first one taken stands, and a
    different one raises AlreadyAnsweredError naming it (see projections.controls)."""
    from .projections.controls import already_answered, answer_under
    from .projections.fleet import HOST_STREAM
    from .records import to_pending

    try:
        journal.append([to_pending(HOST_STREAM, record, ts_ns, key)])
    except DuplicateEventError:
        given = answer_under(journal, key)
        if given is None:  # the key taken by something else: the refusal as it was
            raise
        raise already_answered(given) from None


def _dismiss(args: argparse.Namespace) -> int:
    return _dead_letter_request(args, retry=False)


def _dead_letter_request(args: argparse.Namespace, *, retry: bool) -> int:
    from .engines.events import dead_letter_key
    from .engines.silences import MAX_NAME
    from .projections.controls import (
        dead_letters,
        letter_answer,
        refuse_unless_repeat,
        waits_for_approval,
    )
    from .records import DeadLetterDismissed, DeadLetterRetry

    _check_text_options(("--by", args.by, MAX_NAME))
    kind = DeadLetterRetry if retry else DeadLetterDismissed
    journal = _open(args, to_write=True)
    try:
        found = [d for d in dead_letters(journal) if d.decision_seq == args.seq]
        if not found:
            given = letter_answer(journal, args.seq)
            if given is not None:  # answered, and carried out since (or a dismissal)
                refuse_unless_repeat(
                    given, kind(agent=given.agent, decision_seq=args.seq, by=args.by)
                )
                print(
                    f"seq {args.seq} was {'retried' if retry else 'dismissed'} by {args.by} already"
                )
                return EXIT_OK
            hint = waits_for_approval(journal, args.seq, time.time_ns())
            hint = hint or "; `actions --failed` lists them"
            raise UsageError(f"no dead letter at seq {args.seq}{hint}")
        d = found[0]
        record = kind(agent=d.agent, decision_seq=d.decision_seq, by=args.by)
        _answer_once(journal, record, dead_letter_key(d.abandoned_seq), time.time_ns())
    finally:
        journal.close()
    if retry:
        print(
            f"retry of {d.action} for the decision at seq {d.decision_seq} journaled; the host"
            f" serving {d.agent} runs it within a second, or when it starts"
        )
    else:
        print(f"{d.action} for the decision at seq {d.decision_seq} dismissed by {args.by}")
    return EXIT_OK


def _silence_line(s: object) -> str:
    from .records import SilenceSet

    assert isinstance(s, SilenceSet)
    m = s.matcher
    scope = " ".join(
        f"{k}={v}"
        for k, v in (
            ("agent", m.agent),
            ("target", m.target),
            ("type", m.event_type),
            ("context", m.context),
        )
        if v is not None
    )
    return (
        f"{scope or 'everything'} from {format_ts(s.starts_ns)} to {format_ts(s.ends_ns)}"
        f" by {s.by}: {s.comment}"
    )


def _duration_ns(text: str) -> int:
    """`90m`, `2h`, `1d`... as nanoseconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = text.strip()
    try:
        amount, unit = float(value[:-1]), value[-1]
        if unit not in units or not 0 < amount < 1e7:
            raise ValueError
    except (ValueError, IndexError):
        raise UsageError(f"--for takes a length such as 90m, 2h or 1d, not {text!r}") from None
    return int(amount * units[unit] * 1e9)


def _history(args: argparse.Namespace) -> int:
    from .projections.audit import history

    if args.limit < 0:
        raise UsageError("--limit must not be negative")
    since_ns = parse_time(args.since) if args.since is not None else None
    until_ns = parse_time(args.until) if args.until is not None else None
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        # an age counts back from now: --since 1h --until 2h is an empty span
        raise UsageError(
            f"--since {args.since} is after --until {args.until}: no decision can fall"
            " between them (an age such as 2h is that long ago)"
        )
    journal = _open(args)
    items = list(
        history(
            journal,
            agent=args.agent,
            event_type=args.type,
            action=args.action,
            priority=args.priority,
            since_ns=since_ns,
            until_ns=until_ns,
            limit=args.limit + 1,  # one more than shown: whether older ones match too
        )
    )
    more = len(items) > args.limit
    del items[args.limit :]
    if args.json:
        _print_json(items)
        return EXIT_OK
    rows = [
        (
            i.seq,
            format_ts(i.ts_ns),
            i.stream,
            i.event.type,
            i.decision.action,
            i.decision.priority,
            i.decision.confidence,
            i.decision.reason,
        )
        for i in items
    ]
    print(
        table(("seq", "time", "agent", "event", "action", "priority", "confidence", "reason"), rows)
    )
    print(
        f"\n{_plural(len(items), 'decision')} shown, newest first"
        + (" (older ones match too: a larger --limit shows them)." if more else ".")
    )
    if not items and args.limit > 0:  # --limit 0 asked for none: nothing was missed
        _note_near_misses(args.type, args.action)
        if since_ns is not None and since_ns > time.time_ns():  # 2062 for 2026, most often
            print(
                f"note: --since {args.since} is in the future ({format_ts(since_ns)}): no"
                " decision journaled yet falls after it",
                file=sys.stderr,
            )
    return EXIT_OK


def _note_near_misses(event_type: str | None, action: str | None) -> None:
    """For a filter that matched nothing: a note if its value is one letter or two off an
    event type or an action the built-in tables know (a typo shows no decision, in silence)."""
    from .engines.context import DEFAULT_CONTEXT_MAP
    from .engines.decision import DEFAULT_RULES, FALLBACK
    from .engines.reachable import decided_by, nearest

    known = {
        "--type": (event_type, set(DEFAULT_CONTEXT_MAP)),
        "--action": (action, decided_by([*DEFAULT_RULES, FALLBACK])),
    }
    for option, (given, names) in known.items():
        if given is not None and given not in names and (meant := nearest(given, names)):
            print(
                f"note: {option} {shown(given)} matched nothing; did you mean {meant}?",
                file=sys.stderr,
            )


def _plural(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _explain(args: argparse.Namespace) -> int:
    from .projections.audit import explain

    ex = explain(_open(args), args.seq)
    if args.agent is not None and ex.item.stream != args.agent:
        raise UsageError(
            f"the decision at seq {ex.item.seq} belongs to agent {ex.item.stream!r}, not {args.agent!r}"
        )
    if args.json:
        _print_json(ex)
        return EXIT_OK
    item, d, ev = ex.item, ex.item.decision, ex.item.event
    print(f"Decision at seq {d.seq} (agent {shown(item.stream)}, {format_ts(item.ts_ns)})")
    fields = " ".join(f"{k}={shown(str(v))}" for k, v in ev.as_dict().items() if k != "type")
    print(f"  Event      seq {d.event_seq}: {ev.type}  {fields}")
    print(
        f"  Context    {d.context}  risk={d.risk}  stability={d.stability}  pressure={d.pressure:.4f}  tags={','.join(d.tags) or '-'}"
    )
    chosen = next((e for e in ex.estimates if e.action == d.action), None)
    if chosen is None:  # nothing learned in this context and risk yet: the prior decided
        print(
            f"  Confidence {d.confidence:.4f} = base {d.base_confidence:.4f} (severity {ev.severity:g} x risk factor {d.risk_factor:g})"
            f" x history weight {d.history_weight:.4f}"
        )
    else:
        k = ex.learning.prior_strength
        print(
            f"  Confidence {d.confidence:.4f} = {d.action}'s estimate: (successes {chosen.successes:g} + {k:g} x prior {chosen.prior:.4f})"
            f" / (outcomes {chosen.successes + chosen.failures:g} + {k:g}); prior = severity {ev.severity:g} x risk factor {d.risk_factor:g}"
        )
    print(
        f"  Rules tried (ruleset {d.ruleset}, {_plural(ex.custom_rules, 'custom rule')} before the defaults):"
    )
    if ex.rules_not_shown is not None:
        print(f"    not shown: {ex.rules_not_shown}")
    for check in ex.rules_tried:
        r = check.definition
        scope = f"{r.context or 'any'}/{r.risk or 'any'}"
        verdict = "MATCHED" if check.matched else f"no: {check.why}"
        print(f"    {check.rule:12s} {scope:34s} min {r.min_conf:.2f} -> {r.action:24s} {verdict}")
    if ex.estimates:
        print(
            f"  Learned    each action's record here (faded by {ex.learning.fade:g}), estimate + bonus:"
        )
        for e in ex.estimates:
            mark = " <- chosen" if e.action == d.action else ""
            if e.action == d.instead_of:
                mark = " <- the rules' choice"
            print(
                f"    {e.action:24s} {e.successes:7.2f} ok {e.failures:7.2f} failed"
                f"  {e.value:.4f} + {e.bonus:.4f} = {e.value + e.bonus:.4f}{mark}"
            )
    print(f"  Action     {d.action} [{d.priority}]  reason={d.reason}")
    if d.instead_of is not None:
        print(
            f"  Learning   chose {d.action} over the rules' {d.instead_of}: a better estimate + bonus"
        )
    if d.degraded_from is not None:
        print(
            f"  Fleet      degraded from {d.degraded_from}: {d.fleet} (fleet policy {d.fleet_policy})"
        )
    if ex.incident is not None:
        agents = ", ".join(map(shown, ex.incident.agents))
        print(
            f"  Incident   opened by this decision: {ex.incident.rule} ({len(ex.incident.agents)} agents: {agents})"
        )
    for step in ex.attempts:
        label = f"#{step.attempt}" if step.attempt else "  "
        print(
            f"  {'Attempts' if step is ex.attempts[0] else '':11s}seq {step.seq} {format_ts(step.ts_ns)} {label} {shown(step.detail)}"
        )
    if ex.outcomes:
        for o in ex.outcomes:
            under = "" if o.id is None else f" (id {shown(o.id)})"
            print(
                f"  Outcome    seq {o.seq} at {format_ts(o.ts_ns)}: {'success' if o.success else 'failure'}{under}"
            )
    else:
        print("  Outcomes   none recorded")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from .projections.replay import Redecided, redecide, verify_replay
    from .rulefiles import load_policy

    journal = _open(args)
    if args.verify:
        report = verify_replay(journal, args.agent, progress=_progress("entries replayed"))
        if args.json:
            _print_json(report)
        elif report.ok:
            print(
                f"OK: {_plural(report.decisions, 'decision')} re-decided from an empty state; all match the journal byte for byte."
            )
        else:
            print(
                f"MISMATCH: {len(report.mismatches)} of {report.decisions} decisions differ from the journal:"
            )
            rows = [
                (
                    m.seq,
                    name,
                    _brief(getattr(m.journaled, name)),
                    _brief(getattr(m.replayed, name)),
                )
                for m in report.mismatches[:50]
                for name in m.fields
            ]
            print(table(("seq", "field", "journaled", "replayed"), rows))
        return EXIT_OK if report.ok else EXIT_CHECK_FAILED
    policy = load_policy(args.rules)
    _note_tables_left_out(
        args.rules,
        policy,
        ("fleet", "learning"),
        "approvals act on actions, and replay re-decides decisions only",
    )
    _note_rules_that_never_match(args.rules, policy, journal)
    total, changed = 0, 0
    shifts: dict[tuple[str, str], int] = {}
    examples: list[Redecided] = []
    for item in redecide(
        journal,
        args.agent,
        rules=policy.rules,
        fleet=policy.fleet,
        learning=policy.learning,
        progress=_progress("entries replayed"),
    ):
        total += 1
        if item.now.action != item.journaled.action:
            changed += 1
            key = (item.journaled.action, item.now.action)
            shifts[key] = shifts.get(key, 0) + 1
            if len(examples) < args.examples:
                examples.append(item)
    ordered = sorted(shifts.items(), key=lambda kv: (-kv[1], kv[0]))
    if args.json:
        _print_json(
            {
                "decisions": total,
                "changed": changed,
                "shifts": [{"from": a, "to": b, "count": n} for (a, b), n in ordered],
                "examples": [
                    {
                        "seq": e.seq,
                        "event_type": e.event.type,
                        "was": e.journaled.action,
                        "would_be": e.now.action,
                        "rule": e.now.rule,
                    }
                    for e in examples
                ],
            }
        )
        return EXIT_OK
    print(
        f"Under {args.rules}, {changed} of {total} journaled decisions would change (nothing was written)."
    )
    if ordered:
        print("\n" + table(("was", "would be", "decisions"), [(a, b, n) for (a, b), n in ordered]))
        example_rows = [
            (
                e.seq,
                format_ts(e.journaled.ts_ns),
                e.event.type,
                e.journaled.action,
                e.now.action,
                e.now.rule,
            )
            for e in examples
        ]
        print(
            "\nExamples:\n"
            + table(("seq", "time", "event", "was", "would be", "rule"), example_rows)
        )
    return EXIT_OK


def _brief(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _verify(args: argparse.Namespace) -> int:
    from .journal import Head
    from .projections import check_snapshots

    expected = Head.parse(args.expect_head) if args.expect_head is not None else None
    try:
        journal = _open(args)
        report = journal.verify(expected_head=expected, progress=_progress("entries verified"))
    except JournalCorruptError as exc:
        # damage SQLite meets before any check can run is what verify looks for: said as a
        # finding, not as "run verify", the advice every other command gives for it
        from .journal.open import describe, sqlite_path

        problem = (
            f"{describe(args.db)} can't be read ({exc.__cause__ or exc}), so neither the chain"
            " nor the snapshots can be checked. Restore it from a backup or an export (import"
            " checks every digest)"
        )
        if (file := sqlite_path(args.db)) is not None:
            problem += f"; `sqlite3 {shlex.quote(file)} .recover` may salvage what is left of it"
        if args.json:
            _print_json({"ok": False, "problem": problem})
        else:
            print(f"DAMAGED: {problem}")
        return EXIT_CHECK_FAILED
    # snapshots are checked against the chain by replay only when the chain itself holds
    snapshots = (
        check_snapshots(journal, progress=_progress("entries replayed")) if report.ok else []
    )
    forged = [s for s in snapshots if not s.ok]
    if args.json:
        _print_json(
            {
                **msgspec.to_builtins(report),
                "ok": report.ok and not forged,
                "head": str(report.head),
                "snapshots": snapshots,
            }
        )
    elif not report.ok:
        where = (
            f"first bad seq {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
        )
        print(f"TAMPERED OR DAMAGED: {where}{report.problem}")
    else:
        for check in forged:
            print(
                f"FORGED OR DAMAGED SNAPSHOT: agent {check.stream}, seq {check.seq} "
                f"(snapshot {check.id}): {check.problem}"
            )
        for check in snapshots:
            if check.ok and check.problem:
                print(
                    f"note: snapshot {check.id} of agent {check.stream} at seq {check.seq} {check.problem}"
                )
        if not forged:
            checked = " and matches the expected head" if expected else ""
            storage = " SQLite quick_check ok," if type(journal).__name__ == "SqliteJournal" else ""
            print(
                f"OK: {_plural(report.entries, 'entry', 'entries')}, hash chain intact{checked},{storage} "
                f"{_plural(len(snapshots), 'snapshot')} checked against the chain."
            )
        print(f"Head: {report.head}")
    return EXIT_OK if report.ok and not forged else EXIT_CHECK_FAILED


def _head(args: argparse.Namespace) -> int:
    print(_open(args).head())
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from .journal.export import export_lines

    journal = _open(args, entries=True)
    head = journal.head()  # what the export holds, to check on the way in (import --expect-head)
    lines = export_lines(journal, args.agent, upto=head.seq)
    if not args.out:
        count = _write_lines(lines, sys.stdout)
        sys.stdout.flush()  # the lines, then the word on stderr that they were all written
        print(_exported(count, "standard output", args.agent, head), file=sys.stderr)
        return EXIT_OK
    # An export holds everything the journal does: it is written 0600, like the journal, to
    # a new file in the target's folder, then renamed over the target. So it never writes
    # through a symlink, nor into an existing file that others can read.
    import tempfile

    target = Path(args.out)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            count = _write_lines(lines, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    print(_exported(count, args.out, args.agent, head), file=sys.stderr)
    return EXIT_OK


def _exported(count: int, where: str, agent: str | None, head: Head) -> str:
    said = f"Exported {_plural(count, 'entry', 'entries')} to {where}"
    if agent is None:  # the whole chain: its head is the head of what import makes
        said += f"; head {head} (give it to import --expect-head to check that none is lost)"
    return said


def _write_lines(lines: Iterable[str], out: TextIO) -> int:
    count = 0
    for count, line in enumerate(lines, start=1):
        out.write(line + "\n")
        if count % PROGRESS_EVERY == 0:
            _progress("entries exported")(count)
    return count


def _import_postgres(args: argparse.Namespace) -> int:
    """Import into a new schema beside the target, verify it, then rename it into place."""
    from .journal.open import describe, is_memory
    from .journal.postgres import PostgresJournal, schema_of

    if is_memory(args.db):
        raise UsageError(
            "import writes a journal that lasts; give --db a path or a postgresql:// URL"
        )
    _check_import_file(args.file)
    expected = _expected_head(args)
    schema = schema_of(args.db)
    partial_schema = f"{schema[:50]}_partial"
    # One import into a schema at a time: the lock is held through a journal on the
    # partial schema (made, or found in use), before the target schema is touched.
    holder = PostgresJournal(args.db, schema=partial_schema, durability="normal")
    try:
        refused = (
            f"another import into schema {schema} is running; wait for it to end, or import"
            " into another schema (?schema=NEW)"
        )
        with holder.held("import", refused):
            holder.close()  # the lock has a connection of its own
            try:
                count, head = _import_postgres_held(args, schema, partial_schema, expected)
            except BaseException:  # nothing of it is left: the partial schema goes too
                with contextlib.suppress(JournalError):
                    PostgresJournal(args.db, schema=partial_schema).drop_schema()
                raise
    finally:
        holder.close()
    _say_imported(count, f"schema {schema} ({describe(args.db)})", head, expected)
    return EXIT_OK


def _import_postgres_held(
    args: argparse.Namespace, schema: str, partial_schema: str, expected: Head | None
) -> tuple[int, Head]:
    """The import into PostgreSQL, once it holds the schema's import lock: into the
    partial schema, then renamed into place."""
    from .journal.postgres import PostgresJournal, with_schema

    target = PostgresJournal(args.db, durability="normal", create=True)
    try:
        if target.head().seq:
            raise UsageError(
                f"schema {schema} already holds a journal; import into a new one (?schema=NEW)"
            )
        # the empty schema just made (the import's rename takes its name), and a partial
        # one an import into it left if it was killed before it finished
        target.drop_schema(partial_schema)
    except BaseException:
        target.close()
        raise
    journal = PostgresJournal(with_schema(args.db, partial_schema), durability="normal")
    try:
        count, head = _import_into(journal, args.file, args.max_event_bytes, expected)
        journal.rename_schema(schema)
    except BaseException:
        journal.drop_schema()
        raise
    return count, head


def _expected_head(args: argparse.Namespace) -> Head | None:
    """import --expect-head, read before anything is written."""
    from .journal import Head

    return Head.parse(args.expect_head) if args.expect_head is not None else None


def _holds(journal: Journal, head: Head) -> bool:
    """Whether a journal whose chain verified holds this head: the entry at its seq has
    its digest (a verified chain vouches for every digest, so no second walk is needed)."""
    from .journal.base import GENESIS_DIGEST

    if head.seq == 0:
        return head.digest == GENESIS_DIGEST
    entry = journal.get(head.seq)
    return entry is not None and entry.digest == head.digest


def _check_import_file(file: Path) -> None:
    # a pipe is welcome too (import <(gunzip -c dump.jsonl.gz)): refuse only what can't be read
    if str(file) != "-" and (file.is_dir() or not file.exists()):
        what = "is a folder" if file.is_dir() else "does not exist"
        raise UsageError(f"cannot import {file}: it {what}; give a file written by `export`")


def _import_into(
    journal: Journal, file: Path, max_event_bytes: int, expected: Head | None
) -> tuple[int, Head]:
    """Import an export file (or stdin, as `-`) into an empty journal and verify it there
    (holding the `expected` head, if given); return the count of entries and the head.
    Closing the journal is the caller's part."""
    from .engines.entries import check_entry
    from .errors import EventTooLargeError
    from .journal.export import import_lines

    def check(kind: str, body: bytes) -> object:
        try:
            return check_entry(kind, body, max_event_bytes=max_event_bytes)
        except EventTooLargeError as exc:
            hint = "; if its host took larger events, give --max-event-bytes as its max_event_bytes"
            raise EventTooLargeError(f"{exc}{hint}", field=exc.field) from None

    # utf-8-sig: an export saved again by an editor that starts files with a BOM still reads
    source = sys.stdin if str(file) == "-" else open(file, encoding="utf-8-sig")  # noqa: SIM115
    try:
        try:
            count = import_lines(journal, source, check=check, progress=_progress("lines imported"))
        except UnicodeDecodeError as exc:
            msg = f"cannot import {file}: it is not UTF-8 text ({exc.reason} at byte {exc.start})"
            raise UsageError(msg) from None
    finally:
        if source is not sys.stdin:
            source.close()
    report = journal.verify()
    if not report.ok:
        raise JournalError(f"the imported journal does not verify: {report.problem}")
    if expected is not None and not _holds(journal, expected):
        cut = report.head.seq < expected.seq
        msg = (
            f"the import ends at {report.head}, and {'it stops short of' if cut else 'does not hold'}"
            f" the expected head {expected}: "
            + (
                "the export was cut short (a copy that did not finish?)"
                if cut
                else "the export is another journal's, or was rewritten"
            )
            + "; nothing was imported"
        )
        raise InvalidImportError(msg, line=count, seq=report.head.seq)
    return count, report.head


def _import(args: argparse.Namespace) -> int:
    from .journal import SqliteJournal
    from .journal.aside import built_aside
    from .journal.open import sqlite_path

    target = sqlite_path(args.db)
    if target is None:
        return _import_postgres(args)
    args.db = Path(target)
    if args.db.exists():
        raise UsageError(f"{args.db} already exists; import into a new file with --db NEW.db")
    _check_import_file(args.file)
    expected = _expected_head(args)
    with built_aside(args.db) as partial:
        journal = SqliteJournal(partial, durability="normal")
        try:
            count, head = _import_into(journal, args.file, args.max_event_bytes, expected)
        finally:
            journal.close()
    _say_imported(count, str(args.db), head, expected)
    return EXIT_OK


def _say_imported(count: int, where: str, head: Head, expected: Head | None) -> None:
    """Print import's line (scripts read the head at its end); without --expect-head, then
    a note on stderr of what checks a file cut short at a line's end, which verifies."""
    print(
        f"Imported {_plural(count, 'entry', 'entries')} into {where}; chain verified. Head: {head}",
        flush=True,
    )
    if expected is None:
        print(
            "adaptive-runtime: note: compare this head with the one export printed, or give"
            " that to --expect-head: an export cut short at a line's end verifies all the same",
            file=sys.stderr,
        )


def _plugins(args: argparse.Namespace) -> int:
    from .journal.open import describe
    from .plugins import installed
    from .projections.fleet import journaled_plugins

    found = installed()
    enabled: list[str] | None = None
    unread = ""
    try:
        journal = _open(args)
    except (JournalError, UsageError) as exc:  # UsageError: --db memory:
        journal = None  # no journal here (or none that opens): list what is installed only
        unread = str(exc)
    if journal is not None:
        refs = journaled_plugins(journal)
        enabled = [f"{r.name}=={r.version}" for r in refs or ()]
        journal.close()
    from . import __version__

    builtin = {
        "name": "builtin",
        "kinds": ["contexts", "rules"],
        "distribution": "adaptive-runtime",
        "version": __version__,
    }
    if args.json:
        _print_json({"builtin": builtin, "installed": found, "enabled": enabled})
        return EXIT_OK
    rows = [("builtin", "contexts,rules", "adaptive-runtime", __version__)]
    rows += [(p.name, ",".join(p.kinds), p.distribution, p.version) for p in found]
    print(table(("plugin", "kinds", "package", "version"), rows))
    print(
        "\nbuiltin is always on: the default context map (asked after every enabled plugin's"
        " analysers) and the default rule table (tried last)."
    )
    print(f"{_plural(len(found), 'plugin')} installed.")
    if enabled is None:
        print(f"Which are enabled is unknown: {unread}")
    else:
        print(f"Enabled in {describe(args.db)}: {', '.join(enabled) or 'none'}.")
    return EXIT_OK


def _agents(args: argparse.Namespace) -> int:
    from .projections.audit import agents

    found = agents(_open(args))
    if args.json:
        _print_json(found)
        return EXIT_OK
    rows = [
        (
            a.agent,
            a.entries,
            a.decisions,
            "-" if a.last_decision is None else a.last_decision.seq,
            "-" if a.last_decision is None else format_ts(a.last_decision.ts_ns),
            "-" if a.last_decision is None else a.last_decision.action,
            a.open_actions,
        )
        for a in found
    ]
    print(
        table(
            (
                "agent",
                "entries",
                "decisions",
                "last decision",  # its seq: "last seq" read as the agent's last entry
                "decided",
                "action",
                "open actions",
            ),
            rows,
        )
    )
    print(f"\n{_plural(len(found), 'agent')}.")
    return EXIT_OK


def _state(args: argparse.Namespace) -> int:
    from .projections import state_at

    journal = _open(args)
    try:
        agent = args.agent or _only_agent(journal)
        at = seq_or_time(args.at) if args.at is not None else {"seq": journal.head().seq}
        state = state_at(journal, agent, **at)
    finally:
        journal.close()
    if args.json:
        _print_json(state)
        return EXIT_OK
    print(
        f"State of agent {shown(agent)} as of seq {state.seq}"
        + (f" ({format_ts(state.ts_ns)})" if state.seq else " (before any entry)")
    )
    print(
        f"  events {state.events}, decisions {state.decisions}, outcomes {state.outcomes} ({state.successes} successful)"
    )
    print(f"  actions: {', '.join(f'{a}={n}' for a, n in sorted(state.actions.items())) or '-'}")
    print(f"  custom rules: {len(state.rules)}; checkpoints: {state.checkpoints}")
    print(f"  learning: {_learning_text(state.learning)}")
    print("  outcome record (faded):" + ("" if state.history.tallies else " -"))
    for scope, actions in sorted(state.history.tallies.items()):
        for action, t in sorted(actions.items()):
            print(f"    {scope:32s} {action:24s} {t.successes:6.2f} ok {t.failures:6.2f} failed")
    print(f"  key/value state: {json.dumps(state.kv) if state.kv is not None else '-'}")
    return EXIT_OK


def _only_agent(journal: Journal) -> str:
    from .projections.audit import agent_ids

    streams = agent_ids(journal)
    if len(streams) == 1:
        return streams[0]
    if not streams:
        raise UsageError("the journal is empty: there is no agent to show")
    raise UsageError(
        f"the journal holds {len(streams)} agents; pick one with --agent ({', '.join(map(shown, streams[:10]))})"
    )


def _stats(args: argparse.Namespace) -> int:
    from .projections.audit import stats

    result = stats(_open(args), agent=args.agent, progress=_progress("entries counted"))
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(
        _plural(result.decisions, "decision") + (f" for agent {args.agent}" if args.agent else "")
    )
    for title, counts in (
        ("event type", result.by_type),
        ("action", result.by_action),
        ("priority", result.by_priority),
    ):
        print("\n" + table((title, "decisions"), list(counts.items())))
    hours = [(format_ts(h * 10**9)[:13] + ":00", n) for h, n in result.per_hour.items()]
    print("\n" + table(("hour", "decisions"), hours[-48:]))
    rows = [
        (c["band"], c["outcomes"], c["successes"], c["success_rate"]) for c in result.calibration
    ]
    print(
        "\nCalibration (recorded outcomes per confidence band):\n"
        + table(("confidence", "outcomes", "successes", "success rate"), rows)
    )
    cal = result.reliability
    if cal.outcomes:
        print(
            f"\nECE {cal.ece:.4f}, Brier {cal.brier:.4f} over {_plural(cal.outcomes, 'outcome')}"
            " (0 is perfect for both; ECE over ten bins)"
        )
    else:
        print("\nECE and Brier: no outcomes recorded yet")
    if args.plot is not None:
        from .plots import MIN_BIN, reliability_diagram

        who = f"agent {args.agent}" if args.agent else "every agent"
        drawn = _written_plot(
            args.plot,
            lambda path: reliability_diagram(path, {"recorded": cal}, f"Recorded outcomes, {who}"),
        )
        print(
            f"Reliability diagram written to {args.plot}"
            + ("" if drawn else f" (no curve yet: no confidence band holds {MIN_BIN} outcomes)")
        )
    return EXIT_OK


def _tail(args: argparse.Namespace) -> int:
    from .journal.follow import follow
    from .records import named, read_record

    if args.after is not None and args.lines is not None:
        # where to start, said twice: --lines was left unused without a word
        msg = (
            f"give --after or --lines, not both: --after {args.after} shows every entry after"
            f" it, --lines {args.lines} the last {args.lines}"
        )
        raise UsageError(msg)
    journal = _open(args, entries=True)
    if args.after is not None:
        after = args.after
        head = journal.head().seq
        if after > head:  # a seq from another journal, or a typo: said, not taken in silence
            later = (
                f"the entries {head + 1} to {after} will not be shown as they commit"
                if args.follow
                else "there is nothing after it"
            )
            print(
                f"adaptive-runtime: note: --after {after} is past the journal's head (seq"
                f" {head}): {later}",
                file=sys.stderr,
            )
    else:
        newest = list(journal.latest(10 if args.lines is None else args.lines, args.agent))
        after = newest[-1].seq - 1 if newest else journal.head().seq
        if args.agent is not None and not newest:
            after = journal.head().seq
    entries = (
        follow(journal, after=after, stream=args.agent, on_unavailable=_outage)
        if args.follow
        else (e for e in journal.read(args.agent, after=after))
    )
    for entry in entries:
        if args.json:
            record = named(read_record(entry))
            print(
                json.dumps(
                    {
                        "seq": entry.seq,
                        "stream": entry.stream,
                        "stream_seq": entry.stream_seq,
                        "kind": entry.kind,
                        "ts_ns": entry.ts_ns,
                        "record": msgspec.to_builtins(record),
                    }
                ),
                flush=True,
            )
        else:
            print(
                f"{entry.seq}  {format_ts(entry.ts_ns)}  {shown(entry.stream)}  {entry.kind}"
                f"{_summary(entry)}",
                flush=True,
            )
    return EXIT_OK


def _outage(error: Exception | None) -> None:
    """What `tail --follow` says when its server goes away, and when it is back."""
    if error is None:
        print("adaptive-runtime: the journal answers again; following on", file=sys.stderr)
    else:
        print(f"adaptive-runtime: {error}", file=sys.stderr)
        print(
            "adaptive-runtime: tail waits for it, and carries on after the last entry shown"
            " (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )


def _summary(entry: Entry) -> str:
    """What `tail` shows of an entry after its kind: the live stream's message, as text."""
    from .projections.messages import message_of
    from .records import EventReceived, read_as

    if entry.kind == "EventReceived":
        event = read_as(entry, EventReceived).event
        return f"  {shown(event.type)} severity={event.severity:g}"
    message = message_of(entry)
    if message is None:
        return ""
    name, m = message
    if name == "decision":
        return f"  {m['action']} [{m['priority']}] confidence={m['confidence']:.4f}"
    if name == "outcome":
        return f"  decision {m['decision_seq']}: {'success' if m['success'] else 'failure'}"
    if name == "incident":
        return f"  {m['context']} agents={','.join(map(shown, m['agents']))} rule={m['rule']}"
    if name == "action":
        return f"  {m['action']} {m['status']}" + _fields(m, ("decision_seq", "attempt", "step"))
    if m["control"] == "silence_set":
        matches = [f"{k}={m[k]}" for k in ("agent", "target", "event_type", "context") if m[k]]
        return (
            f"  silence {m['id']} {' '.join(map(shown, matches)) or 'every decision'}"
            f" {format_ts(m['starts_ns'])} to {format_ts(m['ends_ns'])}" + _fields(m, ())
        )
    return f"  {m['control']}" + _fields(m, ("id", "agent", "decision_seq", "approve"))


def _fields(message: dict[str, object], names: tuple[str, ...]) -> str:
    """` name=value` for each of `names` the message gives, then who asked and why."""
    labels = {"decision_seq": "decision"}
    out = "".join(f" {labels.get(n, n)}={message[n]}" for n in names if message.get(n) is not None)
    if message.get("by"):
        out += f" by {message['by']}"
    for why in ("detail", "comment"):
        if message.get(why):
            out += f": {message[why]}"
    return shown(out)


def _simulate(args: argparse.Namespace) -> int:
    from .rulefiles import load_policy
    from .simulation import BUILTIN, POLICIES, load_scenario
    from .simulation.report import compare, compare_families, render, render_families

    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown or not policies:
        raise UsageError(
            f"--policy takes {', '.join(POLICIES)}; not {', '.join(unknown) or 'nothing'}"
        )
    policy = load_policy(args.rules) if args.rules is not None else None
    if policy is not None:
        _note_tables_left_out(
            args.rules,
            policy,
            ("learning",),
            "simulate applies a policy file's custom rules and [learning] table only",
        )
        _note_rules_that_never_match(args.rules, policy, None)  # no plugin in a simulation
    rules = (policy.rules or ()) if policy is not None else ()
    learning = policy.learning if policy is not None else None
    if not 1 <= args.seeds <= 1000:
        raise UsageError(f"--seeds must be from 1 to 1000, not {args.seeds}")
    seeds = range(args.seeds)
    if args.scenario == "all":
        if policies != list(POLICIES) or args.db is not None:
            raise UsageError("`simulate all` compares all three policies and keeps no journal")
        scenarios = [load_scenario(name) for name in BUILTIN]
        for scenario in scenarios:
            _note_unheeded_names(f"scenario {scenario.name!r}", scenario, rules)
        families = compare_families(scenarios, seeds, rules=rules, learning=learning)
        comparisons = list(families.comparisons)
        if args.json:
            _print_json(families)
        else:
            print(render_families(families))
    else:
        keep = None
        if args.db is not None:
            if "adaptive" not in policies:
                raise UsageError("--db keeps the adaptive runtime's journal; add it to --policy")
            if args.db.exists():
                raise UsageError(f"{args.db} exists; --db takes a new file")
            keep = str(args.db)
        scenario = load_scenario(args.scenario)
        _note_unheeded_names(args.scenario, scenario, rules)
        one = compare(
            scenario,
            seeds,
            policies,
            rules=rules,
            learning=learning,
            keep=keep,
        )
        comparisons = [one]
        if args.json:
            _print_json(one)
        else:
            print(render(one))
    if args.plot is not None:
        from functools import partial

        from .plots import reliability_and_success

        for c in comparisons:
            path = args.plot
            if len(comparisons) > 1:
                path = args.plot.with_name(f"{args.plot.stem}-{c.scenario}{args.plot.suffix}")
            draw = partial(
                reliability_and_success,
                curves={r.policy: r.calibration for r in c.results},
                success={r.policy: r.success_curve for r in c.results},
                window=c.window,
                shifts=[at for at, _, _ in c.shifts],
                title=f"{c.scenario}: {c.events} events x {len(c.seeds)} seeds",
            )
            _written_plot(path, draw)
            if not args.json:
                print(f"Plot written to {path}")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    candidates = [
        Path.cwd() / "bench" / "report.py",
        Path(__file__).resolve().parents[1] / "bench" / "report.py",
    ]
    report = next((c for c in candidates if c.is_file()), None)
    if report is None:
        raise UsageError(
            "the benchmarks live in the source checkout's bench/ folder; run this from a clone of the repository"
        )
    if importlib.util.find_spec("pytest_benchmark") is None:
        raise UsageError("the benchmarks need the bench extra: pip install -e '.[bench]'")
    if args.source and not Path(args.source).is_file():  # its contents are report.py's to read
        raise UsageError(
            f"--from {args.source}: no such file; give a JSON file that pytest-benchmark wrote"
            " (bench/results/pytest-benchmark-1.json is one)"
        )
    passed = [
        *(["--large"] if args.large else []),
        *(["--from", str(args.source)] if args.source else []),
        *(["--out", str(args.out)] if args.out else []),
        *(["--no-memory"] if args.no_memory else []),
        *(["--runs", str(args.runs)] if not args.source else []),
    ]
    return subprocess.run([sys.executable, str(report), *passed], check=False).returncode


def _learning_text(policy: LearningPolicy | None) -> str:
    from .records import LearningPolicy

    p = policy or LearningPolicy()
    text = f"prior worth {p.prior_strength:g} outcomes, fade {p.fade:g}, bonus {p.bonus:g}"
    if not p.alternatives:
        text += ", alternatives off"
    elif p.respect_gates:
        text += ", alternatives gated by min_conf"
    return text + ("" if policy is not None else " (the defaults)")
