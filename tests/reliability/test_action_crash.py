"""SIGKILL in the middle of an action's back-off or of its handler: the retry finishes once more."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import rebuild, verify_replay
from adaptive_runtime.records import ActionAbandoned, read_as

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from adaptive_runtime import ManualClock, RetryPolicy, Runtime

    path, effects, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    class StopClock(ManualClock):
        # a back-off wait that never ends: the parent kills the process during it
        async def sleep(self, seconds):
            print("BACKOFF", seconds, flush=True)
            await asyncio.Event().wait()

    async def main():
        now = time.time_ns() + (3 * 86_400 * 10**9 if mode == "finish-days-later" else 0)
        clock = StopClock(now) if mode == "backoff" else ManualClock(now)
        runtime = Runtime(agent_id="ops", path=path, clock=clock)

        @runtime.action("restart_service", retry=RetryPolicy(max_attempts=3, base_delay=5.0, jitter=0.0, total_timeout=600.0))
        async def restart(call):
            with open(effects, "a") as log:
                log.write(f"{call.key} {call.attempt}\\n")
                log.flush()
                os.fsync(log.fileno())
            if mode == "handler":
                print("INSIDE", flush=True)
                await asyncio.Event().wait()
            if call.attempt == 1 and not mode.startswith("finish"):
                raise ConnectionError("first restart attempt fails")

        async with runtime:
            if not mode.startswith("finish"):
                await runtime.process({"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88})
            await runtime.wait_for_actions()
        print("DONE", flush=True)

    asyncio.run(main())
    """
)


def run_until(path: Path, effects: Path, mode: str, marker: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(effects), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(marker), line + proc.stderr.read() if proc.stderr else line
    if marker != "DONE":
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


@pytest.mark.parametrize(
    ("mode", "marker", "expected"),
    [("backoff", "BACKOFF", ["1", "2"]), ("handler", "INSIDE", ["1", "2"])],
)
def test_killed_action_finishes_exactly_once_more(
    tmp_path: Path, mode: str, marker: str, expected: list[str]
) -> None:
    """Killed mid-back-off or mid-handler, the action resumes at the next attempt and runs no more."""
    path, effects = tmp_path / "ops.db", tmp_path / "effects.log"
    run_until(path, effects, mode, marker)
    state = rebuild(SqliteJournal(path), "ops").state
    assert 1 == len(state.open_actions)
    run_until(path, effects, "finish", "DONE")
    run_until(path, effects, "finish", "DONE")  # a further restart runs nothing
    lines = effects.read_text().split()
    assert ["ops:2"] == sorted(set(lines[::2]))  # one idempotency key for every attempt
    assert expected == lines[1::2]
    journal = SqliteJournal(path)
    state = rebuild(journal, "ops").state
    assert ({}, 1, 0) == (state.open_actions, state.actions_succeeded, state.actions_abandoned)
    assert verify_replay(journal).ok


@pytest.mark.parametrize(("mode", "marker"), [("backoff", "BACKOFF"), ("handler", "INSIDE")])
def test_a_restart_past_the_total_timeout_abandons_and_runs_nothing(
    tmp_path: Path, mode: str, marker: str
) -> None:
    """total_timeout counts from the run's first attempt, the time stopped included: a
    restart three days later (with total_timeout=600) ran the stale action once more, as
    the resumed run counted from the restart."""
    path, effects = tmp_path / "ops.db", tmp_path / "effects.log"
    run_until(path, effects, mode, marker)
    run_until(path, effects, "finish-days-later", "DONE")
    assert ["ops:2", "1"] == effects.read_text().split()  # the first attempt only
    journal = SqliteJournal(path)
    state = rebuild(journal, "ops").state
    assert ({}, 1, 0) == (state.open_actions, state.actions_abandoned, state.actions_succeeded)
    abandoned = journal.read("ops", kind="ActionAbandoned")
    assert ["time_limit"] == [read_as(e, ActionAbandoned).reason for e in abandoned]
    assert verify_replay(journal).ok


def test_crash_between_the_last_failure_and_the_abandon_runs_no_extra_attempt(
    tmp_path: Path,
) -> None:
    """Killed after the final ActionFailed but before ActionAbandoned: restart abandons, never retries."""
    import os

    path, effects = tmp_path / "ops.db", tmp_path / "effects.log"
    child = CHILD.replace("max_attempts=3", "max_attempts=1")
    env = {**os.environ, "ADAPTIVE_RUNTIME_CRASH_AT": "action.failed"}
    proc = subprocess.run(
        [sys.executable, "-c", child, str(path), str(effects), "fail"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert -signal.SIGKILL == proc.returncode, proc.stderr
    assert 1 == len(rebuild(SqliteJournal(path), "ops").state.open_actions)
    finish = subprocess.run(
        [sys.executable, "-c", child, str(path), str(effects), "finish"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == finish.returncode, finish.stderr
    assert ["ops:2", "1"] == effects.read_text().split()  # the one attempt, and nothing after it
    state = rebuild(SqliteJournal(path), "ops").state
    assert ({}, 1, 0) == (state.open_actions, state.actions_abandoned, state.actions_succeeded)
