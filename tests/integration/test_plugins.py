"""Plugins from an installed package, found through real entry points.

The example package in examples/trading-plugin is installed with pip into a folder of
the test's own, which the child processes put on their path: discovery goes through
importlib.metadata exactly as for any installed package, and nothing is monkeypatched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from adaptive_runtime import ConfigurationError, Event, Host, ManualClock
from adaptive_runtime.engines import Policy, decide, parse_event
from adaptive_runtime.engines.confidence import History
from adaptive_runtime.engines.context import ContextOverride
from adaptive_runtime.engines.pipeline import PluginSet
from adaptive_runtime.records import PluginRef

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trading-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, installed by pip into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "trading-plugin"
    shutil.copytree(EXAMPLE, source)  # the build writes beside its sources: not into the repo
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def run(
    site: Path | None, code: str, *args: str, seed: str = "0"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


TRADE = """
import asyncio, json, sys
from adaptive_runtime import Host, ManualClock
EVENTS = [
    {"type": "vps_disconnect", "severity": 0.3, "cpu": 10, "agent_id": "bot"},
    {"type": "stop_loss_hit", "severity": 0.5, "symbol": "EURUSD", "agent_id": "bot"},
    {"type": "price_update", "severity": 0.1, "agent_id": "bot"},
    {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88, "agent_id": "bot"},
]
async def main(path):
    async with Host(path, durability="normal", clock=ManualClock(), plugins=["trading"]) as host:
        out = []
        for event in EVENTS:
            d = await host.process(event)
            out.append([d.context, d.risk, d.action, d.rule, list(d.plugins), list(d.tags)])
        await host.wait_for_actions()
        out.append(host.agent("bot").state.actions_succeeded)
    print(json.dumps(out))
asyncio.run(main(sys.argv[1]))
"""


def test_the_installed_pack_decides_its_events_at_the_risk_it_intends(
    site: Path, tmp_path: Path
) -> None:
    """vps_disconnect is critical whatever the load; the pack's rules fire; its action runs."""
    out = run(site, TRADE, str(tmp_path / "bot.db"))
    assert 0 == out.returncode, out.stderr
    *decisions, succeeded = json.loads(out.stdout)
    version = ["trading==0.1.0"]
    assert [
        ["trading_infrastructure", "critical", "emergency_save_state", "trading[0]", version, ["trading"]],
        ["trading_position", "high", "close_position", "trading[2]", version, ["trading", "position_open"]],
        ["trading_market_data", "low", "log_telemetry", "trading[4]", version, ["trading"]],
        ["resource_pressure", "high", "restart_service", "default[2]", version, ["cpu_critical", "memory_high", "severe"]],
    ] == decisions  # fmt: skip
    assert 1 == succeeded  # emergency_save_state, the pack's own handler


RESTART = """
import asyncio, json, sys
from adaptive_runtime import ConfigurationError, Host, ManualClock
EVENT = {"type": "vps_disconnect", "severity": 0.3, "agent_id": "bot"}
async def main(path, other):
    host = Host(path, durability="normal", clock=ManualClock(), plugins=["trading"])
    for _ in range(2):  # the registrars run again at each start
        async with host:
            await host.process(EVENT)
            await host.wait_for_actions()
    ran = host.agent("bot").state.actions_succeeded
    mine = Host(other, durability="normal", clock=ManualClock(), plugins=["trading"])
    @mine.action("emergency_save_state")
    async def save(call): pass
    try:
        await mine.start()
        said = "started"
    except ConfigurationError as exc:
        said = str(exc)
    print(json.dumps([ran, said]))
asyncio.run(main(*sys.argv[1:]))
"""


def test_a_host_with_a_plugin_starts_again_and_a_handler_of_its_own_for_the_plugin_s_action_is_named(
    site: Path, tmp_path: Path
) -> None:
    """Once a second handler for an action was refused, a host's second start() failed:
    the plugin's registrar made its handler again, a new function, refused as a second."""
    out = run(site, RESTART, str(tmp_path / "bot.db"), str(tmp_path / "other.db"))
    assert 0 == out.returncode, out.stderr
    ran, said = json.loads(out.stdout)
    assert 2 == ran  # the pack's handler ran after each start
    assert said.startswith(
        "plugin 'trading' failed to register its actions: ConfigurationError: action"
        " 'emergency_save_state' has a handler host-wide already (main.<locals>.save)"
    ), said


@pytest.mark.parametrize("seed", ["0", "99"])
def test_plugin_decisions_replay_byte_for_byte_and_fail_clearly_without_the_plugin(
    site: Path, tmp_path: Path, seed: str
) -> None:
    """With the plugin installed replay verifies; without it, it says which plugin is missing."""
    path = tmp_path / "bot.db"
    assert 0 == run(site, TRADE, str(path), seed=seed).returncode
    replay = [sys.executable, "-m", "adaptive_runtime", "replay", "--verify", "--db", str(path)]
    env = {**os.environ, "PYTHONHASHSEED": seed}
    ok = subprocess.run(
        replay, capture_output=True, text=True, env={**env, "PYTHONPATH": str(site)}
    )
    assert 0 == ok.returncode, ok.stdout + ok.stderr
    missing = subprocess.run(replay, capture_output=True, text=True, env=env)
    assert 2 == missing.returncode
    assert (
        "plugin 'trading' is not installed (the journal was decided with trading==0.1.0)"
        in missing.stderr
    )
    assert "Traceback" not in missing.stderr


