"""Compare policies on a scenario over several seeds, check the targets, and say it in text."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import msgspec

from .._text import table
from ..calibration import Calibration, calibrate
from ..records import LearningPolicy, Rule
from .metrics import Summary, broken_action, summarise
from .run import POLICIES, Step, run
from .scenario import Scenario

__all__ = [
    "TARGETS",
    "Comparison",
    "Families",
    "Target",
    "compare",
    "compare_families",
    "render",
    "render_families",
    "success_over_time",
]

TARGETS = {
    "gain": 0.03,
    "ece_last": 0.05,
    "follow": 200,
}
"""adaptive beats rules-only by `gain` in expected success; its ECE over the last 1,000
events is at most `ece_last`; after a shift it stops choosing the broken action within
`follow` events. (Regret against Thompson sampling is compared across the families.)"""


class PolicyResult(msgspec.Struct, frozen=True, kw_only=True):
    policy: str
    seeds: tuple[Summary, ...]
    calibration: Calibration
    """Pooled over every seed's steps."""
    alternatives: Calibration
    """Only the decisions where an alternative replaced the rules' choice."""
    rules_choice: Calibration
    """Only the decisions where the rules' choice held."""
    success_curve: tuple[float, ...]
    """Expected success per window of events, averaged over the seeds."""


