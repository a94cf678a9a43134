"""The README's Python examples run as written and print what the README shows."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_runtime import Runtime
from adaptive_runtime.journal import SqliteJournal

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```(?:\n\nOutput:\n\n```text\n(.*?)```)?", re.S)
EXAMPLES = BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_examples() -> None:
    """The README keeps its examples (and at least three documented outputs)."""
    assert len(EXAMPLES) >= 4
    assert sum(1 for _, out in EXAMPLES if out) >= 3


@pytest.mark.parametrize(
    ("code", "expected"), EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))]
)
def test_readme_example_runs(tmp_path: Path, code: str, expected: str) -> None:
    """Each example runs in a fresh folder; where the README shows output, it matches."""
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    if expected:
        assert expected == run.stdout


def test_demo_remembers_across_runs(tmp_path: Path) -> None:
    """`adaptive-runtime demo` prints the journal's path; a second run remembers the first."""
    cmd = [sys.executable, "-m", "adaptive_runtime", "demo", "--db", str(tmp_path / "demo.db")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    assert f"Journal: {tmp_path / 'demo.db'}" in first.stdout
    assert "[CONTEXT_ENGINE] risk=high stability=low pressure=0.69" in first.stderr
    assert "CONTEXT_ENGINE" not in first.stdout  # log lines belong on stderr
    assert "Remembered from earlier runs: 0 events" in first.stdout
    second = subprocess.run(
        [*cmd, "--quiet"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "Remembered from earlier runs: 5 events" in second.stdout
    assert "Last 10 of 10 events" in second.stdout
    assert "CONTEXT_ENGINE" not in second.stderr
    # the demo snapshots every 5 entries and at stop: the second start replays nothing
    assert (
        "The 5 events from earlier runs were restored on start, from the snapshot at seq 10, "
        "with nothing after it to replay." in second.stdout
    )


def test_demo_honours_agent(tmp_path: Path) -> None:
    """`demo --agent X` writes agent X's stream (it used to write prod-monitor regardless)."""
    db = tmp_path / "demo.db"
    cmd = [sys.executable, "-m", "adaptive_runtime", "demo", "--quiet", "--db", str(db)]
    subprocess.run([*cmd, "--agent", "edge-1"], capture_output=True, timeout=120, check=True)
    heads = subprocess.run(
        [sys.executable, "-m", "adaptive_runtime", "history", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import json

    assert {"edge-1"} == {item["stream"] for item in json.loads(heads.stdout)}


def test_demo_leaves_a_journal_of_other_agents_alone(tmp_path: Path) -> None:
    """`adaptive-runtime demo` where an application keeps its journal (both default to
    adaptive_runtime.db) wrote the scenario into that application's audit trail for good."""
    db = tmp_path / "adaptive_runtime.db"

    async def app(path: Path) -> None:
        async with Runtime(agent_id="checkout", path=path) as runtime:
            await runtime.process({"type": "timeout", "severity": 0.5})
        async with Runtime(agent_id="x\x1b[2Jy", path=path) as runtime:  # an escape in a name
            await runtime.process({"type": "timeout", "severity": 0.5})

    asyncio.run(app(db))
    run = subprocess.run(
        [sys.executable, "-m", "adaptive_runtime", "demo", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert 2 == run.returncode
    # shown as every message shows a journaled name: the escape can't clear the terminal
    assert "holds other agents (checkout, x\\x1b[2Jy) and no earlier run of the demo" in run.stderr
    journal = SqliteJournal(db, create=False)
    try:
        assert ["checkout", "x\x1b[2Jy"] == journal.streams()
    finally:
        journal.close()
    # the README's order: the demo, then an event posted to `serve` on the same file, then
    # the demo again: that journal is one the demo wrote
    ours = tmp_path / "demo.db"
    demo = [sys.executable, "-m", "adaptive_runtime", "demo", "--quiet", "--db", str(ours)]
    assert 0 == subprocess.run(demo, capture_output=True, timeout=120).returncode
    asyncio.run(app(ours))
    again = subprocess.run(demo, capture_output=True, text=True, timeout=120)
    assert 0 == again.returncode, again.stderr
    assert "The 5 events from earlier runs were restored on start" in again.stdout


def test_demo_in_memory_does_not_promise_to_remember() -> None:
    """`demo --db memory:` said "the journal remembers these events across runs"."""
    cmd = [sys.executable, "-m", "adaptive_runtime", "demo", "--quiet", "--db", "memory:"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    assert "remembers" not in run.stdout
    assert "The journal was in memory: these events are gone with this run." in run.stdout


def test_demo_reports_unusable_journal_without_traceback(tmp_path: Path) -> None:
    """A file that isn't a journal gets a one-line error and exit code 3."""
    (tmp_path / "notes.db").write_text("not a database" * 100)
    run = subprocess.run(
        [sys.executable, "-m", "adaptive_runtime", "demo", "--db", str(tmp_path / "notes.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 3 == run.returncode
    assert "Traceback" not in run.stderr
    assert "not a SQLite database" in run.stderr


def test_one_event_remembered_is_said_in_the_singular() -> None:
    """A journal holding one event of the demo's agent (another program wrote it) was
    "The 1 events from earlier runs were restored"."""
    from adaptive_runtime.demo import _how_remembered

    said = _how_remembered(1, {"replayed": 0, "snapshot_seq": 2})
    assert said.startswith("The 1 event from an earlier run was restored on start")