def test_two_hosts_with_other_plugins_on_one_journal_replay_each_decision_as_made(
    site: Path, tmp_path: Path
) -> None:
    """Hosts sharing a journal may run other plugin sets (a rolling upgrade): each journals
    its own at start, so the journal's last one is not every host's. Replay re-decides
    each decision with the plugins it names, not the last ones journaled."""
    code = """
    import asyncio, sys
    from adaptive_runtime import Host, ManualClock
    async def main(path):
        clock = ManualClock()
        event = {"type": "vps_disconnect", "severity": 0.4}
        async with Host(path, durability="normal", clock=clock, plugins=["trading"]) as a:
            first = await a.process({**event, "agent_id": "trader"})
            async with Host(path, durability="normal", clock=clock, plugins=[]) as b:
                other = await b.process({**event, "agent_id": "plain"})
                again = await a.process({**event, "agent_id": "trader"})
        print(first.action, other.action, again.action)
    asyncio.run(main(sys.argv[1]))
    """
    path = tmp_path / "two.db"
    out = run(site, code, str(path))
    assert "emergency_save_state monitor_and_wait emergency_save_state" == out.stdout.strip()
    replay = [sys.executable, "-m", "adaptive_runtime", "replay", "--verify", "--db", str(path)]
    env = {**os.environ, "PYTHONPATH": str(site)}
    verified = subprocess.run(replay, capture_output=True, text=True, env=env)
    assert 0 == verified.returncode, verified.stdout + verified.stderr


def test_explain_without_the_plugin_shows_the_journal_and_says_what_it_leaves_out(
    site: Path, tmp_path: Path
) -> None:
    """An auditor without the plugin could explain no decision of the journal (exit 2):
    the journal's own record is shown now, and the rules tried are left out, saying why."""
    path = tmp_path / "bot.db"
    assert 0 == run(site, TRADE, str(path)).returncode
    explain = [sys.executable, "-m", "adaptive_runtime", "explain", "2", "--db", str(path)]
    out = subprocess.run(explain, capture_output=True, text=True)
    assert 0 == out.returncode, out.stderr
    assert "Action     emergency_save_state [critical]" in out.stdout
    assert (
        "not shown: plugin 'trading' is not installed (the journal was decided with"
        " trading==0.1.0)" in out.stdout
    )
    assert "trading[0]" not in out.stdout  # no rule listed from a table it can't load
    data = json.loads(subprocess.run([*explain, "--json"], capture_output=True).stdout)
    assert [] == data["rules_tried"]
    assert "trading==0.1.0" in data["rules_not_shown"]
    installed = subprocess.run(
        explain, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(site)}
    )
    assert "trading[0]" in installed.stdout
    assert "not shown" not in installed.stdout


def test_the_plugins_command_lists_installed_and_enabled(site: Path, tmp_path: Path) -> None:
    """`plugins` shows what is installed, and what a journal was decided with."""
    path = tmp_path / "bot.db"
    run(site, TRADE, str(path))
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-m", "adaptive_runtime", "plugins", "--db", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    listed = json.loads(out.stdout)
    assert {
        "name": "builtin",
        "kinds": ["contexts", "rules"],
        "distribution": "adaptive-runtime",
        "version": "0.1.0",
    } == listed["builtin"]
    assert {
        "name": "trading",
        "kinds": ["actions", "contexts", "rules"],
        "distribution": "adaptive-runtime-trading",
        "version": "0.1.0",
    } in listed["installed"]
    assert ["trading==0.1.0"] == listed["enabled"]


def test_installed_is_not_enabled_and_a_missing_plugin_is_named(site: Path, tmp_path: Path) -> None:
    """Without plugins= the pack does nothing; an unknown name is a ConfigurationError naming it."""
    code = """
    import asyncio, sys
    from adaptive_runtime import Host, ConfigurationError
    async def main(path):
        async with Host(path, durability="normal") as host:
            print((await host.process({"type": "vps_disconnect", "severity": 0.3})).context)
        try:
            await Host(path + "2", plugins=["tradeing"]).start()
        except ConfigurationError as exc:
            print(exc)
    asyncio.run(main(sys.argv[1]))
    """
    out = run(site, code, str(tmp_path / "j.db"))
    lines = out.stdout.splitlines()
    assert "unknown_vps_disconnect" == lines[0]
    assert lines[1].startswith("plugin 'tradeing' is not installed; installed plugins: ")
    assert "trading" in lines[1]
    # refused before the journal is opened: a typo left a new, empty journal behind
    assert not list(tmp_path.glob("j.db2*"))


# -- analysers that misbehave: passed over, the same way every time ----------------


