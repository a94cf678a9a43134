"""The command line, run as a user would: a subprocess against journals the runtime wrote."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli

from adaptive_runtime import ActionCall, Event, Host, ManualClock, RetryPolicy, Runtime
from adaptive_runtime.errors import JournalError
from adaptive_runtime.journal import Pending, SqliteJournal
from adaptive_runtime.journal.aside import built_aside

EVENTS = [
    {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88},
    {"type": "service_overload", "severity": 0.91, "cpu": 96, "memory": 92},
    {"type": "anomaly_detected", "severity": 0.74, "error_rate": 0.6},
    {"type": "auth_failure", "severity": 0.55},
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
]


async def write_journal(path: Path) -> None:
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)
    async with Runtime(
        agent_id="prod", path=path, clock=clock, durability="normal", checkpoint_every=4
    ) as runtime:
        for i in range(20):
            d = await runtime.process(EVENTS[i % 5])
            if i % 5 == 0:
                await runtime.record_outcome(d, success=i % 10 == 0)
            clock.advance(900)
    async with Runtime(agent_id="canary", path=path, clock=clock, durability="normal") as runtime:
        await runtime.process(EVENTS[2])


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "runtime.db"
    asyncio.run(write_journal(path))
    return path


def test_history_filters_and_json(journal_path: Path) -> None:
    """history lists decisions newest first, filtered by agent, type, action and priority."""
    out = cli("history", "--db", str(journal_path), "--json", "--limit", "3")
    items = json.loads(out.stdout)
    assert [46, 44, 42] == [i["seq"] for i in items]
    only = json.loads(
        cli(
            "history", "--db", str(journal_path), "--agent", "prod", "--type", "timeout", "--json"
        ).stdout
    )
    assert 4 == len(only)
    assert {"cache_warmup"} == {i["decision"]["action"] for i in only}
    assert all(
        i["decision"]["priority"] == "normal"
        for i in json.loads(
            cli("history", "--db", str(journal_path), "--priority", "normal", "--json").stdout
        )
    )
    text = cli(
        "history", "--db", str(journal_path), "--action", "trigger_security_audit", "--limit", "2"
    ).stdout
    assert 2 == text.count("trigger_security_audit")
    assert "2 decisions shown" in text
    # an empty filter is a filter: no event has the type "" (it listed every decision)
    none = cli("history", "--db", str(journal_path), "--type", "", "--json")
    assert (0, []) == (none.returncode, json.loads(none.stdout))
    # a misspelt type or action showed no decision, as if none had been made
    typo = cli(
        "history", "--db", str(journal_path), "--type", "timeot", "--action", "restrat_service"
    )
    assert (0, True) == (typo.returncode, "0 decisions shown" in typo.stdout)
    assert [
        "note: --type timeot matched nothing; did you mean timeout?",
        "note: --action restrat_service matched nothing; did you mean restart_service?",
    ] == typo.stderr.splitlines()
    # a name of a custom rule's own is no typo, and a filter that matched is not noted
    for quiet in (["--action", "page_the_team"], ["--type", "timeout"]):
        assert "" == cli("history", "--db", str(journal_path), *quiet).stderr


def test_history_says_when_older_decisions_match_past_the_limit(journal_path: Path) -> None:
    """The default --limit 20 showed "20 decisions shown" of more, with no word that the
    rest were left out."""
    every = json.loads(
        cli("history", "--db", str(journal_path), "--limit", "1000", "--json").stdout
    )
    n = len(every)
    assert n > 20
    cut = cli("history", "--db", str(journal_path)).stdout
    said = (
        "\n20 decisions shown, newest first (older ones match too: a larger --limit shows them).\n"
    )
    assert cut.endswith(said), cut
    whole = cli("history", "--db", str(journal_path), "--limit", str(n)).stdout
    assert whole.endswith(f"\n{n} decisions shown, newest first.\n"), whole
    # JSON stays the page asked for, for scripts
    assert every[:20] == json.loads(cli("history", "--db", str(journal_path), "--json").stdout)


def test_history_time_range(journal_path: Path) -> None:
    """--since and --until bound the history by journaled time."""
    since = str(1_764_000_000 + 900 * 18)
    items = json.loads(
        cli(
            "history", "--db", str(journal_path), "--agent", "prod", "--since", since, "--json"
        ).stdout
    )
    assert 2 == len(items)
    # a year mistyped into the future showed "0 decisions shown" as if none had been made
    ahead = cli("history", "--db", str(journal_path), "--since", "2062-01-01")
    assert (0, True) == (ahead.returncode, "0 decisions shown" in ahead.stdout)
    assert "note: --since 2062-01-01 is in the future (2062-01-01 00:00:00)" in ahead.stderr


def test_explain_shows_rules_tried_and_outcomes(journal_path: Path) -> None:
    """explain names the matching rule, the earlier ones with why, and later outcomes."""
    out = cli("explain", "2", "--db", str(journal_path))
    assert out.returncode == 0, out.stderr
    assert "Confidence 0.7831 = base 0.7831" in out.stdout
    assert "default[1]" in out.stdout
    assert "no: confidence 0.7831 is below 0.85" in out.stdout
    assert "default[2]" in out.stdout
    assert "MATCHED" in out.stdout
    assert "Outcome    seq 3" in out.stdout
    assert "success" in out.stdout
    data = json.loads(cli("explain", "1", "--db", str(journal_path), "--json").stdout)
    assert "restart_service" == data["item"]["decision"]["action"]
    missing = cli("explain", "99999", "--db", str(journal_path))
    assert (2, "") == (missing.returncode, missing.stdout)
    assert "no decision at seq 99999" in missing.stderr


def test_replay_verify_passes_under_other_hash_seeds(journal_path: Path) -> None:
    """A journal written in another process re-decides identically under any PYTHONHASHSEED."""
    for seed in ("0", "4242"):
        out = cli("replay", "--verify", "--db", str(journal_path), env={"PYTHONHASHSEED": seed})
        assert out.returncode == 0, out.stdout + out.stderr
        assert "all match the journal byte for byte" in out.stdout


def test_journal_written_under_another_hash_seed_verifies(tmp_path: Path) -> None:
    """A runtime under PYTHONHASHSEED=1 writes; replay under seed 2 agrees."""
    script = textwrap.dedent(
        f"""
        import asyncio
        from adaptive_runtime import Runtime
        async def main():
            async with Runtime(agent_id="x", path={str(tmp_path / "h.db")!r}, durability="normal") as r:
                for i in range(30):
                    d = await r.process({{"type": ["timeout", "service_overload", "odd"][i % 3], "severity": i / 30, "cpu": i * 3, "tags": {{"z": 1, "a": 2}}}})
                    if i % 4 == 0:
                        await r.record_outcome(d, success=i % 8 == 0)
        asyncio.run(main())
        """
    )
    subprocess.run(
        [sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONHASHSEED": "1"}
    )
    out = cli("replay", "--verify", "--db", str(tmp_path / "h.db"), env={"PYTHONHASHSEED": "2"})
    assert out.returncode == 0, out.stdout + out.stderr


def test_replay_what_if_shows_changes_and_writes_nothing(
    journal_path: Path, tmp_path: Path
) -> None:
    """A rules file that changes some decisions: counts by action, examples, and no writes."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\ncontext = "latency_issue"\nrisk = "any"\nmin_conf = 0.0\naction = "page_oncall"\nreason = "slow"\n'
    )
    head = cli("head", "--db", str(journal_path)).stdout
    out = cli("replay", "--rules", str(rules), "--db", str(journal_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (21, 4) == (data["decisions"], data["changed"])
    assert [{"from": "cache_warmup", "to": "page_oncall", "count": 4}] == data["shifts"]
    assert head == cli("head", "--db", str(journal_path)).stdout
    text = cli("replay", "--rules", str(rules), "--db", str(journal_path)).stdout
    assert "4 of 21 journaled decisions would change" in text
    rules.write_text(
        '[[rules]]\ncontext = "x"\nrisk = "severe"\nmin_conf = 0\naction = "a"\nreason = "r"\n'
    )
    bad = cli("replay", "--rules", str(rules), "--db", str(journal_path))
    assert 2 == bad.returncode
    assert "rule 0: risk must be one of" in bad.stderr


def test_a_policy_table_a_command_does_not_apply_is_named(
    journal_path: Path, tmp_path: Path
) -> None:
    """replay --rules passed over an [approvals] table, and simulate --rules a [fleet] one,
    in silence: "0 would change" read as "this policy makes no difference". Each says
    on stderr which table it left out and why, and still does what it does."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[fleet]\ncooldown = 600\n[approvals]\nactions = ["restart_service"]\n')
    replayed = cli("replay", "--rules", str(policy), "--db", str(journal_path))
    assert 0 == replayed.returncode, replayed.stderr
    assert [
        f"note: the [approvals] table of {policy} is not applied: approvals act on actions,"
        " and replay re-decides decisions only"
    ] == replayed.stderr.splitlines()
    simulated = cli(
        "simulate", str(Path(__file__).parent.parent / "data" / "small-scenario.toml"),
        "--seeds", "1", "--rules", str(policy), "--json",
    )  # fmt: skip
    assert 0 == simulated.returncode, simulated.stderr
    assert [
        f"note: the [{name}] table of {policy} is not applied: simulate applies a policy"
        " file's custom rules and [learning] table only"
        for name in ("fleet", "approvals")
    ] == simulated.stderr.splitlines()
    json.loads(simulated.stdout)


def test_a_custom_rule_that_never_matches_is_named_by_replay_and_simulate(
    journal_path: Path, tmp_path: Path
) -> None:
    """A rule for `resource_presure` (a typo) made replay --rules say "0 would change",
    and simulate --rules compare a policy that was the defaults, with no word: a host
    warns of such a rule at its start, but these ran none."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[rules]]\ncontext = "resource_presure"\nrisk = "high"\nmin_conf = 0.5\n'
        'action = "throttle_requests"\nreason = "x"\n'
    )
    said = (
        f"note: {policy}: custom[0] is a rule for the context 'resource_presure', which no"
        " event is given"
    )
    replayed = cli("replay", "--rules", str(policy), "--db", str(journal_path))
    assert (0, True) == (replayed.returncode, "journaled decisions would change" in replayed.stdout)
    assert replayed.stderr.startswith(said), replayed.stderr
    assert "(did you mean 'resource_pressure'?)" in replayed.stderr
    simulated = cli(
        "simulate", str(Path(__file__).parent.parent / "data" / "small-scenario.toml"),
        "--seeds", "1", "--rules", str(policy), "--json",
    )  # fmt: skip
    assert (0, True) == (simulated.returncode, simulated.stderr.startswith(said))


def test_simulate_notes_an_action_in_the_scenario_that_no_rule_decides(tmp_path: Path) -> None:
    """The notes go to stderr, and the figures still print: the run is not refused."""
    scenario = tmp_path / "typo.toml"
    small = (Path(__file__).parent.parent / "data" / "small-scenario.toml").read_text()
    scenario.write_text(small.replace("restart_service = 0.3", "restart_servce = 0.3"))
    simulated = cli("simulate", str(scenario), "--seeds", "1", "--json")
    assert 0 == simulated.returncode, simulated.stderr
    assert [
        f"note: {scenario}: fault 'overload': success names 'restart_servce', which no rule"
        ' decides: it is never chosen, yet its chance counts in "regret: any action" (did you'
        " mean 'restart_service'?)"
    ] == simulated.stderr.splitlines()
    json.loads(simulated.stdout)


def test_verify_detects_tampering_and_truncation(journal_path: Path, tmp_path: Path) -> None:
    """verify passes on the real journal, then names the first bad seq after an edit, and catches a cut."""
    ok = cli("verify", "--db", str(journal_path))
    assert 0 == ok.returncode
    assert "OK: 46 entries" in ok.stdout
    head = cli("head", "--db", str(journal_path)).stdout.strip()
    copy = tmp_path / "tampered.db"
    copy.write_bytes(journal_path.read_bytes())
    db = sqlite3.connect(copy)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER entries_no_delete")
    db.execute("DELETE FROM entries WHERE seq > 40")
    db.commit()
    cut = cli("verify", "--db", str(copy), "--expect-head", head)
    assert (1, True) == (cut.returncode, "first bad seq 41" in cut.stdout)
    db.execute("UPDATE entries SET ts_ns = ts_ns + 1 WHERE seq = 17")
    db.commit()
    db.close()
    edited = cli("verify", "--db", str(copy), "--json")
    assert 1 == edited.returncode
    assert 17 == json.loads(edited.stdout)["first_bad_seq"]


def test_export_import_round_trip(journal_path: Path, tmp_path: Path) -> None:
    """export then import gives a journal with the same head; an edited export is refused."""
    dump = tmp_path / "dump.jsonl"
    assert 0 == cli("export", "--db", str(journal_path), "--out", str(dump)).returncode
    assert 0o600 == dump.stat().st_mode & 0o777
    lines = dump.read_text().splitlines()
    assert 46 == len(lines)
    first = json.loads(lines[0])["record"]
    assert ("EventReceived", "service_overload") == (first["type"], first["event"]["type"])
    restored = tmp_path / "restored.db"
    out = cli("import", str(dump), "--db", str(restored))
    assert out.returncode == 0, out.stderr
    assert (
        cli("head", "--db", str(journal_path)).stdout == cli("head", "--db", str(restored)).stdout
    )
    again = cli("import", str(dump), "--db", str(restored))
    assert 2 == again.returncode
    edited = [json.loads(line) for line in lines]
    edited[10]["ts_ns"] += 1
    dump.write_text("\n".join(json.dumps(e) for e in edited) + "\n")
    broken = cli("import", str(dump), "--db", str(tmp_path / "broken.db"))
    assert 2 == broken.returncode  # a bad input file is bad input (3 means the journal)
    assert "line 11: the chain breaks at seq 11" in broken.stderr
    assert not (tmp_path / "broken.db").exists()
    assert not list(tmp_path.glob("broken.db*"))


def test_an_export_cut_short_is_refused_given_the_head_export_printed(
    journal_path: Path, tmp_path: Path
) -> None:
    """An export cut at a line's end is a whole chain, only shorter: import took it and said
    "chain verified". export now prints its head, and import --expect-head refuses a file
    that does not hold it, writing nothing."""
    dump = tmp_path / "dump.jsonl"
    exported = cli("export", "--db", str(journal_path), "--out", str(dump))
    head = cli("head", "--db", str(journal_path)).stdout.strip()
    assert f"; head {head} (give it to import --expect-head" in exported.stderr
    whole = cli("import", str(dump), "--db", str(tmp_path / "whole.db"), "--expect-head", head)
    assert 0 == whole.returncode, whole.stderr
    assert whole.stdout.rstrip().endswith(f"Head: {head}")
    assert "" == whole.stderr
    # to standard output, the head is said on stderr: export | import had no word of it
    piped = cli("export", "--db", str(journal_path))
    assert dump.read_text() == piped.stdout
    assert f"to standard output; head {head} (give it to import --expect-head" in piped.stderr
    # without it, the import's word says what checks a file cut short
    unchecked = cli("import", "-", "--db", str(tmp_path / "unchecked.db"), stdin=piped.stdout)
    assert unchecked.stdout.rstrip().endswith(f"Head: {head}")
    assert "note: compare this head with the one export printed, or give that to" in (
        unchecked.stderr
    )
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(dump.read_text().splitlines(keepends=True)[:30]))
    short = cli("import", str(cut), "--db", str(tmp_path / "short.db"), "--expect-head", head)
    assert 2 == short.returncode
    assert f"stops short of the expected head {head}: the export was cut short" in short.stderr
    assert not list(tmp_path.glob("short.db*"))
    other = head.split(":")[0] + ":" + "0" * 64
    forged = cli("import", str(dump), "--db", str(tmp_path / "f.db"), "--expect-head", other)
    assert 2 == forged.returncode
    assert "the export is another journal's, or was rewritten" in forged.stderr
    assert not list(tmp_path.glob("f.db*"))
    # an agent's export holds part of the chain: no head to check it by
    mine = cli("export", "--db", str(journal_path), "--agent", "prod", "--out", str(cut))
    assert "head" not in mine.stderr


