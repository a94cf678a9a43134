"""Decisions that learn, as a user meets them: journaled policy, explain, what-if, the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_cli import cli

from adaptive_runtime import ConfigurationError, LearningPolicy, ManualClock, Runtime
from adaptive_runtime.engines.events import outcome_key
from adaptive_runtime.errors import DuplicateEventError, InvalidEventError, InvalidRulesError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import rebuild, verify_replay
from adaptive_runtime.records import OutcomeRecorded, RulesChanged, decode_record
from adaptive_runtime.rulefiles import load_policy

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 95, "memory": 80}
SMALL = Path(__file__).parents[1] / "data" / "small-scenario.toml"


def runtime_at(path: Path, **kwargs: object) -> Runtime:
    return Runtime("a", path, clock=ManualClock(), durability="normal", **kwargs)  # type: ignore[arg-type]


async def _learned_journal(path: Path) -> list[int]:
    """Three failed restarts, then a failed throttle: the untried scale-up wins next."""
    seqs = []
    async with runtime_at(path) as runtime:
        d = await runtime.process(OVERLOAD)
        for _ in range(3):
            await runtime.record_outcome(d, success=False)
        d2 = await runtime.process(OVERLOAD)
        await runtime.record_outcome(d2, success=False)
        d3 = await runtime.process(OVERLOAD)
        seqs = [d.seq, d2.seq, d3.seq]
        assert ("throttle_requests", "scale_up_immediate") == (d2.action, d3.action)
    return seqs


async def test_the_learning_policy_is_journaled_and_kept_across_restarts(tmp_path: Path) -> None:
    """Given as a table, it is journaled in RulesChanged; a restart without it keeps it,
    and it enters the ruleset hash, so replay re-makes every decision under it."""
    path = tmp_path / "j.db"
    async with runtime_at(path, learning={"alternatives": False, "fade": 0.9}) as runtime:
        d = await runtime.process(OVERLOAD)
        for _ in range(3):
            await runtime.record_outcome(d, success=False)
        after = await runtime.process(OVERLOAD)
        assert (after.action, after.instead_of) == ("throttle_requests", None)
        failed = runtime.state.history.tallies["resource_pressure/high"]["restart_service"]
        assert round(1 + 0.9 + 0.81, 4) == round(failed.failures, 4)  # faded by 0.9
    async with runtime_at(path) as again:
        assert LearningPolicy(alternatives=False, fade=0.9) == again.state.learning
        default_hash = (await again.process(OVERLOAD)).ruleset
        assert default_hash == after.ruleset
        new_hash = await again.set_rules([], learning=LearningPolicy())
        assert new_hash != default_hash
    changes = [
        decode_record(e.body)
        for e in SqliteJournal(path).read(kind="RulesChanged")  # type: ignore[union-attr]
    ]
    assert [LearningPolicy(alternatives=False, fade=0.9), LearningPolicy()] == [
        c.learning for c in changes if isinstance(c, RulesChanged)
    ]
    assert verify_replay(SqliteJournal(path)).ok


@pytest.mark.parametrize(
    ("learning", "says"),
    [
        ({"fade": 0}, "LearningPolicy.fade must be a number above 0 and at most 1"),
        ({"bonus": -1}, "LearningPolicy.bonus must be a number from 0 to 10"),
        ({"speed": 1}, "unknown field `speed`"),
        ("fast", "learning must be a LearningPolicy or a table of its knobs, not str"),
    ],
)
def test_a_bad_learning_policy_is_a_configuration_error(
    tmp_path: Path, learning: object, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        Runtime("a", tmp_path / "j.db", learning=learning)  # type: ignore[arg-type]
    assert not (tmp_path / "j.db").exists()


async def test_snapshots_carry_the_learned_record(tmp_path: Path) -> None:
    """The per-action record is snapshotted: the state from a snapshot equals a full replay."""
    path = tmp_path / "j.db"
    async with runtime_at(path, checkpoint_every=3) as runtime:
        for i in range(12):
            d = await runtime.process(OVERLOAD)
            await runtime.record_outcome(d, success=i % 3 == 0)
    journal = SqliteJournal(path)
    from_snapshot = rebuild(journal, "a")
    assert from_snapshot.snapshot_seq is not None
    full = rebuild(SqliteJournal(path), "a", upto=journal.head().seq)
    assert from_snapshot.state.history == full.state.history
    assert 12 == from_snapshot.state.history.outcomes


def test_policy_files_take_a_learning_table(tmp_path: Path) -> None:
    good = tmp_path / "p.toml"
    good.write_text("[learning]\nbonus = 0.0\nrespect_gates = true\n")
    assert LearningPolicy(bonus=0.0, respect_gates=True) == load_policy(good).learning
    bad = tmp_path / "bad.toml"
    bad.write_text("[learning]\nfade = 2\n")
    with pytest.raises(InvalidRulesError, match=r"bad.toml: \[learning\]: LearningPolicy.fade"):
        load_policy(bad)
    saved = tmp_path / "saved.toml"  # as an editor that starts files with a BOM saves it
    saved.write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    assert load_policy(good) == load_policy(saved)


@pytest.mark.parametrize(
    "text", ["rules = []\n[lerning]\nbonus = 0.0\n", "[fleet]\ncooldown = 60\n[fleets]\n"]
)
def test_a_misspelt_table_in_a_policy_file_is_refused(tmp_path: Path, text: str) -> None:
    """A table the file format doesn't have was left out without a word: `[lerning]` beside
    the rules, and the learning policy its author meant never applied."""
    typo = tmp_path / "typo.toml"
    typo.write_text(text)
    with pytest.raises(InvalidRulesError, match=r"typo.toml: unknown '(lerning|fleets)'"):
        load_policy(typo)


@pytest.mark.parametrize(
    ("text", "knobs"),
    [
        ("[learning]\nprior_weight = 2\n", "prior_strength, fade, bonus"),
        ("[fleet]\nmax_in_fligt = 2\n", "cooldown, max_share"),
        ("[approvals]\nbelow = 0.5\n", "actions, risks, below_confidence, timeout_s"),
    ],
)
def test_a_misspelt_knob_in_a_policy_file_is_refused_naming_the_knobs(
    tmp_path: Path, text: str, knobs: str
) -> None:
    """A misspelt knob was refused as an unknown field with no word of the right names,
    which `learning={...}` given to the library does say."""
    typo = tmp_path / "typo.toml"
    typo.write_text(text)
    with pytest.raises(InvalidRulesError, match="unknown field") as caught:
        load_policy(typo)
    assert "(the knobs: " in str(caught.value)
    assert knobs in str(caught.value)


async def test_explain_shows_each_action_s_record_and_why_the_alternative_won(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    seqs = await _learned_journal(path)
    out = cli("explain", str(seqs[2]), "--db", str(path))
    assert 0 == out.returncode, out.stderr
    text = out.stdout
    assert (
        "Confidence 0.7831 = scale_up_immediate's estimate: (successes 0 + 4 x prior 0.7831)"
        " / (outcomes 0 + 4)" in text
    )
    assert "default[2]   resource_pressure/high             min 0.70 -> restart_service " in text
    assert "no: confidence 0.4513 is below 0.70" in text
    assert "restart_service             0.00 ok    2.94 failed  0.4513 + 0.0759 = 0.5272" in text
    assert "0.6265 + 0.0894 = 0.7159 <- the rules' choice" in text
    assert "0.7831 + 0.1000 = 0.8831 <- chosen" in text
    assert "Learning   chose scale_up_immediate over the rules' throttle_requests" in text
    data = json.loads(cli("explain", str(seqs[2]), "--db", str(path), "--json").stdout)
    assert ["scale_up_immediate", "restart_service", "throttle_requests"] == [
        e["action"] for e in data["estimates"]
    ]
    first = cli("explain", str(seqs[0]), "--db", str(path)).stdout
    assert "x history weight 1.0000" in first  # nothing learned yet: the prior, as before
    assert "Learned" not in first


async def test_replay_what_if_with_another_learning_policy(tmp_path: Path) -> None:
    """Without alternatives, the scale-up the learner tried would have stayed a throttle."""
    path = tmp_path / "j.db"
    seqs = await _learned_journal(path)
    policy = tmp_path / "walk-only.toml"
    policy.write_text("[learning]\nalternatives = false\n")
    out = cli("replay", "--rules", str(policy), "--db", str(path), "--json")
    assert 0 == out.returncode, out.stderr
    report = json.loads(out.stdout)
    assert (3, 1) == (report["decisions"], report["changed"])
    assert [{"from": "scale_up_immediate", "to": "throttle_requests", "count": 1}] == report[
        "shifts"
    ]
    assert seqs[2] == report["examples"][0]["seq"]
    assert verify_replay(SqliteJournal(path)).ok  # a what-if writes nothing


def test_simulated_runs_are_the_same_under_two_hash_seeds(tmp_path: Path) -> None:
    """The runtime, told every outcome, decides the same bytes under any PYTHONHASHSEED, and
    its journal re-decides byte for byte under the other seed."""
    script = textwrap.dedent(
        f"""
        import hashlib, sys, msgspec
        from pathlib import Path
        from adaptive_runtime.journal import SqliteJournal
        from adaptive_runtime.projections import verify_replay
        from adaptive_runtime.simulation import load_scenario, run
        db = str(Path(sys.argv[1]) / sys.argv[2])
        if sys.argv[3] == "write":
            steps = run(load_scenario({str(SMALL)!r}), 0, "adaptive", journal=db)
            print(hashlib.sha256(msgspec.msgpack.encode(steps)).hexdigest())
        else:
            print(verify_replay(SqliteJournal(db)).ok)
        """
    )

    def python(seed: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), *args],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            timeout=300,
        )
        return done.stdout.strip()

    assert python("0", "a.db", "write") == python("1", "b.db", "write")
    assert "True" == python("1", "a.db", "verify") == python("0", "b.db", "verify")


def test_simulate_from_the_command_line(tmp_path: Path) -> None:
    scenario = SMALL
    out = cli("simulate", str(scenario), "--seeds", "2", "--plot", str(tmp_path / "s.png"))
    assert 0 == out.returncode, out.stderr
    assert "Scenario small: 400 events x 2 seeds (seeds 0, 1)" in out.stdout
    assert "[met] adaptive beats rules-only by >= 0.03 in expected success" in out.stdout
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")
    data = json.loads(cli("simulate", str(scenario), "--seeds", "1", "--json").stdout)
    assert ["adaptive", "rules", "thompson"] == [r["policy"] for r in data["results"]]
    only = json.loads(
        cli("simulate", str(scenario), "--seeds", "1", "--json", "--policy", "rules").stdout
    )
    assert ["rules"] == [r["policy"] for r in only["results"]]
    for args, says in [
        (("--seeds", "0"), "--seeds must be from 1 to 1000, not 0"),
        (("--policy", "greedy"), "--policy takes adaptive, rules, thompson; not greedy"),
    ]:
        bad = cli("simulate", str(scenario), *args)
        assert (2, f"adaptive-runtime: error: {says}\n") == (bad.returncode, bad.stderr)


def test_simulate_keeps_its_journal_in_a_file_named_by_path_or_sqlite_url(
    tmp_path: Path,
) -> None:
    """simulate --db read its argument as a Path: `postgresql://u@h/db` lost a slash,
    and was then opened as another database, on the local socket; and `memory:` kept
    nothing, with exit 0."""
    kept = tmp_path / "kept.db"
    out = cli(
        "simulate", str(SMALL), "--seeds", "1", "--policy", "adaptive", "--db", f"sqlite:///{kept}"
    )
    assert 0 == out.returncode, out.stderr
    assert 0 == cli("verify", "--db", str(kept)).returncode
    for db, says in [
        ("memory:", "memory: would keep nothing once the simulation ends; give a new file"),
        (
            "postgresql://u:secret@h/db?schema=s",
            "a new SQLite file; give a path, not postgresql://u:***@h/db?schema=s",
        ),
        ("ftp://h/f", "unknown journal URL scheme 'ftp'"),
    ]:
        bad = cli("simulate", str(SMALL), "--seeds", "1", "--db", db)
        assert 2 == bad.returncode, bad.stderr
        assert says in bad.stderr
        assert "secret" not in bad.stderr


async def test_stats_reports_ece_and_brier_and_plots(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        for i in range(10):
            d = await runtime.process(OVERLOAD)
            await runtime.record_outcome(d, success=i % 2 == 0)
    out = cli("stats", "--db", str(path), "--plot", str(tmp_path / "r.png"))
    assert 0 == out.returncode, out.stderr
    assert "ECE " in out.stdout
    assert "over 10 outcomes" in out.stdout
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    data = json.loads(cli("stats", "--db", str(path), "--json").stdout)
    assert 10 == data["reliability"]["outcomes"]


async def test_a_plot_with_no_band_of_ten_outcomes_says_it_shows_no_curve(tmp_path: Path) -> None:
    """With no outcomes (or too few in every band) stats --plot wrote an empty square,
    and said only that it was written."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        for i in range(9):
            d = await runtime.process(OVERLOAD)
            await runtime.record_outcome(d, success=i % 2 == 0)
    plot = tmp_path / "r.png"
    out = cli("stats", "--db", str(path), "--plot", str(plot))
    assert 0 == out.returncode, out.stderr
    assert out.stdout.endswith(
        f"Reliability diagram written to {plot} (no curve yet: no confidence band holds 10"
        " outcomes)\n"
    )
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_an_empty_reliability_diagram_says_why_in_its_middle() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adaptive_runtime.calibration import calibrate
    from adaptive_runtime.plots import EMPTY, _reliability

    fig, (few, enough) = plt.subplots(1, 2)
    try:
        assert not _reliability(few, {"recorded": calibrate([(0.7, True)] * 9)})
        assert [EMPTY] == [t.get_text() for t in few.texts]
        assert _reliability(enough, {"recorded": calibrate([(0.7, True)] * 10)})
        assert [] == list(enough.texts)
    finally:
        plt.close(fig)