def _policy_with(analyser: object) -> Policy:
    plugins = PluginSet((PluginRef("odd", "1"),), [("odd", analyser)], [])  # type: ignore[list-item]
    return Policy(plugins=plugins)


@pytest.mark.parametrize(
    "analyser",
    [
        lambda ev: 1 / 0,  # raises
        lambda ev: "critical",  # not a ContextOverride
        lambda ev: ContextOverride(context="x", risk="apocalyptic"),  # a risk that isn't one
        lambda ev: ContextOverride(context=""),  # no context
        lambda ev: ContextOverride(context="x", tags=("ok", 3)),  # type: ignore[arg-type]
        # text no journal can encode: every event was refused ("can't be journaled")
        lambda ev: ContextOverride(context="x\ud800"),
        lambda ev: ContextOverride(context="x", tags=("\udc00",)),
        lambda ev: ContextOverride(context="two\nlines"),
    ],
    ids=[
        "raises",
        "garbage",
        "bad-risk",
        "empty-context",
        "bad-tags",
        "surrogate-context",
        "surrogate-tag",
        "line-break",
    ],
)
def test_an_analyser_that_raises_or_answers_garbage_is_passed_over(analyser: object) -> None:
    """The built-in map decides instead, and the decision still journals (it encodes)."""
    from adaptive_runtime.records import DecisionMade, to_pending

    event = parse_event({"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88})
    d = decide(_policy_with(analyser), History(), event, 1)
    assert ("resource_pressure", "high", "restart_service", ("odd==1",)) == (
        d.context,
        d.risk,
        d.action,
        d.plugins,
    )
    to_pending("a", DecisionMade(d), 1)  # the guard at the journal's door lets it through


def test_plugins_enter_the_ruleset_hash_and_none_keeps_the_old_one() -> None:
    """A plugin changes the hash; no plugins gives the hash journals always had."""
    assert Policy().ruleset == Policy(plugins=PluginSet()).ruleset
    assert Policy().ruleset != _policy_with(lambda ev: None).ruleset


def test_plugins_must_be_a_list_of_names() -> None:
    """plugins="trading" is refused: a list is needed."""
    with pytest.raises(ConfigurationError, match=r"a list of names, e.g. \['trading'\]"):
        Host("memory:", plugins="trading", clock=ManualClock())  # type: ignore[arg-type]


def test_event_is_importable_by_plugins() -> None:
    """The names a plugin uses come from the public API."""
    assert Event(type="x").type == "x"


async def test_a_decision_slower_than_max_decide_ms_is_refused_and_nothing_is_journaled(
    tmp_path: Path,
) -> None:
    """A slow plugin's decision is a DecisionTooSlowError; the journal is untouched.

    The bound is set below any real decision's time, so the test needs no slow code.
    """
    from adaptive_runtime import DecisionTooSlowError
    from adaptive_runtime.journal import SqliteJournal

    path = tmp_path / "j.db"
    async with Host(path, durability="normal", clock=ManualClock(), max_decide_ms=1e-9) as host:
        with pytest.raises(DecisionTooSlowError, match="past the host's max_decide_ms"):
            await host.process({"type": "timeout", "severity": 0.4})
        [result] = await host.process_many([{"type": "timeout", "severity": 0.4}])
        assert isinstance(result, DecisionTooSlowError)
    journal = SqliteJournal(path, create=False)
    try:
        assert 0 == journal.head().seq
    finally:
        journal.close()
    with pytest.raises(ConfigurationError, match="max_decide_ms"):
        Host("memory:", max_decide_ms=0)


def test_the_same_events_under_the_same_plugins_decide_alike_under_two_hash_seeds(
    site: Path, tmp_path: Path
) -> None:
    """Two runs, two PYTHONHASHSEEDs, two journals: the same decisions, field for field."""
    first = run(site, TRADE, str(tmp_path / "one.db"), seed="1")
    second = run(site, TRADE, str(tmp_path / "two.db"), seed="12345")
    assert 0 == first.returncode == second.returncode, first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_an_analyser_is_given_its_own_copy_of_the_event() -> None:
    """An analyser that changes the event it is handed (a plugin breaking the contract
    that it be pure) changes nothing else: not the event the runtime journals and
    compares a resent id with, not the next analyser's, not the next decision's."""
    given: list[Event] = []

    def meddle(ev: Event) -> None:
        ev.attrs["added"] = True
        ev.attrs["nested"]["seen"].append(len(given))
        given.append(ev)

    policy = Policy(
        plugins=PluginSet(
            (PluginRef("meddle", "1"), PluginRef("look", "1")),
            [("meddle", meddle), ("look", lambda ev: given.append(ev))],  # type: ignore[list-item]
            [],
        )
    )
    event = parse_event({"type": "timeout", "severity": 0.4, "nested": {"seen": []}})
    before = msgspec.msgpack.encode(event)
    first = decide(policy, History(), event, 1)
    assert before == msgspec.msgpack.encode(event)
    assert {"nested": {"seen": []}} == given[1].attrs  # the next analyser's copy is clean
    assert first == decide(policy, History(), event, 1)
    assert {"nested": {"seen": [2]}, "added": True} == given[2].attrs  # as the first time