def test_state_time_travel_and_stats(journal_path: Path) -> None:
    """state --at shows the state then; stats counts and measures calibration."""
    at = json.loads(
        cli("state", "--db", str(journal_path), "--agent", "prod", "--at", "12", "--json").stdout
    )
    assert (12, 5) == (at["seq"], at["decisions"])
    ambiguous = cli("state", "--db", str(journal_path), "--at", "12")
    assert 2 == ambiguous.returncode
    assert "pick one with --agent" in ambiguous.stderr
    # without --at, the state now (--at was required, though the HTTP API's `at` is not)
    now = json.loads(cli("state", "--db", str(journal_path), "--agent", "prod", "--json").stdout)
    assert (20, 4) == (now["decisions"], now["outcomes"])
    assert (
        "State of agent prod as of seq"
        in cli("state", "--db", str(journal_path), "--agent", "prod").stdout
    )
    stats = json.loads(cli("stats", "--db", str(journal_path), "--agent", "prod", "--json").stdout)
    assert 20 == stats["decisions"]
    assert 4 == sum(c["outcomes"] for c in stats["calibration"])
    assert 20 == sum(stats["per_hour"].values())
    assert "Calibration" in cli("stats", "--db", str(journal_path)).stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["history", "--db", "/nonexistent/none.db"], 3, "no journal at"),
        (["verify", "--db", "NOTAJOURNAL"], 3, "not a SQLite database"),
        (
            ["history", "--since", "yesterday-ish", "--db", "JOURNAL"],
            2,
            "can't read 'yesterday-ish' as a time",
        ),
        (["explain", "seven"], 2, "invalid int value"),
        (["verify", "--expect-head", "12", "--db", "JOURNAL"], 2, "SEQ:HEXDIGEST"),
        # cut short when copied: a usage error, not "TAMPERED" (exit 1) as it was
        (["verify", "--expect-head", "10:", "--db", "JOURNAL"], 2, "64 hex digits"),
        # an empty value (a script's unset variable) was read as no option at all: the
        # truncation check was skipped with exit 0, a silence began now, a bound fell away
        (["verify", "--expect-head", "", "--db", "JOURNAL"], 2, "got ''"),
        (["history", "--since", "", "--db", "JOURNAL"], 2, "can't read '' as a time"),
        (["history", "--until", "", "--db", "JOURNAL"], 2, "can't read '' as a time"),
        (
            ["silence", "add", "--until", "", "--comment", "x", "--db", "JOURNAL"],
            2,
            "can't read '' as a time",
        ),
        (
            ["silence", "add", "--start", "", "--for", "1h", "--comment", "x", "--db", "JOURNAL"],
            2,
            "can't read '' as a time",
        ),
        (["frobnicate"], 2, "no command 'frobnicate'; `adaptive-runtime --help` lists"),
        (["history", "--db", "NEWER"], 3, "written by a newer Adaptive Runtime"),
    ],
)
def test_errors_are_one_line_with_meaningful_exit_codes(
    journal_path: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    """Missing files, files that aren't journals and bad arguments never show a traceback."""
    not_journal = tmp_path / "notes.txt"
    not_journal.write_text("hello " * 1000)
    newer = tmp_path / "newer.db"
    newer.write_bytes(journal_path.read_bytes())
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 3")
    db.close()
    names = {"JOURNAL": str(journal_path), "NOTAJOURNAL": str(not_journal), "NEWER": str(newer)}
    args = [names.get(a, a) for a in args]
    out = cli(*args)
    assert code == out.returncode
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["silence", "add", "--for", "1h", "--comment", "x", "--type", " "], "--type must be a"),
        (["silence", "add", "--for", "1h", "--comment", "x", "--agent", ""], "--agent must be a"),
        (["silence", "add", "--for", "1h", "--comment", "a\tb"], "--comment must be printable"),
        (["silence", "add", "--for", "1h", "--comment", "x", "--by", ""], "--by must be a"),
        (["silence", "end", "sil-0", "--by", ""], "--by must be a"),
        (["approve", "3", "--by", ""], "--by must be a"),
        (["deny", "3", "--comment", "ok\nFAKE LINE"], "--comment must be printable text"),
        (["retry", "3", "--by", " "], "--by must be a"),
        (["dismiss", "3", "--by", "a\x1b[2J"], "--by must be printable text"),
    ],
)
def test_a_bad_text_option_is_refused_by_its_own_name(
    journal_path: Path, args: list[str], message: str
) -> None:
    """`silence add --type ' '` was refused as "event_type must be a non-empty string",
    and `--by ''` as "by must...": names the command line does not have."""
    head = cli("head", "--db", str(journal_path)).stdout
    out = cli(*args, "--db", str(journal_path))
    assert 2 == out.returncode
    assert out.stderr.startswith(f"adaptive-runtime: error: {message}"), out.stderr
    assert head == cli("head", "--db", str(journal_path)).stdout