async def test_a_journal_from_engine_1_still_verifies_and_carries_on(tmp_path: Path) -> None:
    """engine1-journal.jsonl was exported by the runtime before engine 2 (pooled confidence,
    outcomes and a rules change included). Imported, every decision re-decides byte for byte;
    the new runtime carries on in it under engine 2, and the whole journal still verifies."""
    path = tmp_path / "old.db"
    fixture = Path(__file__).parents[1] / "data" / "engine1-journal.jsonl"
    out = cli("import", str(fixture), "--db", str(path))
    assert 0 == out.returncode, out.stderr
    check = cli("replay", "--verify", "--db", str(path))
    assert "OK: 32 decisions re-decided" in check.stdout, check.stdout
    old = cli("explain", "87", "--db", str(path)).stdout
    assert "Confidence 0.6919 = base 0.7831 (severity 0.82 x risk factor 0.955)" in old
    assert "x history weight 0.8835" in old
    assert "Learned" not in old
    async with Runtime("legacy", path, clock=ManualClock(), durability="normal") as runtime:
        assert 32 == runtime.state.outcomes
        d = await runtime.process(OVERLOAD)
        assert d.ruleset != "48edf3392655ee8a"  # engine 2 now
        await runtime.record_outcome(d, success=True)
        await runtime.process(OVERLOAD)
    report = verify_replay(SqliteJournal(path))
    assert (True, 34) == (report.ok, report.decisions)