class Target(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    met: bool
    detail: str


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str
    description: str
    events: int
    seeds: tuple[int, ...]
    window: int
    shifts: tuple[tuple[int, str, str], ...]
    """(at, fault, broken action) for each shift."""
    results: tuple[PolicyResult, ...]
    targets: tuple[Target, ...]

    def result(self, policy: str) -> PolicyResult | None:
        return next((r for r in self.results if r.policy == policy), None)


def success_over_time(steps_by_seed: Sequence[Sequence[Step]], window: int) -> tuple[float, ...]:
    """The mean true chance of the actions chosen, per window of events, across seeds."""
    n = min(len(s) for s in steps_by_seed)
    out: list[float] = []
    for start in range(0, n, window):
        chunk = [s.p for steps in steps_by_seed for s in steps[start : start + window]]
        out.append(round(sum(chunk) / len(chunk), 4))
    return tuple(out)


def compare(
    scenario: Scenario,
    seeds: Sequence[int],
    policies: Sequence[str] = POLICIES,
    *,
    rules: Sequence[Rule] = (),
    learning: LearningPolicy | None = None,
    window: int = 100,
    keep: str | None = None,
) -> Comparison:
    """Run each policy on each seed and measure it; check the targets that apply.

    `keep` is a journal path for the adaptive runtime's run on the first seed (the others
    journal in memory), for `explain`, `stats` or `replay` afterwards.
    """
    results: list[PolicyResult] = []
    for policy in policies:
        runs = [
            run(
                scenario,
                seed,
                policy,
                rules=rules,
                learning=learning,
                journal=keep if keep and policy == "adaptive" and i == 0 else "memory:",
            )
            for i, seed in enumerate(seeds)
        ]
        results.append(
            PolicyResult(
                policy=policy,
                seeds=tuple(summarise(scenario, steps) for steps in runs),
                calibration=calibrate((s.confidence, s.success) for r in runs for s in r),
                alternatives=calibrate(
                    (s.confidence, s.success) for r in runs for s in r if s.alternative
                ),
                rules_choice=calibrate(
                    (s.confidence, s.success) for r in runs for s in r if not s.alternative
                ),
                success_curve=success_over_time(runs, window),
            )
        )
    shifts = tuple(
        (shift.at, shift.fault, broken_action(scenario, shift)) for shift in scenario.shift
    )
    comparison = Comparison(
        scenario=scenario.name,
        description=scenario.description.strip(),
        events=scenario.events,
        seeds=tuple(seeds),
        window=window,
        shifts=shifts,
        results=tuple(results),
        targets=(),
    )
    return msgspec.structs.replace(comparison, targets=_targets(comparison))


def _of(c: Comparison, policy: str) -> PolicyResult:
    found = c.result(policy)
    if found is None:
        raise ValueError(f"the comparison of {c.scenario} has no {policy} run")
    return found


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def _targets(c: Comparison) -> tuple[Target, ...]:
    adaptive, rules = c.result("adaptive"), c.result("rules")
    out: list[Target] = []
    if adaptive is not None and rules is not None:
        gain = _mean([s.expected_success for s in adaptive.seeds]) - _mean(
            [s.expected_success for s in rules.seeds]
        )
        out.append(
            Target(
                name=f"adaptive beats rules-only by >= {TARGETS['gain']:g} in expected success",
                met=gain >= TARGETS["gain"],
                detail=f"by {gain:+.3f}",
            )
        )
    if adaptive is not None:
        ece = _mean([s.ece_last for s in adaptive.seeds])
        worst = max(s.ece_last for s in adaptive.seeds)
        out.append(
            Target(
                name=f"ECE over the last 1,000 events <= {TARGETS['ece_last']:g}",
                met=ece <= TARGETS["ece_last"],
                detail=f"mean {ece:.3f}, worst seed {worst:.3f}",
            )
        )
        for i, (at, fault, action) in enumerate(c.shifts):
            times = [s.follow[i] for s in adaptive.seeds]
            out.append(
                Target(
                    name=f"stops choosing {action} for {fault} within {TARGETS['follow']} events of the shift at {at}",
                    met=max(times) <= TARGETS["follow"],
                    detail="after " + ", ".join(map(str, times)) + " events (per seed)",
                )
            )
    return tuple(out)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _spread(values: Sequence[float]) -> str:
    return f"{_mean(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def render(c: Comparison) -> str:
    """The comparison as the CLI prints it."""
    lines = [
        f"Scenario {c.scenario}: {c.events} events x {len(c.seeds)} seeds"
        f" (seeds {', '.join(map(str, c.seeds))}); mean [min-max] across seeds",
    ]
    if c.description:
        lines += ["  " + line for line in c.description.splitlines()]
    choices = [
        (
            r.policy,
            _spread([s.expected_success for s in r.seeds]),
            _spread([s.regret_candidates for s in r.seeds]),
            _spread([s.regret_any for s in r.seeds]),
        )
        for r in c.results
    ]
    confidences = [
        (
            r.policy,
            _spread([s.ece for s in r.seeds]),
            _spread([s.ece_last for s in r.seeds]),
            _spread([s.brier for s in r.seeds]),
        )
        for r in c.results
    ]
    header = ("policy", "expected success", "regret: rules' actions", "regret: any action")
    lines += ["", _indent(table(header, choices))]
    lines += ["", _indent(table(("policy", "ECE", "ECE last 1,000", "Brier"), confidences))]
    focus = c.result("adaptive") or c.results[0]
    lines += [
        "",
        f"Reliability of {focus.policy} (all seeds pooled; confidence band, outcomes,"
        " mean confidence, success rate):",
    ]
    bin_rows = [
        (
            f"{b.low:.1f}-{b.high:.1f}",
            str(b.n),
            "-" if b.confidence is None else f"{b.confidence:.3f}",
            "-" if b.success_rate is None else f"{b.success_rate:.3f}",
        )
        for b in focus.calibration.bins
        if b.n
    ]
    lines.append(_indent(table(("band", "outcomes", "confidence", "success"), bin_rows)))
    for label, part in (
        ("where an alternative won", focus.alternatives),
        ("where the rules' choice held", focus.rules_choice),
    ):
        if part.outcomes:
            conf = sum((b.confidence or 0.0) * b.n for b in part.bins) / part.outcomes
            rate = sum((b.success_rate or 0.0) * b.n for b in part.bins) / part.outcomes
            lines.append(
                f"  {label}: {part.outcomes} decisions, mean confidence {conf:.3f},"
                f" success rate {rate:.3f}, ECE {part.ece:.3f}"
            )
    if c.targets:
        lines += ["", "Targets:"]
        for t in c.targets:
            lines.append(f"  [{'met' if t.met else 'MISSED'}] {t.name}: {t.detail}")
    return "\n".join(lines)


class Families(msgspec.Struct, frozen=True, kw_only=True):
    """Every shipped scenario family, and the target only a set of families can check."""

    comparisons: tuple[Comparison, ...]
    targets: tuple[Target, ...]


def compare_families(
    scenarios: Sequence[Scenario],
    seeds: Sequence[int],
    *,
    rules: Sequence[Rule] = (),
    learning: LearningPolicy | None = None,
) -> Families:
    """Compare all three policies on each scenario; check adaptive against Thompson sampling."""
    comparisons = tuple(
        compare(s, seeds, POLICIES, rules=rules, learning=learning) for s in scenarios
    )
    wins = []
    for c in comparisons:
        a = _mean([s.regret_candidates for s in _of(c, "adaptive").seeds])
        t = _mean([s.regret_candidates for s in _of(c, "thompson").seeds])
        wins.append((c.scenario, a < t, a, t))
    need = min(3, len(wins)) if len(wins) >= 4 else len(wins)
    won = sum(w for _, w, _, _ in wins)
    detail = "; ".join(f"{name} {a:.3f} vs {t:.3f}" for name, _, a, t in wins)
    target = Target(
        name=f"regret lower than Thompson sampling's in at least {need} of {len(wins)} families",
        met=won >= need,
        detail=f"lower in {won} ({detail})",
    )
    return Families(comparisons=comparisons, targets=(target,))


def render_families(f: Families) -> str:
    parts = [render(c) for c in f.comparisons]
    lines = ["Across the families:"]
    for t in f.targets:
        lines.append(f"  [{'met' if t.met else 'MISSED'}] {t.name}: {t.detail}")
    return "\n\n".join([*parts, "\n".join(lines)])
