"""The fleet simulator: scenarios, seeded worlds, the measures, and pinned numbers."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from adaptive_runtime.calibration import calibrate
from adaptive_runtime.records import Rule
from adaptive_runtime.simulation import BUILTIN, ScenarioError, load_scenario, run, summarise
from adaptive_runtime.simulation.metrics import follow_times
from adaptive_runtime.simulation.report import compare, compare_families, render
from adaptive_runtime.simulation.run import Step, World
from adaptive_runtime.simulation.scenario import unheeded_names

SMALL_FILE = Path(__file__).parents[1] / "data" / "small-scenario.toml"
SMALL = SMALL_FILE.read_text()


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_every_shipped_scenario_loads_by_name() -> None:
    """The four families are package data, found by name from any working directory."""
    for name in BUILTIN:
        scenario = load_scenario(name)
        assert (name, 3000, 6) == (scenario.name, scenario.events, len(scenario.fault))
    assert 3 == len(load_scenario("shift").shift)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name = 1", "Expected `str`"),
        ('name = "x"\nfault = []', "at least one [[fault]]"),
        ('name = "x"', "at least one [[fault]]"),
        (SMALL.replace('"*" = 0.1', "x = 0.1"), 'success needs "*"'),
        (SMALL.replace("restart_service = 0.3", "restart_service = 1.3"), "chance from 0 to 1"),
        (SMALL.replace('fault = "overload"', 'fault = "nope"'), "shift names fault 'nope'"),
        (SMALL.replace("at = 200", "at = 900"), "below 400"),
        (SMALL.replace("cpu = [80, 99]", "cpu = [99, 80]"), "event.cpu must be [low, high]"),
        (SMALL.replace("weight = 2", "weight = 2\ncolour = 1"), "unknown field `colour`"),
        (SMALL.replace("weight = 2", "weight = inf"), "weight must be a finite number above 0"),
        (
            SMALL.replace("weight = 2", "weight = 1.7e308").replace(
                'name = "partition"', 'name = "partition"\nweight = 1.7e308'
            ),
            "the faults' weights add up past what a float holds",
        ),
        (
            SMALL.replace('type = "timeout"', "types = {}"),
            "fault 'partition': give the event's `type`, or `types` with at least one type",
        ),
        (
            SMALL.replace('type = "timeout"', "types = { timeout = nan }"),
            "every weight in event.types must be a finite number above 0",
        ),
        (SMALL.replace("duration = [3, 10]", "duration = [0, 10]", 1), "duration must be"),
        (
            SMALL.replace('type = "timeout"', 'type = "time out"'),
            "fault 'partition': 'type' must be printable with no spaces",
        ),
        ("name = ", "not valid TOML"),
        ("x = " + "[" * 5000 + "]" * 5000, "not valid TOML: nested too deeply to read"),
    ],
)
def test_a_bad_scenario_is_refused_naming_what_to_fix(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert says in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_scenario_an_editor_saved_with_a_bom_loads(tmp_path: Path) -> None:
    """A byte-order mark made the file 'not valid TOML' at line 1, column 1."""
    plain, saved = tmp_path / "plain.toml", tmp_path / "saved.toml"
    plain.write_text(SMALL)
    saved.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert load_scenario(plain) == load_scenario(saved)


def test_names_no_rule_decides_and_near_miss_event_types_are_named(tmp_path: Path) -> None:
    """`restart_servce` in a success table was never chosen, yet its 0.9 counted in
    "regret: any action", and `timeot` was decided as an unknown type: with no word."""
    path = tmp_path / "typos.toml"
    path.write_text(
        SMALL.replace('type = "timeout"', "types = { timeot = 1, gpu_melt = 1 }")
        .replace("restart_service = 0.3", "restart_servce = 0.3")
        .replace('"*" = 0.1 }', '"*" = 0.1 }\nseverity_effect = { isolate_componnt = 0.2 }')
        .replace("success = { scale_up_immediate = 0.1 }", "success = { scale_upp = 0.1 }")
    )
    scenario = load_scenario(path)
    assert [
        "fault 'overload': success names 'restart_servce', which no rule decides: it is never"
        " chosen, yet its chance counts in \"regret: any action\" (did you mean 'restart_service'?)",
        "fault 'partition': the event type 'timeot' is not one the built-in map knows, so its"
        " events get the context unknown_timeot (did you mean 'timeout'?)",
        "fault 'partition': severity_effect names 'isolate_componnt', which no rule decides: it"
        " is never chosen, so the effect never applies (did you mean 'isolate_component'?)",
        "the shift at 200: success names 'scale_upp', which no rule decides: it is never"
        ' chosen, yet its chance counts in "regret: any action"',
    ] == unheeded_names(scenario)
    # a custom rule that decides the action makes it reachable; the shipped ones are clean
    custom = Rule(
        context="resource_pressure", risk=None, min_conf=0.5, action="scale_upp", reason="x"
    )
    assert not any("'scale_upp'" in said for said in unheeded_names(scenario, [custom]))
    assert [] == [said for name in BUILTIN for said in unheeded_names(load_scenario(name))]
    assert [] == unheeded_names(load_scenario(SMALL_FILE))


def test_a_missing_scenario_names_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="stationary, shift, severity-informative"):
        load_scenario("no-such-scenario")


def test_a_seed_fixes_the_events_and_the_luck(small: Path) -> None:
    """The same seed gives the same world for every policy; another seed another one."""
    scenario = load_scenario(small)
    first = [(d.fault.name, d.event, d.luck) for d in World(scenario, 3).events()]
    again = [(d.fault.name, d.event, d.luck) for d in World(scenario, 3).events()]
    other = [(d.fault.name, d.event, d.luck) for d in World(scenario, 4).events()]
    assert first == again
    assert first != other
    assert {"overload", "partition"} == {f for f, _, _ in first}


def test_chances_follow_shifts_and_severity_effects(small: Path) -> None:
    scenario = msgspec.structs.replace(
        load_scenario(small),
        fault=(
            msgspec.structs.replace(
                load_scenario(small).fault[0], severity_effect={"restart_service": 0.4}
            ),
            load_scenario(small).fault[1],
        ),
    )
    world = World(scenario, 0)
    overload = scenario.fault[0]
    assert 0.9 == world.chance(overload, "scale_up_immediate", 199, 0.5)
    assert 0.1 == world.chance(overload, "scale_up_immediate", 200, 0.5)
    assert 0.05 == world.chance(overload, "page_someone", 0, 0.5)  # "*"
    assert round(0.3 + 0.4 * 0.4, 6) == round(world.chance(overload, "restart_service", 0, 0.9), 6)


def test_calibration_measures_by_hand() -> None:
    """Two bins: 0.25 confident and right half the time; 0.85 confident and always right."""
    cal = calibrate([(0.25, True), (0.25, False), (0.85, True), (0.85, True)])
    # ECE = 2/4 x |0.25 - 0.5| + 2/4 x |0.85 - 1.0| = 0.125 + 0.075
    # Brier = (0.75^2 + 0.25^2 + 0.15^2 + 0.15^2) / 4 = (0.5625 + 0.0625 + 0.0225 + 0.0225) / 4
    assert (4, 0.2, 0.1675) == (cal.outcomes, cal.ece, cal.brier)
    assert [(0.25, 0.5), (0.85, 1.0)] == [(b.confidence, b.success_rate) for b in cal.bins if b.n]
    assert (0, None, None) == (calibrate([]).outcomes, calibrate([]).ece, calibrate([]).brier)


def test_follow_time_is_where_the_broken_action_stops(small: Path) -> None:
    """The broken action is chosen for 30 events after the shift, then never. Counting every
    choice, it stopped at 30; allowing the default 5% share, at 22 (the 8 choices left in the
    178 events from there are 4.5% of them)."""
    scenario = load_scenario(small)

    def step(t: int, action: str) -> Step:
        return Step(t, "overload", "c", action, 0.5, True, 0.5, 0.5, 0.5)

    steps = [step(t, "scale_up_immediate") for t in range(200)]
    steps += [
        step(t, "scale_up_immediate" if t < 230 else "throttle_requests") for t in range(200, 400)
    ]
    assert (30,) == follow_times(scenario, steps, share=0.0)
    assert (22,) == follow_times(scenario, steps)
    never = [step(t, "throttle_requests") for t in range(400)]
    assert (0,) == follow_times(scenario, never)
    always = [step(t, "scale_up_immediate") for t in range(400)]
    assert (200,) == follow_times(scenario, always)


def test_the_small_scenario_s_numbers_are_pinned(small: Path) -> None:
    """The simulator is seeded and the runtime deterministic: these numbers are the run's."""
    scenario = load_scenario(small)
    got = {
        policy: summarise(scenario, run(scenario, 0, policy))
        for policy in ("adaptive", "rules", "thompson")
    }
    pinned = {
        policy: (s.expected_success, s.regret_candidates, s.ece, s.brier, s.follow)
        for policy, s in got.items()
    }
    assert pinned == PINNED


PINNED = {
    # policy: (expected success, regret vs the rules' actions, ECE, Brier, follow time)
    "adaptive": (0.6028, 0.041, 0.0398, 0.2218, (100,)),
    "rules": (0.1016, 0.5421, 0.5486, 0.381, (0,)),
    "thompson": (0.5595, 0.0843, 0.0449, 0.2314, (193,)),
}


def test_the_report_checks_the_targets_and_says_so(small: Path) -> None:
    """The comparison lists each target with met or MISSED and the figure behind it."""
    text = render(compare(load_scenario(small), [0, 1]))
    assert "Scenario small: 400 events x 2 seeds" in text
    assert "adaptive beats rules-only by >= 0.03 in expected success" in text
    assert "stops choosing scale_up_immediate for overload within 200 events" in text
    assert "where an alternative won" in text


def test_families_compare_regret_with_thompson(small: Path) -> None:
    families = compare_families([load_scenario(small)], [0])
    (target,) = families.targets
    assert target.name == "regret lower than Thompson sampling's in at least 1 of 1 families"
    assert "small " in target.detail