async def test_a_policy_file_given_as_rules_brings_its_learning_table(tmp_path: Path) -> None:
    """Host(rules=FILE) takes the file's [learning] (and rules) unless learning= is given."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[learning]\nfade = 0.5\n\n[[rules]]\ncontext = "x"\nrisk = "high"\n'
        'min_conf = 0.0\naction = "a"\nreason = "r"\n'
    )
    async with runtime_at(tmp_path / "j.db", rules=policy) as runtime:
        await runtime.process(OVERLOAD)
        assert (LearningPolicy(fade=0.5), 1) == (runtime.state.learning, len(runtime.state.rules))
    async with runtime_at(tmp_path / "k.db", rules=policy, learning={"fade": 0.7}) as runtime:
        await runtime.process(OVERLOAD)
        assert LearningPolicy(fade=0.7) == runtime.state.learning


async def test_an_outcome_with_an_id_is_learned_from_once_across_restarts(tmp_path: Path) -> None:
    """A caller that retries record_outcome (after a crash, or a lost answer) gives the
    outcome an id: it is journaled and learned from once, even after a restart; the id
    for another result is refused, as is an id that is no id. The journal exports,
    imports, verifies and replays as before."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        d = await runtime.process(OVERLOAD)
        assert await runtime.record_outcome(d, success=False, id="run-1")
        assert not await runtime.record_outcome(d, success=False, id="run-1")
        assert 1 == runtime.state.outcomes
    async with runtime_at(path) as runtime:
        assert not await runtime.record_outcome(d, success=False, id="run-1")
        with pytest.raises(DuplicateEventError, match="outcome id 'run-1' was already") as met:
            await runtime.record_outcome(d, success=True, id="run-1")
        assert 3 == met.value.seq
        for bad in ("", 7, "x" * 129):
            with pytest.raises(InvalidEventError) as refused:
                await runtime.record_outcome(d, success=True, id=bad)  # type: ignore[arg-type]
            assert "id" == refused.value.field
        # an event may not take the outcome's place in the id column either: its prefix is
        # the outcomes' (refused before the lookup, so an event's id never blocks an outcome)
        with pytest.raises(InvalidEventError, match="starting with 'outcome:' are the journal's"):
            await runtime.process({**OVERLOAD, "id": "outcome:run-1"})
        assert await runtime.record_outcome(d, success=True)  # no id: counted each time
        assert 2 == runtime.state.outcomes  # the id's, once, and this one
        await runtime.process(OVERLOAD)
    journal = SqliteJournal(path)
    try:
        assert 6 == journal.head().seq  # event, decision, two outcomes, event, decision
        assert verify_replay(journal).ok
    finally:
        journal.close()
    explained = cli("explain", "--db", str(path), "2").stdout
    # the outcome's own seq (from the stream, say) names the decision it is about
    pointed = cli("explain", "--db", str(path), "3")
    assert 2 == pointed.returncode
    assert "no decision at seq 3: it holds the OutcomeRecorded of the decision at seq 2" in (
        pointed.stderr
    )
    assert "seq 3 at " in explained
    assert ": failure (id run-1)\n" in explained  # the id it was recorded under
    assert ": success\n" in explained  # seq 4, recorded without one
    exported = tmp_path / "out.jsonl"
    assert 0 == cli("export", "--db", str(path), "--out", str(exported)).returncode
    assert 0 == cli("import", "--db", str(tmp_path / "copy.db"), str(exported)).returncode


async def test_an_outcome_sent_again_among_concurrent_decisions_replays_the_same(
    tmp_path: Path,
) -> None:
    """On the journal's thread (durability full), a repeated outcome is folded into the view
    that the decisions queued after it are made from, then answered with the first entry:
    those decisions are refused and decided again, so replay still gives each one."""
    path = tmp_path / "j.db"
    async with Runtime("a", path, clock=ManualClock(), durability="full") as runtime:
        d = await runtime.process(OVERLOAD)
        ledger = await runtime.host.ledger("a")
        outcome = OutcomeRecorded.of(d, success=True)  # each one counted raises confidence
        # queued in this order in one pass of the loop: no await suspends before each queues
        calls = [ledger.append_once(outcome, outcome_key("o")) for _ in range(3)]
        calls += [runtime.process(OVERLOAD) for _ in range(5)]
        results = await asyncio.gather(*calls)
        assert [True, False, False] == [fresh for _, fresh in results[:3]]
        assert 1 == runtime.state.outcomes
    journal = SqliteJournal(path)
    try:
        assert verify_replay(journal).ok
        assert 13 == journal.head().seq  # 6 events, 6 decisions, 1 outcome
    finally:
        journal.close()