@pytest.mark.parametrize(
    ("word", "meant"), [("histroy", "history"), ("hist", "history"), ("Verify", "verify")]
)
def test_a_mistyped_command_is_named_with_the_one_meant(word: str, meant: str) -> None:
    """argparse said "invalid choice" and listed all 23 commands."""
    out = cli(word)
    assert (2, "") == (out.returncode, out.stdout)
    assert (
        f"adaptive-runtime: error: no command {word!r}; did you mean {meant}?"
        " `adaptive-runtime --help` lists the commands\n"
    ) == out.stderr


def test_help_shows_the_help_as_git_and_pip_do() -> None:
    """`adaptive-runtime help` was an invalid choice; `help history` shows history's help."""
    whole, one = cli("help"), cli("help", "history")
    assert (0, 0) == (whole.returncode, one.returncode)
    assert whole.stdout.startswith("usage: adaptive-runtime [-h] [--version] COMMAND")
    assert one.stdout.startswith("usage: adaptive-runtime history ")


def test_no_command_lists_the_commands() -> None:
    """`adaptive-runtime` alone said only that a COMMAND is required, naming none."""
    out = cli()
    assert 2 == out.returncode
    assert "demo " in out.stderr
    assert "history " in out.stderr
    assert "Exit codes:" in out.stderr


def test_version_is_the_packages() -> None:
    """`--version` (it had none) prints the version pyproject.toml gives the package."""
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    version = tomllib.loads(pyproject.read_text())["project"]["version"]
    out = cli("--version")
    assert (0, f"adaptive-runtime {version}\n") == (out.returncode, out.stdout)


def test_every_command_has_help_with_an_example() -> None:
    """Each command's --help shows an example."""
    for command in (
        "demo",
        "history",
        "explain",
        "replay",
        "verify",
        "head",
        "export",
        "import",
        "state",
        "stats",
        "agents",
        "plugins",
        "simulate",
        "tail",
    ):
        out = cli(command, "--help")
        assert 0 == out.returncode
        assert "example: adaptive-runtime" in out.stdout, command


def test_bench_reports_a_results_file_or_says_what_to_install(tmp_path: Path) -> None:
    """`bench --from FILE` prints the table for saved results; without the bench extra it says what to install."""
    import importlib.util

    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "benchmarks": [
                    {
                        "name": "test_raw_insert[normal]",
                        "stats": {"median": 0.02},
                        "extra_info": {"events": 2000},
                    },
                    {
                        "name": "test_process[normal]",
                        "stats": {"median": 0.1},
                        "extra_info": {"events": 2000},
                    },
                    {
                        "name": "test_recovery_snapshot_plus_tail",
                        "stats": {"median": 0.002},
                        "extra_info": {"events": 1000},
                    },
                ]
            }
        )
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaptive_runtime",
            "bench",
            "--from",
            str(results),
            "--no-memory",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    if importlib.util.find_spec("pytest_benchmark") is None:
        assert 2 == out.returncode
        assert "pip install -e '.[bench]'" in out.stderr
        return
    assert 0 == out.returncode, out.stderr
    assert "| process(), durability normal" in out.stdout
    assert "| 0.2   | -      | >= 0.45 | NO  |" in out.stdout
    assert (tmp_path / "out" / "summary.json").exists()
    # a missing file, or one that is no pytest-benchmark JSON, ended in a traceback
    (tmp_path / "other.json").write_text('{"results": []}')
    for source, says in (
        ("missing.json", "adaptive-runtime: error: --from missing.json: no such file"),
        (str(tmp_path / "other.json"), "is not a pytest-benchmark JSON file"),
    ):
        bad = cli("bench", "--from", source, "--no-memory", "--out", str(tmp_path / "bad"))
        assert (2, True, False) == (
            bad.returncode,
            says in bad.stderr,
            "Traceback" in bad.stderr,
        ), bad.stderr
    assert not (tmp_path / "bad" / "summary.json").exists()
    blocked = cli("bench", "--from", str(results), "--no-memory", "--out", str(results / "out"))
    assert (2, True) == (
        blocked.returncode,
        "can't make that folder: Not a directory" in (blocked.stderr),
    ), blocked.stderr


# -- regressions from trying the command line as a new user ---------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "99999999999999999999"], "a seq is from 1 to"),
        (["explain", "0"], "a seq is from 1 to"),
        (["history", "--since", "inf"], "can't read 'inf' as a time"),
        (["history", "--since", "1e400"], "'1e400' is out of range"),
        (["history", "--since=-1e999999999"], "'-1e999999999' is out of range"),
        (["history", "--until", "nan"], "can't read 'nan' as a time"),
        (["history", "--since", "99999999999"], "out of range"),
        (["state", "--agent", "prod", "--at", "1e400"], "'1e400' is out of range"),
        (["state", "--agent", "prod", "--at", "\u00b2"], "can't read '\u00b2' as a time"),
        (["history", "--limit", "-1"], "argument --limit: must not be negative, not -1"),
        (["replay", "--rules", "RULES", "--examples", "-1"], "must not be negative, not -1"),
        (["tail", "--lines", "99999999999999999999"], "must be at most 9223372036854775807"),
        # was passed on to bench/report.py, which refused it under its own name
        (["bench", "--runs", "0"], "adaptive-runtime bench: error: argument --runs: must be at"),
        (["head", "--agent", "prod"], "unrecognized arguments: --agent"),
        (["verify", "--agent", "prod"], "unrecognized arguments: --agent"),
        (["import", "DUMP", "--agent", "prod"], "unrecognized arguments: --agent"),
        (["explain", "2", "--agent", "nobody"], "agent 'nobody' has no entries"),
        (["state", "--agent", "nobody", "--at", "3"], "agent 'nobody' has no entries"),
        (["history", "--agent", "nobody"], "its agents are: canary, prod"),
        (["stats", "--agent", "nobody"], "agent 'nobody' has no entries"),
        (["replay", "--verify", "--agent", "nobody"], "agent 'nobody' has no entries"),
        (["export", "--agent", "nobody"], "agent 'nobody' has no entries"),
        (["explain", "2", "--agent", "canary"], "belongs to agent 'prod', not 'canary'"),
        (["replay", "--rules", "LATIN1"], "LATIN1_NAME is not UTF-8 text"),
        (["history", "--since", "1h", "--until", "2h"], "--since 1h is after --until 2h"),
        (["stats", "--plot", "MISSING"], "argument --plot: MISSING_NAME: the folder"),
        (["simulate", "all", "--plot", "MISSING"], "argument --plot: MISSING_NAME: the folder"),
        (["stats", "--plot", "FOLDER"], "is a folder; give a file name"),
        (["export", "--out", "MISSING"], "argument --out: MISSING_NAME: the folder"),
        (["export", "--out", "FOLDER"], "is a folder; give a file name"),
        (["export", "--out", ""], "argument --out: '' names no file; give a file name"),
        # an SVG name ended in matplotlib's "Unknown metadata key(s)", after the work and
        # with a file half written; a name with no suffix was written to NAME.png
        (["stats", "--plot", "plot.svg"], "plots are PNG files: give a name ending in .png"),
        (["stats", "--plot", "plot"], "plots are PNG files: give a name ending in .png"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    journal_path: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    """Overflowing numbers, ignored options and unknown agents are one line with exit 2."""
    rules = tmp_path / "rules.toml"
    rules.write_text("rules = []\n")
    latin1 = tmp_path / "régles.toml"
    latin1.write_bytes("# règles\nrules = []\n".encode("latin-1"))
    missing = tmp_path / "no-such-folder" / "plot.png"
    names = {
        "RULES": str(rules),
        "DUMP": str(rules),
        "LATIN1": str(latin1),
        "MISSING": str(missing),
        "FOLDER": str(tmp_path),
    }
    out = cli(*[names.get(a, a) for a in args], "--db", str(journal_path))
    assert 2 == out.returncode, out.stderr
    expected = message.replace("LATIN1_NAME", str(latin1)).replace("MISSING_NAME", str(missing))
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    assert 1 == len(out.stderr.strip().splitlines()) or "usage:" in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["history"],
        ["tail", "--follow"],
        ["verify"],
        ["approve", "1"],
        ["silence", "list"],
        ["silence", "add", "--type", "timeout", "--for", "1h", "--comment", "deploy"],
    ],
)
def test_a_command_on_a_journal_written_before_it_refuses_memory(args: list[str]) -> None:
    """`history --db memory:` showed an empty journal (0 decisions), and `tail --follow
    --db memory:` waited for ever: each got a new, empty journal of its own."""
    out = cli(*args, "--db", "memory:")
    assert 2 == out.returncode, out.stderr
    assert "--db memory: is a journal held in one process's memory" in out.stderr
    assert 1 == len(out.stderr.strip().splitlines())


def test_plugins_lists_what_is_installed_with_memory_as_with_no_journal() -> None:
    out = cli("plugins", "--db", "memory:")
    assert 0 == out.returncode, out.stderr
    assert "Which are enabled is unknown: --db memory: is a journal held" in out.stdout


def test_a_db_that_is_a_folder_is_called_a_folder(tmp_path: Path) -> None:
    """--db pointing at a folder says so (it used to say to check the folder exists)."""
    out = cli("history", "--db", str(tmp_path))
    assert 3 == out.returncode
    assert f"{tmp_path} is a folder, not a journal file" in out.stderr


def test_a_db_that_is_no_regular_file_is_called_so(tmp_path: Path) -> None:
    """--db naming a pipe or a device said "IOError: disk I/O error", as if the disk failed."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for db in (str(pipe), os.devnull):
        out = cli("history", "--db", db)
        assert 3 == out.returncode
        assert f"{db} is not a regular file (a device, a pipe or a socket)" in out.stderr


def test_the_hosts_stream_is_not_offered_as_an_agent(tmp_path: Path) -> None:
    """An unknown --agent lists the journal's agents; `~host` (silences, approvals...) is
    not one, and a journal holding only it holds no agent."""
    db = str(tmp_path / "h.db")
    assert 0 == cli("silence", "add", "--db", db, "--for", "1h", "--comment", "x").returncode
    out = cli("history", "--db", db, "--agent", "nobody")
    assert 2 == out.returncode
    assert f"agent 'nobody' has no entries in {db}; the journal holds no agent" in out.stderr
    # asked for as an agent, it showed an agent's empty state, history and stats (the API
    # answers 404); its entries are for tail and export
    for command in (["state"], ["history"], ["stats"], ["replay", "--verify"], ["explain", "1"]):
        refused = cli(*command, "--db", db, "--agent", "~host")
        assert 2 == refused.returncode, command
        assert "~host is the journal's own stream (the operators' controls), not an agent" in (
            refused.stderr
        )
    for command in (["tail"], ["export"]):
        shown = cli(*command, "--db", db, "--agent", "~host")
        assert (0, True) == (shown.returncode, "SilenceSet" in shown.stdout), command


HOSTILE = "evil\x1b]0;pwned\x07\nFAKE LINE\r\x9b31m\u202eok"
"""Text that drives a terminal: an OSC title, a bell, a line of its own, a carriage
return, a C1 CSI and a bidi override."""


def test_output_a_stream_cannot_encode_is_escaped_not_a_failure(tmp_path: Path) -> None:
    """With PYTHONIOENCODING=ascii, the demo stopped part way, exit 2: "'ascii' codec can't
    encode character '\\u2192'". A character the stream can't hold is written escaped."""
    out = cli("demo", "--db", str(tmp_path / "a.db"), "--quiet", env={"PYTHONIOENCODING": "ascii"})
    assert 0 == out.returncode, out.stderr
    assert "service_overload          \\u2192 scale_up_immediate" in out.stdout
    assert "Run the demo again" in out.stdout

    async def decide() -> None:  # a character past U+FFFF too: its escape is a JSON pair
        async with Runtime("web", tmp_path / "b.db", clock=ManualClock()) as runtime:
            await runtime.process({"type": "timeout", "note": "caf\u00e9 \U0001f600"})

    asyncio.run(decide())
    exported = cli("export", "--db", str(tmp_path / "b.db"))
    ascii_only = cli("export", "--db", str(tmp_path / "b.db"), env={"PYTHONIOENCODING": "ascii"})
    assert 0 == ascii_only.returncode, ascii_only.stderr
    assert "\\ud83d\\ude00" in ascii_only.stdout
    assert [json.loads(line) for line in exported.stdout.splitlines()] == [
        json.loads(line) for line in ascii_only.stdout.splitlines()
    ]


def test_journaled_text_reaches_the_terminal_as_text(tmp_path: Path) -> None:
    """An event's strings, and an agent id that the library's caller chose (an event's
    agent_id field must be printable; Runtime(agent_id=...) is the program's own), neither
    drive the terminal nor add lines: every command shows them escaped, and export keeps
    them exact (its import has the same head)."""
    agent = "old\x1b[2Jagent\nFAKE"
    path = tmp_path / "hostile.db"

    async def write() -> None:
        runtime = Runtime(agent_id=agent, path=path, clock=ManualClock())

        @runtime.action("restart_service", retry=RetryPolicy(max_attempts=1))
        async def restart(call: ActionCall) -> None:  # its error's text is journaled too
            raise ConnectionError(HOSTILE)

        async with runtime:
            await runtime.process({**EVENTS[0], "source": HOSTILE, "id": "ev\x1b[1"})
            await runtime.wait_for_actions()

    asyncio.run(write())
    [item] = json.loads(cli("history", "--db", str(path), "--json").stdout)
    dump = tmp_path / "hostile.jsonl"
    for args in (
        ("explain", str(item["seq"])),
        ("history",),
        ("agents",),
        ("tail",),
        ("state", "--agent", agent, "--at", "100"),
        ("export", "--out", str(dump)),
        ("export",),
        ("explain", str(item["seq"]), "--agent", "nobody\x1b[2J"),
    ):
        out = cli(*args, "--db", str(path))
        assert out.returncode == (2 if "nobody\x1b[2J" in args else 0), out.stderr
        for text in (out.stdout, out.stderr):
            assert not set(text) & set("\x1b\x07\r\x9b\u202e"), (args, text)
            assert not any(line.startswith("FAKE") for line in text.splitlines()), (args, text)
    explained = cli("explain", str(item["seq"]), "--db", str(path)).stdout
    assert "failed: ConnectionError: evil\\x1b]0;pwned" in explained
    assert "source=evil\\x1b]0;pwned\\x07\\nFAKE LINE\\r\\x9b31m\\u202eok" in explained
    copy = tmp_path / "copy.db"
    assert 0 == cli("import", str(dump), "--db", str(copy)).returncode
    assert cli("head", "--db", str(path)).stdout == cli("head", "--db", str(copy)).stdout


def test_import_reads_an_export_through_a_pipe(journal_path: Path, tmp_path: Path) -> None:
    """A path that names a pipe (what `import <(gunzip -c dump.gz)` passes) is read, not
    refused as missing: /dev/stdin with the export on stdin stands for one."""
    dump = cli("export", "--db", str(journal_path)).stdout
    restored = tmp_path / "restored.db"
    out = cli("import", "/dev/stdin", "--db", str(restored), stdin=dump)
    assert out.returncode == 0, out.stderr
    assert (
        cli("head", "--db", str(journal_path)).stdout == cli("head", "--db", str(restored)).stdout
    )


def test_import_reads_an_export_an_editor_saved_with_a_bom_and_crlf(
    journal_path: Path, tmp_path: Path
) -> None:
    """An export opened and saved again on Windows (a byte-order mark, CRLF line ends)
    imports with the same head; the BOM made line 1 "not an exported journal entry"."""
    dump = cli("export", "--db", str(journal_path)).stdout
    saved = tmp_path / "saved.jsonl"
    saved.write_bytes(b"\xef\xbb\xbf" + dump.replace("\n", "\r\n").encode())
    restored = tmp_path / "restored.db"
    out = cli("import", str(saved), "--db", str(restored))
    assert out.returncode == 0, out.stderr
    assert (
        cli("head", "--db", str(journal_path)).stdout == cli("head", "--db", str(restored)).stdout
    )


def test_an_import_started_while_another_runs_into_the_same_file_is_refused(
    journal_path: Path, tmp_path: Path
) -> None:
    """Two imports into one file shared `<file>.partial`: the second deleted the first's
    partial journal under it and built its own there, and each failed, or one put a
    journal in place that the other went on writing to. The second is now refused, and
    the first is left to finish."""
    dump = tmp_path / "dump.jsonl"
    cli("export", "--db", str(journal_path), "--out", str(dump))
    target = tmp_path / "new.db"
    with built_aside(target) as partial:  # the first import, running
        journal = SqliteJournal(partial, durability="normal")
        journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"mid-import")])
        second = cli("import", str(dump), "--db", str(target))
        assert 3 == second.returncode
        assert f"another import into {target} is running" in second.stderr
        assert 1 == journal.head().seq  # its partial journal untouched
        journal.close()
    assert 1 == SqliteJournal(target, create=False).head().seq  # and put in place
    assert not Path(partial).exists()


def test_an_import_left_by_a_kill_is_started_afresh(journal_path: Path, tmp_path: Path) -> None:
    """A partial journal (and its -wal) left by an import killed with -9 holds no lock:
    the next import into the same file takes it over and starts from nothing."""
    dump = tmp_path / "dump.jsonl"
    cli("export", "--db", str(journal_path), "--out", str(dump))
    target = tmp_path / "new.db"
    left = SqliteJournal(tmp_path / "new.db.partial", durability="normal")
    left.append([Pending(stream="a", kind="K", ts_ns=1, body=b"left by a killed import")])
    left.close()
    (tmp_path / "new.db.partial-wal").write_bytes(b"not a WAL of this file")
    out = cli("import", str(dump), "--db", str(target))
    assert 0 == out.returncode, out.stderr
    assert cli("head", "--db", str(journal_path)).stdout == cli("head", "--db", str(target)).stdout
    assert ["new.db"] == sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("new"))


def test_an_import_never_replaces_a_journal_made_while_it_ran(
    journal_path: Path, tmp_path: Path
) -> None:
    """An import checked that its file did not exist when it began, then renamed its
    partial journal over whatever was there when it ended: a runtime started on that
    file meanwhile had what it journaled replaced, and lost. (The import reads a pipe
    here, so that it is still running when the journal is made.)"""
    dump = cli("export", "--db", str(journal_path)).stdout.splitlines(keepends=True)
    target = tmp_path / "new.db"
    importing = subprocess.Popen(
        [sys.executable, "-m", "adaptive_runtime", "import", "-", "--db", str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert importing.stdin is not None
    importing.stdin.write(dump[0])
    importing.stdin.flush()
    for _ in range(6000):  # until the import has begun its partial journal (a guard of 60 s)
        if (tmp_path / "new.db.partial").exists() or importing.poll() is not None:
            break
        time.sleep(0.01)
    meanwhile = SqliteJournal(target, durability="normal")
    meanwhile.append([Pending(stream="a", kind="K", ts_ns=1, body=b"journaled meanwhile")])
    meanwhile.close()
    out, err = importing.communicate("".join(dump[1:]), timeout=120)
    assert 3 == importing.returncode, out + err
    assert f"{target} was made while the import ran" in err
    assert 1 == SqliteJournal(target, create=False).head().seq
    assert not (tmp_path / "new.db.partial").exists()


def test_import_of_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    """import missing.jsonl is exit 2 with a plain message (it was exit 3 with raw [Errno 2])."""
    out = cli("import", str(tmp_path / "missing.jsonl"), "--db", str(tmp_path / "new.db"))
    assert 2 == out.returncode
    assert "missing.jsonl: it does not exist" in out.stderr
    assert "Errno" not in out.stderr
    assert not (tmp_path / "new.db").exists()


def test_history_since_returns_decisions_after_the_clock_stepped_back(tmp_path: Path) -> None:
    """Every decision stamped at or after --since is listed, even past an older-stamped one."""
    path = tmp_path / "steps.db"

    async def write() -> None:
        clock = ManualClock(start_ns=1_764_000_000 * 10**9)
        async with Runtime(agent_id="a", path=path, clock=clock, durability="normal") as r:
            await r.process(EVENTS[0])  # t0
            clock.advance(-3600)  # the clock steps back an hour
            await r.process(EVENTS[1])  # t0 - 1h
            clock.advance(7200)
            await r.process(EVENTS[2])  # t0 + 1h

    asyncio.run(write())
    out = cli("history", "--db", str(path), "--since", str(1_764_000_000), "--json")
    assert [6, 2] == [item["seq"] for item in json.loads(out.stdout)]


def test_a_time_is_read_and_shown_to_its_nanosecond(tmp_path: Path) -> None:
    """A time was read through a float: `--since 1764000000.12345679` (…790 ns) took in a
    decision stamped at …789 ns, a few hundred nanoseconds before it. And one stamped in
    the last half microsecond of a second was shown as the next second."""
    path = tmp_path / "ns.db"
    stamped = 1_764_000_000_123_456_789

    async def write() -> None:
        clock = ManualClock(start_ns=stamped)
        async with Runtime(agent_id="a", path=path, clock=clock, durability="normal") as r:
            await r.process(EVENTS[0])
            clock.advance((10**9 - 123_456_789 - 1) / 1e9)  # to …000.999999999
            await r.process(EVENTS[1])

    asyncio.run(write())

    def since(text: str) -> list[int]:
        out = cli("history", "--db", str(path), "--since", text, "--json")
        return [item["seq"] for item in json.loads(out.stdout)]

    assert [4, 2] == since("1764000000.123456789")
    assert [4] == since("1764000000.12345679")
    assert [4] == since("1764000000.999999999")
    assert [4, 2] == since("2025-11-24T16:00:00.123456+00:00")
    assert [4] == since("2025-11-24T16:00:00.123457+00:00")
    assert [] == since("1764000001")
    when = cli("history", "--db", str(path), "--limit", "1").stdout
    assert re.search(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:(\d\d)\b", when).group(1) == (  # type: ignore[union-attr]
        time.strftime("%S", time.localtime(1_764_000_000))
    )


def test_one_decision_is_not_plural(journal_path: Path, tmp_path: Path) -> None:
    """`history --limit 1` says "1 decision shown", not "1 decisions"; and so do stats,
    replay --verify, verify, export and import (they said "1 decisions", "1 entries")."""
    out = cli("history", "--db", str(journal_path), "--limit", "1")
    assert "\n1 decision shown, newest first (older ones match too" in out.stdout
    canary = ["--db", str(journal_path), "--agent", "canary"]  # one event, one decision
    assert cli("stats", *canary).stdout.startswith("1 decision for agent canary\n")
    assert "OK: 1 decision re-decided" in cli("replay", "--verify", *canary).stdout
    one = tmp_path / "one.jsonl"
    one.write_text(cli("export", "--db", str(journal_path)).stdout.splitlines()[0] + "\n")
    imported = cli("import", str(one), "--db", str(tmp_path / "one.db"))
    assert imported.stdout.startswith("Imported 1 entry into "), imported.stderr
    assert cli("verify", "--db", str(tmp_path / "one.db")).stdout.startswith("OK: 1 entry, ")
    exported = cli("export", "--db", str(tmp_path / "one.db"), "--out", str(tmp_path / "o.jsonl"))
    assert "Exported 1 entry to " in exported.stderr


def test_replay_mismatch_table_shows_the_values_that_differ(tmp_path: Path) -> None:
    """A decision whose ts_ns was forged shows both times, not the same action twice."""
    path = tmp_path / "forged.db"

    async def write() -> None:
        async with Runtime(agent_id="a", path=path, clock=ManualClock(), durability="normal") as r:
            await r.process(EVENTS[0])

    asyncio.run(write())
    import msgspec

    from adaptive_runtime.records import DecisionMade, decode_record, encode_record

    db = sqlite3.connect(path)
    body = db.execute("SELECT body FROM entries WHERE seq = 2").fetchone()[0]
    record = decode_record(body)
    assert isinstance(record, DecisionMade)
    forged = DecisionMade(msgspec.structs.replace(record.decision, ts_ns=12345))
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET body = ? WHERE seq = 2", (encode_record(forged),))
    db.commit()
    db.close()
    out = cli("replay", "--verify", "--db", str(path))
    assert 1 == out.returncode
    row = next(line for line in out.stdout.splitlines() if line.startswith("2 "))
    assert ["2", "ts_ns", "12345", "1700000000000000000"] == row.split()


def test_verify_json_after_a_failed_quick_check_counts_the_entries(
    journal_path: Path, tmp_path: Path
) -> None:
    """A damaged page fails quick_check, and the report still gives the real entry count and head."""
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(journal_path.read_bytes())
    db = sqlite3.connect(damaged)
    db.execute("CREATE TABLE filler (x TEXT)")
    db.executemany("INSERT INTO filler VALUES (?)", [(f"row {i}",) for i in range(50)])
    db.execute("CREATE INDEX filler_x ON filler(x)")
    db.commit()
    root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'filler_x'").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(damaged.read_bytes())
    data[(root - 1) * page_size] = 0x07  # not a valid b-tree page type: the index is damaged
    damaged.write_bytes(bytes(data))
    out = cli("verify", "--db", str(damaged), "--json")
    report = json.loads(out.stdout)
    assert 1 == out.returncode
    assert (False, 46) == (report["ok"], report["entries"])
    assert report["head"].startswith("46:")
    assert "quick_check" in report["problem"]


def test_verify_of_a_file_sqlite_cannot_read_reports_it_damaged(
    journal_path: Path, tmp_path: Path
) -> None:
    """A journal cut in half failed verify with exit 3 and "run `adaptive-runtime verify`",
    the command that said it. Damage is what verify looks for: a finding, exit 1."""
    cut = tmp_path / "cut in half.db"
    whole = journal_path.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    out = cli("verify", "--db", str(cut))
    assert 1 == out.returncode, out.stderr
    assert out.stdout.startswith(f"DAMAGED: {cut} can't be read (")
    assert "Restore it from a backup or an export" in out.stdout
    assert f"`sqlite3 '{cut}' .recover` may salvage" in out.stdout
    assert "run `adaptive-runtime verify" not in out.stdout + out.stderr
    report = json.loads(cli("verify", "--db", str(cut), "--json").stdout)
    assert (False, True) == (report["ok"], report["problem"].startswith(f"{cut} can't be read"))
    history = cli("history", "--db", str(cut))  # every other command points to verify
    assert 3 == history.returncode
    assert f"run `adaptive-runtime verify --db '{cut}'`" in history.stderr


def test_an_out_that_is_no_regular_file_is_refused_and_left_as_it_is(
    journal_path: Path, tmp_path: Path
) -> None:
    """export --out /dev/full, as root, replaced the device with a regular file holding the
    export (and said it was exported); --out on a pipe would have waited for a writer. A
    device, a pipe, or a link to one (/dev/stdout is a link) is refused before any work."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    link = tmp_path / "stdout"
    link.symlink_to(pipe)
    for out_arg in (str(pipe), str(link), os.devnull):
        out = cli("export", "--db", str(journal_path), "--out", out_arg)
        assert 2 == out.returncode, out.stderr
        assert f"{out_arg} is not a regular file (a device, a pipe or a socket)" in out.stderr
    plot = tmp_path / "plot.png"
    os.mkfifo(plot)
    out = cli("stats", "--db", str(journal_path), "--plot", str(plot))
    assert 2 == out.returncode, out.stderr
    assert f"{plot} is not a regular file" in out.stderr
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert link.is_symlink()
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_export_out_replaces_a_symlink_and_writes_0600(journal_path: Path, tmp_path: Path) -> None:
    """export --out LINK replaces the link instead of writing through it; the file is 0600."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    link = tmp_path / "dump.jsonl"
    link.symlink_to(target)
    assert 0 == cli("export", "--db", str(journal_path), "--out", str(link)).returncode
    assert "keep me\n" == target.read_text()
    assert not link.is_symlink()
    assert 0o600 == link.stat().st_mode & 0o777
    existing = tmp_path / "existing.jsonl"
    existing.write_text("old\n")
    existing.chmod(0o644)
    assert 0 == cli("export", "--db", str(journal_path), "--out", str(existing)).returncode
    assert 0o600 == existing.stat().st_mode & 0o777
    assert 46 == len(existing.read_text().splitlines())
    assert [] == list(tmp_path.glob(".*"))  # no temporary file left behind


def _forged_journal(path: Path, kind: str, body: bytes, ts_ns: int = 1) -> None:
    """A journal whose second entry is self-consistent (chained) but not what the runtime writes."""
    from adaptive_runtime.journal import Pending, SqliteJournal
    from adaptive_runtime.records import EventReceived, to_pending

    journal = SqliteJournal(path, durability="normal")
    try:
        journal.append([to_pending("a", EventReceived(Event(type="ok")), 1, "e1")])
        journal.append([Pending(stream="a", kind=kind, ts_ns=ts_ns, body=body)])
    finally:
        journal.close()


def _deep_body() -> bytes:
    from adaptive_runtime.records import StatePatched, encode_record

    shallow = encode_record(StatePatched(values={"a": None}))
    return shallow.replace(b"\xc0", b"\x91" * 100_000 + b"\xc0", 1)


def _forgeries() -> dict[str, tuple[str, bytes]]:
    from adaptive_runtime.records import EventReceived, encode_record

    nan_event = encode_record(EventReceived(Event(type="x"))).replace(
        b"\xa1x", b"\xa1x\xa8severity\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 1
    )
    return {
        "a DecisionMade holding an event": (
            "DecisionMade",
            encode_record(EventReceived(Event(type="x"))),
        ),
        "a body nested 100,000 deep": ("StatePatched", _deep_body()),
        "an empty event type": ("EventReceived", encode_record(EventReceived(Event(type="")))),
        "a NaN severity": ("EventReceived", nan_event),
        "a 1 MB string": (
            "EventReceived",
            encode_record(EventReceived(Event(type="x", attrs={"s": "a" * 1_000_000}))),
        ),
        "garbage": ("EventReceived", b"\xc1\xc1"),
    }


@pytest.mark.parametrize("name", list(_forgeries()))
def test_import_refuses_entries_the_runtime_would_not_journal(tmp_path: Path, name: str) -> None:
    """A self-consistent export of a forged entry is refused at its line, exit 2, nothing left."""
    kind, body = _forgeries()[name]
    source = tmp_path / "forged.db"
    _forged_journal(source, kind, body)
    dump = tmp_path / "dump.jsonl"
    assert 0 == cli("export", "--db", str(source), "--out", str(dump)).returncode
    out = cli("import", str(dump), "--db", str(tmp_path / "copy.db"))
    assert 2 == out.returncode, out.stderr
    assert out.stderr.startswith("adaptive-runtime: error: line 2 ")
    assert 1 == len(out.stderr.splitlines())
    assert not list(tmp_path.glob("copy.db*"))


def test_what_the_runtime_journals_an_import_takes(tmp_path: Path) -> None:
    """Export, then import, of what a runtime wrote: learned decisions whose confidence is
    many times their prior (history_weight up to 19.8, which the import capped at 2), and
    an event past the default max_event_bytes that its host was set to take."""
    path = tmp_path / "j.db"
    kinds = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]

    async def write() -> float:
        heaviest = 0.0
        async with Runtime(agent_id="a", path=path, durability="normal") as runtime:
            for i in range(40):
                d = await runtime.process({"type": kinds[i % 5], "severity": (i % 10) / 10})
                heaviest = max(heaviest, d.history_weight)
                if i % 7 == 0:
                    await runtime.record_outcome(d, success=i % 2 == 0)
        async with Runtime(agent_id="b", path=path, max_event_bytes=4 << 20) as runtime:
            await runtime.process(
                {"type": "timeout", "severity": 0.5, "log": [["x" * 4000] * 200] * 3}
            )
        return heaviest

    assert asyncio.run(write()) > 2  # a learned confidence of 0.24 over a prior of 0.05
    dump = tmp_path / "dump.jsonl"
    assert 0 == cli("export", "--db", str(path), "--out", str(dump)).returncode
    refused = cli("import", str(dump), "--db", str(tmp_path / "refused.db"))
    assert 2 == refused.returncode
    assert "larger than 1,048,576 bytes" in refused.stderr
    assert "give --max-event-bytes as its max_event_bytes" in refused.stderr
    out = cli(
        "import", str(dump), "--db", str(tmp_path / "copy.db"), "--max-event-bytes", "4194304"
    )
    assert 0 == out.returncode, out.stderr
    assert (
        cli("head", "--db", str(path)).stdout
        == cli("head", "--db", str(tmp_path / "copy.db")).stdout
    )


def test_an_export_or_a_plot_never_replaces_a_journal(journal_path: Path, tmp_path: Path) -> None:
    """`export --db j.db --out j.db` wrote the export over the journal it read: gone."""
    head = cli("head", "--db", str(journal_path)).stdout
    for args in (["export", "--out"], ["stats", "--plot"]):
        out = cli(*args, str(journal_path), "--db", str(journal_path))
        assert 2 == out.returncode
        assert (
            "is a SQLite database or its WAL (a journal?), which this never replaces" in out.stderr
        )
    assert head == cli("head", "--db", str(journal_path)).stdout
    fine = tmp_path / "old-export.jsonl"
    fine.write_text("an older export\n")
    assert 0 == cli("export", "--db", str(journal_path), "--out", str(fine)).returncode


def test_an_export_is_the_journal_as_it_began(tmp_path: Path) -> None:
    """Entries appended while an export runs are not in it: it ends at the head it began at."""
    from adaptive_runtime.journal import Pending, SqliteJournal
    from adaptive_runtime.journal.export import export_lines
    from adaptive_runtime.journal.sqlite import PAGE

    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    try:  # more than a page, so that the export reads again after the append
        journal.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x") for i in range(PAGE)])
        lines = export_lines(journal)
        first = next(lines)
        journal.append([Pending(stream="a", kind="K", ts_ns=9, body=b"y")])  # meanwhile
        seqs = [json.loads(line)["seq"] for line in [first, *lines]]
        assert list(range(1, PAGE + 1)) == seqs
    finally:
        journal.close()


def test_import_refuses_a_time_past_2_63(journal_path: Path, tmp_path: Path) -> None:
    """ts_ns of 2**63 is a line-numbered refusal, not an OverflowError from the import."""
    dump = tmp_path / "dump.jsonl"
    cli("export", "--db", str(journal_path), "--out", str(dump))
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    lines[0]["ts_ns"] = 2**63
    dump.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = cli("import", str(dump), "--db", str(tmp_path / "copy.db"))
    assert 2 == out.returncode
    assert "line 1 starts a batch this journal may not hold" in out.stderr
    assert "2**63-1" in out.stderr


@pytest.mark.parametrize("name", list(_forgeries()))
def test_read_paths_meet_a_forged_entry_with_journal_corrupt_error(
    tmp_path: Path, name: str
) -> None:
    """history, stats, explain, replay, export and start() name the seq; never a traceback."""
    kind, body = _forgeries()[name]
    path = tmp_path / "forged.db"
    _forged_journal(path, kind, body)
    undecodable = kind != "EventReceived" or name == "garbage"
    for args in (
        ["history"],
        ["stats"],
        ["explain", "2"],
        ["replay", "--verify"],
        ["state", "--at", "2"],
        ["export"],
    ):
        out = cli(*args, "--db", str(path))
        assert "Traceback" not in out.stderr, (args, out.stderr)
        assert out.returncode in (0, 1, 2, 3), (args, out.stderr)
        if out.returncode == 3:
            assert "seq 2" in out.stderr, (args, out.stderr)
    if undecodable:
        assert 3 == cli("replay", "--verify", "--db", str(path)).returncode

    async def start() -> None:
        async with Runtime(agent_id="a", path=path, durability="normal"):
            pass

    if kind != "EventReceived":  # the fold reads every kind but an event's body
        from adaptive_runtime import JournalCorruptError

        with pytest.raises(JournalCorruptError) as raised:
            asyncio.run(start())
        assert 2 == raised.value.seq


def test_agents_lists_each_agent_with_its_last_decision_and_open_actions(
    journal_path: Path,
) -> None:
    """`agents` shows entries, decisions, the last decision and open actions per agent."""
    out = cli("agents", "--db", str(journal_path), "--json")
    assert 0 == out.returncode, out.stderr
    found = {a["agent"]: a for a in json.loads(out.stdout)}
    assert ["canary", "prod"] == sorted(found)
    assert (44, 20, 0) == (
        found["prod"]["entries"],
        found["prod"]["decisions"],
        found["prod"]["open_actions"],
    )
    assert "anomaly_detected" == found["canary"]["last_decision"]["event_type"]
    text = cli("agents", "--db", str(journal_path)).stdout
    assert "2 agents." in text
    # the seq column was headed "last seq", read as the agent's last entry's
    assert ["agent", "entries", "decisions", "last", "decision", "decided", "action", "open",
            "actions"] == text.splitlines()[0].split()  # fmt: skip
    prod = next(line.split() for line in text.splitlines() if line.startswith("prod "))
    assert str(found["prod"]["last_decision"]["seq"]) == prod[3]


def test_db_takes_a_sqlite_url(journal_path: Path) -> None:
    """--db sqlite:///PATH reads the same journal as the plain path."""
    plain = cli("head", "--db", str(journal_path))
    url = cli("head", "--db", f"sqlite:///{journal_path}")
    assert 0 == url.returncode, url.stderr
    assert plain.stdout == url.stdout
    bad = cli("head", "--db", "mysql://host/db")
    assert 2 == bad.returncode
    assert "unknown journal URL scheme 'mysql'" in bad.stderr


def test_a_three_slash_url_that_finds_nothing_says_it_read_an_absolute_path(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy reads sqlite:///ops.db as ./ops.db; here it is /ops.db, and "no journal
    at /ops.db; check --db" left the user to work out why."""
    monkeypatch.chdir(journal_path.parent)
    name = journal_path.name
    assert not Path("/", name).exists()
    out = cli("head", "--db", f"sqlite:///{name}")
    assert 3 == out.returncode
    assert (
        f"adaptive-runtime: error: no journal at /{name}: sqlite:///{name} names the absolute"
        f" path /{name}; for {name} under the working folder, write sqlite://{name} or {name}\n"
    ) == out.stderr
    relative = cli("head", "--db", f"sqlite://{name}")
    assert (0, cli("head", "--db", name).stdout) == (relative.returncode, relative.stdout)


def test_tail_prints_the_newest_entries_one_line_each(journal_path: Path) -> None:
    out = cli("tail", "-n", "3", "--db", str(journal_path))
    assert 0 == out.returncode, out.stderr
    lines = out.stdout.splitlines()
    assert 3 == len(lines)
    assert lines[-1].split()[0] == cli("head", "--db", str(journal_path)).stdout.split(":")[0]
    data = [
        json.loads(line)
        for line in cli("tail", "-n", "2", "--json", "--db", str(journal_path)).stdout.splitlines()
    ]
    assert [d["seq"] for d in data] == [int(lines[-2].split()[0]), int(lines[-1].split()[0])]
    everything = cli("tail", "--after", "0", "--json", "--db", str(journal_path))
    assert 0 == everything.returncode, everything.stderr  # 0 was refused: "a seq is from 1"
    seqs = [json.loads(line)["seq"] for line in everything.stdout.splitlines()]
    assert list(range(1, int(lines[-1].split()[0]) + 1)) == seqs
    head = seqs[-1]
    past = cli("tail", "--after", str(head + 990), "--db", str(journal_path))
    assert (0, "") == (past.returncode, past.stdout)  # a seq of another journal, maybe: said
    assert (
        f"note: --after {head + 990} is past the journal's head (seq {head}): there is"
        " nothing after it"
    ) in past.stderr
    # --lines beside --after was left unused: every entry after 5 was printed, in silence
    both = cli("tail", "--after", "5", "-n", "2", "--db", str(journal_path))
    assert (2, "") == (both.returncode, both.stdout)
    assert "give --after or --lines, not both: --after 5 shows every entry after it" in both.stderr
    assert 10 == len(cli("tail", "--db", str(journal_path)).stdout.splitlines())  # the default


async def test_tail_says_what_each_step_of_an_action_and_each_request_is(tmp_path: Path) -> None:
    """tail showed only the kind of every entry but events, decisions and outcomes:
    `ActionFailed` with no error, `SilenceSet` with nothing of the silence. It now shows
    what the live stream's message says, with control characters escaped."""
    from adaptive_runtime import ApprovalPolicy

    db = tmp_path / "t.db"
    host = Host(db, clock=ManualClock(), approvals=ApprovalPolicy(actions=("restart_service",)))

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        pass

    @host.action("flag_for_review", retry=RetryPolicy(max_attempts=1))
    async def review(call: ActionCall) -> None:
        raise RuntimeError("queue\x1b[2J down")

    async with host:
        overload = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
        d = await host.process({**overload, "agent_id": "a"})
        await host.process({"type": "anomaly_detected", "severity": 0.6, "agent_id": "c"})
        await host.controls.answer(d.seq, approve=True, by="alice", comment="ok")
        await host.wait_for_actions()
    assert 0 == cli("silence", "add", "--db", str(db), "--agent", "a", "--for", "1h",
                    "--comment", "deploy", "--by", "ops").returncode  # fmt: skip
    out = cli("tail", "--after", "0", "--db", str(db))
    assert 0 == out.returncode, out.stderr
    said = [line.split("  ", 3)[-1] for line in out.stdout.splitlines()]
    for line in (
        f"ActionAwaitingApproval  restart_service awaiting_approval decision={d.seq}:"
        " restart_service needs approval",
        "ActionFailed  flag_for_review failed decision=",
        "ActionAbandoned  flag_for_review abandoned decision=",
        f"ApprovalGiven  approval_answered agent=a decision={d.seq} approve=True by alice: ok",
        f"ApprovalDecided  restart_service approved decision={d.seq} by alice: ok",
        f"ActionSucceeded  restart_service succeeded decision={d.seq} attempt=1",
        "SilenceSet  silence sil-",
    ):
        assert any(s.startswith(line) for s in said), (line, said)
    assert "RuntimeError: queue\\x1b[2J down" in out.stdout  # escaped, not sent to the terminal
    assert "\x1b" not in out.stdout
    assert any(s.startswith("SilenceSet") and s.endswith("by ops: deploy") for s in said)


def test_follow_on_sqlite_sees_every_entry_once_while_another_process_writes(
    tmp_path: Path,
) -> None:
    """follow() polls a SQLite journal by seq: every entry another process commits, once,
    in order."""
    import threading

    from adaptive_runtime.journal import SqliteJournal
    from adaptive_runtime.journal.follow import follow

    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    script = textwrap.dedent(
        f"""
        from adaptive_runtime.journal import Pending, SqliteJournal
        journal = SqliteJournal({str(path)!r}, durability="normal")
        for i in range(100):
            journal.append([Pending(stream="w", kind="K", ts_ns=i, body=b"x")])
        journal.close()
        """
    )
    seen: list[int] = []
    done = threading.Event()
    reader = SqliteJournal(path)

    def read() -> None:
        for entry in follow(reader, poll=0.01, stop=done.is_set):
            seen.append(entry.seq)
            if len(seen) == 100:
                return

    follower = threading.Thread(target=read)
    follower.start()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    follower.join(timeout=60)
    done.set()
    reader.close()
    assert list(range(1, 101)) == seen


@pytest.mark.usefixtures("read_only_storage")
def test_the_read_commands_read_a_journal_on_read_only_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auditing a backup on read-only storage: every command that only reads works (each
    failed with "read-only to this process"), opening the file for reading only and
    leaving no file beside it; a command that writes still opens it to write."""
    from adaptive_runtime.cli import main
    from adaptive_runtime.journal import SqliteJournal

    db = tmp_path / "ops.db"

    async def decide() -> None:
        async with Runtime("web", db, clock=ManualClock()) as runtime:
            await runtime.process({"type": "service_overload", "severity": 0.9, "cpu": 95})
            await runtime.process({"type": "timeout", "severity": 0.3})

    asyncio.run(decide())

    def opened_to_write(*args: object) -> None:
        raise JournalError("opened to write")

    monkeypatch.setattr(SqliteJournal, "_open_writable", opened_to_write)
    before = sorted(p.name for p in tmp_path.iterdir())
    reads = [
        ["history"],
        ["explain", "2"],
        ["verify"],
        ["head"],
        ["export"],
        ["state"],
        ["stats"],
        ["agents"],
        ["tail"],
        ["replay", "--verify"],
        ["approvals"],
        ["actions"],
        ["actions", "--failed"],
        ["silence", "list"],
    ]
    for command in reads:
        assert 0 == main([*command, "--db", str(db)]), (command, capsys.readouterr().err)
    said = capsys.readouterr()
    assert "OK: 4 entries, hash chain intact" in said.out
    # no warning: export's word of its head is all
    assert ["Exported 4 entries to standard output"] == [
        line.split(";")[0] for line in said.err.splitlines()
    ]
    assert 3 == main(["dismiss", "2", "--by", "auditor", "--db", str(db)])
    assert "opened to write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _exported(path: Path) -> list[dict[str, object]]:
    from adaptive_runtime.journal import SqliteJournal
    from adaptive_runtime.journal.export import export_lines

    journal = SqliteJournal(path, create=False)
    try:
        return [json.loads(line) for line in export_lines(journal)]
    finally:
        journal.close()


def _import_of(lines: list[dict[str, object]]) -> str:
    """Import lines into a new memory journal; return its head as `head` prints it."""
    from adaptive_runtime.journal import MemoryJournal
    from adaptive_runtime.journal.export import import_lines

    journal = MemoryJournal()
    import_lines(journal, [json.dumps(line) for line in lines])
    return str(journal.head())


def _decision_line(lines: list[dict[str, object]]) -> dict[str, Any]:
    return next(line for line in lines if line["kind"] == "DecisionMade")


def _edit_action(lines: list[dict[str, Any]]) -> None:
    _decision_line(lines)["record"]["decision"]["action"] = "page_human"


def _edit_seq(lines: list[dict[str, Any]]) -> None:
    lines[3]["seq"] = 30


def _edit_stream_seq(lines: list[dict[str, Any]]) -> None:
    lines[3]["stream_seq"] += 1


def _seq_as_float(lines: list[dict[str, Any]]) -> None:
    lines[3]["seq"] = float(lines[3]["seq"])


def _edit_a_bool(lines: list[dict[str, Any]]) -> None:
    event = lines[0]["record"]["event"]
    event["attrs"]["flag"] = True  # the body holds no attribute: the copy gained one


def _drop_the_record(lines: list[dict[str, Any]]) -> None:
    lines[0]["record"] = None


def _drop_the_action(lines: list[dict[str, Any]]) -> None:
    del _decision_line(lines)["record"]["decision"]["action"]


def _drop_the_kind(lines: list[dict[str, Any]]) -> None:
    del lines[0]["kind"]


def _an_infinite_id(lines: list[dict[str, Any]]) -> None:
    lines[0]["record"]["event"]["id"] = float("inf")  # written as Infinity, or as 1e999


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (_edit_action, "its record does not match its body"),
        (_edit_seq, "says seq 30 (stream_seq"),
        (_edit_stream_seq, "but holds the entry at seq 4"),
        (_seq_as_float, "seq, stream_seq and batch must be integers"),
        (_edit_a_bool, "line 1: its record does not match its body at seq 1"),
        (_drop_the_record, "line 1: its record does not match"),
        (_drop_the_action, "line 2: its record does not match"),
        (_an_infinite_id, "Infinity is not a JSON number"),
        (_drop_the_kind, "line 1 is not an exported journal entry (it has no 'kind' field)"),
    ],
)
def test_import_refuses_an_export_whose_readable_copies_were_edited(
    journal_path: Path, edit: Callable[[list[dict[str, Any]]], None], said: str
) -> None:
    """The digest covers the body and the entry's place, not the `seq`, `stream_seq` and
    `record` beside them; an import said "chain verified" over an export whose decision
    copy read page_human while its body said otherwise. Each copy is checked now."""
    from adaptive_runtime.errors import InvalidImportError

    lines = _exported(journal_path)
    edit(lines)
    with pytest.raises(InvalidImportError, match=re.escape(said)):
        _import_of(lines)


@pytest.mark.parametrize(
    ("line", "kind"),
    [("[1, 2]", "an array"), ('"x"', "a string"), ("5", "a number"), ("null", "null")],
)
def test_import_says_a_line_that_is_no_json_object_is_one(line: str, kind: str) -> None:
    """A line holding a JSON array was refused with Python's own words for indexing a
    list by a str ("list indices must be integers or slices, not str")."""
    from adaptive_runtime.errors import InvalidImportError
    from adaptive_runtime.journal import MemoryJournal
    from adaptive_runtime.journal.export import import_lines

    journal = MemoryJournal()
    said = f"line 1 is not an exported journal entry (it is {kind}, where export writes an object)"
    with pytest.raises(InvalidImportError, match=re.escape(said)):
        import_lines(journal, [line])
    assert 0 == journal.head().seq


def test_import_takes_an_export_a_tool_wrote_again(journal_path: Path) -> None:
    """The copies are compared as JSON values: keys in another order, 96.0 written as 96,
    a field an older version did not have (null here), and no `record` at all import with
    the same head. (tests/data/engine1-journal.jsonl is such an older export.)"""
    lines = _exported(journal_path)
    head = _import_of(lines)
    rewritten = [{key: line[key] for key in sorted(line)} for line in json.loads(json.dumps(lines))]
    dropped = 0
    for line in rewritten:
        record = line["record"]
        if line["kind"] == "EventReceived":
            record["event"] = {key: record["event"][key] for key in reversed(record["event"])}
            record["event"]["cpu"] = int(record["event"]["cpu"])
            assert isinstance(record["event"]["cpu"], int)
        if line["kind"] == "DecisionMade" and record["decision"]["instead_of"] is None:
            del record["decision"]["instead_of"]
            dropped += 1
    assert dropped
    assert head == _import_of(rewritten)
    assert head == _import_of([{k: v for k, v in line.items() if k != "record"} for line in lines])


def test_import_refuses_an_edited_record_from_the_command_line(
    journal_path: Path, tmp_path: Path
) -> None:
    """The command line's import says which line was edited, exit 2, and leaves no file."""
    lines = _exported(journal_path)
    _edit_action(lines)
    dump = tmp_path / "edited.jsonl"
    dump.write_text("".join(json.dumps(line) + "\n" for line in lines))
    restored = tmp_path / "restored.db"
    out = cli("import", str(dump), "--db", str(restored))
    assert 2 == out.returncode
    assert "line 2: its record does not match its body at seq 2" in out.stderr
    assert not restored.exists()


def test_import_appends_in_groups_of_whole_batches(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import commits a group of batches at a time (a batch is never split), with the
    same head as one batch at a time; a break in a later group stops it there."""
    from adaptive_runtime.errors import InvalidImportError
    from adaptive_runtime.journal import MemoryJournal
    from adaptive_runtime.journal import export as export_module

    monkeypatch.setattr(export_module, "GROUP_ENTRIES", 3)
    lines = _exported(journal_path)
    assert _import_of(lines) == str(_head_of(journal_path))
    lines[30]["digest"] = "00" * 32
    journal = MemoryJournal()
    with pytest.raises(InvalidImportError, match="line 31: the chain breaks at seq 31"):
        export_module.import_lines(journal, [json.dumps(line) for line in lines])
    head = journal.head().seq
    assert 3 <= head < 31  # whole groups before the break, nothing from it on
    assert all(e.batch <= head for e in journal.read())
    assert journal.verify().ok


def _head_of(path: Path) -> object:
    from adaptive_runtime.journal import SqliteJournal

    journal = SqliteJournal(path, create=False)
    try:
        return journal.head()
    finally:
        journal.close()


def test_import_refuses_a_forged_repeat_of_an_event_id(tmp_path: Path) -> None:
    """An export forged to hold one event id twice, digests recomputed, is refused where
    the journal answers the repeat with the first batch: in the same transaction."""
    from adaptive_runtime.errors import InvalidImportError
    from adaptive_runtime.journal import MemoryJournal, Pending
    from adaptive_runtime.journal._chain import digest_of
    from adaptive_runtime.journal.export import export_lines, import_lines

    source = MemoryJournal()
    for name in ("x", "y"):
        source.append([Pending(stream="a", kind="K", ts_ns=1, body=b"b", event_id=name)])
    lines = [json.loads(line) for line in export_lines(source)]
    first, second = lines
    second["event_id"] = "x"
    second["digest"] = digest_of(
        bytes.fromhex(first["digest"]), 2, "a", 2, "K", 1, "x", b"b", 2
    ).hex()
    with pytest.raises(InvalidImportError, match="line 2: an imported batch was refused"):
        import_lines(MemoryJournal(), [json.dumps(line) for line in lines])


async def test_import_of_one_agent_s_export_says_lines_are_missing(tmp_path: Path) -> None:
    """`export --agent b` makes a file `import` can't take (the chain spans every agent);
    it said "the chain breaks at seq 1; the export was edited", which it was not."""
    path = tmp_path / "two.db"
    async with Host(path, durability="normal") as host:
        for _ in range(2):
            await host.agent("a").process(EVENTS[0])
            await host.agent("b").process(EVENTS[0])
    dump = tmp_path / "b.jsonl"
    assert 0 == cli("export", "--db", str(path), "--agent", "b", "--out", str(dump)).returncode
    out = cli("import", str(dump), "--db", str(tmp_path / "b.db"))
    assert 2 == out.returncode
    assert "line 1 is the entry at seq 3, but it comes where seq 1 belongs" in out.stderr
    assert "`export --agent`" in out.stderr


def test_import_names_an_entry_this_version_cannot_read() -> None:
    """An export from a newer version carries a record this one can't make from the body:
    it is refused as unreadable here, not as an edited export."""
    from adaptive_runtime.errors import InvalidImportError
    from adaptive_runtime.journal import MemoryJournal, Pending
    from adaptive_runtime.journal.export import export_lines, import_lines

    newer = MemoryJournal()
    newer.append([Pending(stream="a", kind="LaterKind", ts_ns=1, body=b"\x92\xa9LaterKind\x01")])
    [line] = [json.loads(text) for text in export_lines(newer)]
    assert line["record"] is None  # what this version makes of it
    line["record"] = {"type": "LaterKind", "field": 1}  # what the newer version wrote
    with pytest.raises(InvalidImportError, match="holds a LaterKind this version can't read"):
        import_lines(MemoryJournal(), [json.dumps(line)])


def test_import_refuses_a_number_past_the_largest_float(journal_path: Path) -> None:
    """1e999 reads as infinity, which a JSON encoder writes as null: a record's null
    edited to 1e999 compared equal to the body's null."""
    from adaptive_runtime.errors import InvalidImportError
    from adaptive_runtime.journal import MemoryJournal
    from adaptive_runtime.journal.export import import_lines

    text = json.dumps(_exported(journal_path)[0])
    edited = text.replace('"id": null', '"id": 1e999', 1)
    assert edited != text
    with pytest.raises(InvalidImportError, match="1e999 is past the largest float"):
        import_lines(MemoryJournal(), [edited])


def test_follow_waits_out_a_journal_that_cannot_be_reached_when_asked_to() -> None:
    """With on_unavailable, follow() hears of each outage, waits it out, and carries on
    after the last entry it yielded; without it, the error is the caller's."""
    from adaptive_runtime.errors import JournalUnavailableError
    from adaptive_runtime.journal import MemoryJournal, Pending
    from adaptive_runtime.journal.follow import follow

    class Flaky(MemoryJournal):
        """A journal whose server goes away for two reads after the first."""

        reads = 0

        def read(self, stream: str | None = None, *, after: int = 0, kind: str | None = None):  # type: ignore[no-untyped-def]
            self.reads += 1
            if self.reads in (2, 3):
                raise JournalUnavailableError("the server is restarting")
            return super().read(stream, after=after, kind=kind)

    def pending(i: int) -> list[Pending]:
        return [Pending(stream="a", kind="K", ts_ns=i, body=b"x")]

    journal = Flaky()
    journal.append(pending(1))
    heard: list[str | None] = []
    seen: list[int] = []

    def on_unavailable(error: JournalUnavailableError | None) -> None:
        heard.append(None if error is None else str(error))
        if error is None:
            journal.append(pending(2))  # committed while it was away, and after

    for entry in follow(journal, poll=0, on_unavailable=on_unavailable):
        seen.append(entry.seq)
        if entry.seq == 2:
            break
    assert [1, 2] == seen
    assert ["the server is restarting", None] == heard  # one outage, told once
    journal.reads = 1
    with pytest.raises(JournalUnavailableError):
        list(follow(journal, after=2, poll=0))
