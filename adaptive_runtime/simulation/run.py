"""Run a scenario: the same seeded fleet against the real runtime and against baselines.

Every run of a (scenario, seed) sees the same events: they come from one random
stream seeded by the seed, and the outcomes from another, so runs differ only by
what each one chose. Nothing reads the wall clock; the runtime gets a ManualClock
that moves one second per event.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import msgspec

from ..clock import ManualClock
from ..engines.context import ContextEngine
from ..engines.decision import FALLBACK, DecisionEngine
from ..records import Event, LearningPolicy, Rule
from .scenario import Fault, Scenario

__all__ = ["POLICIES", "Step", "World", "run"]

POLICIES = ("adaptive", "rules", "thompson")
"""adaptive: the runtime, told every outcome. rules: the runtime, told none.
thompson: Thompson sampling over the actions the rules name for each context and risk."""


class Step(msgspec.Struct, frozen=True, array_like=True):
    """One simulated event: what was chosen, how sure it was, and what the truth was."""

    t: int
    fault: str
    context: str
    action: str
    confidence: float
    success: bool
    p: float
    """The true chance that the chosen action fixes it."""
    best_candidate: float
    """The best true chance among the actions the rules name for this context and risk."""
    best_any: float
    """The best true chance among every action the scenario or the rules know."""
    alternative: bool = False
    """An alternative replaced the rules' choice (the runtime's `instead_of`; baselines: False)."""


_Chosen = tuple[str, str, str, float, bool]
"""context, risk, action, confidence, and whether an alternative replaced the rules' choice."""


class _Drawn(msgspec.Struct, frozen=True):
    t: int
    fault: Fault
    agent: str
    event: Event
    luck: float
    """The outcome draw: the chosen action works when luck < its chance."""


class World:
    """The seeded fleet: which fault each service has, its events, and the true chances."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        actions = {a for f in scenario.fault for a in f.success} | {
            a for s in scenario.shift for a in s.success
        }
        self.actions = sorted(actions - {"*"})

    def chance(self, fault: Fault, action: str, t: int, severity: float) -> float:
        """The true chance that `action` fixes `fault` at event t for an event of this severity."""
        table = fault.success
        p = table.get(action, table["*"])
        for shift in self.scenario.shift:
            if shift.fault == fault.name and t >= shift.at and action in shift.success:
                p = shift.success[action]
        effect = fault.severity_effect.get(action, 0.0)
        return min(1.0, max(0.0, p + effect * (severity - 0.5)))

    def events(self) -> list[_Drawn]:
        """Every event of the run, in order: the same list for every policy run on this seed."""
        s = self.scenario
        rng = random.Random(f"{s.name}/{self.seed}/events")
        luck = random.Random(f"{s.name}/{self.seed}/outcomes")
        weights = [f.weight for f in s.fault]
        current: dict[int, tuple[Fault, int]] = {}
        drawn: list[_Drawn] = []
        for t in range(s.events):
            service = rng.randrange(s.agents)
            fault, left = current.get(service, (None, 0))
            if fault is None or left <= 0:
                fault = rng.choices(s.fault, weights)[0]
                left = rng.randint(*fault.duration)
            current[service] = (fault, left - 1)
            drawn.append(_Drawn(t, fault, f"svc-{service}", _event(rng, fault, t), luck.random()))
        return drawn


def _event(rng: random.Random, fault: Fault, t: int) -> Event:
    shape = fault.event
    if shape.type is not None:
        kind = shape.type
    else:
        kinds = sorted(shape.types)
        kind = rng.choices(kinds, [shape.types[k] for k in kinds])[0]
    return Event(
        type=kind,
        id=f"sim-{t}",
        severity=round(rng.uniform(*shape.severity), 3),
        cpu=round(rng.uniform(*shape.cpu), 3),
        memory=round(rng.uniform(*shape.memory), 3),
        error_rate=round(rng.uniform(*shape.error_rate), 3),
        latency_ms=round(rng.uniform(*shape.latency_ms), 3),
    )


def run(
    scenario: Scenario,
    seed: int,
    policy: str = "adaptive",
    *,
    rules: Sequence[Rule] = (),
    learning: LearningPolicy | None = None,
    journal: str = "memory:",
) -> list[Step]:
    """Run one policy on one seed of the scenario and return every step.

    `journal` is where the runtime journals (a path keeps it, for `explain` or replay).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    world = World(scenario, seed)
    drawn = world.events()
    engine = DecisionEngine(custom_rules=rules)
    universe = sorted(set(world.actions) | {r.action for r in engine.rules} | _alternatives(engine))
    if policy == "thompson":
        chosen = _thompson(world, drawn, engine)
    else:
        learn = policy == "adaptive"
        chosen = asyncio.run(_runtime(drawn, rules, learning, journal, learn=learn, world=world))
    steps: list[Step] = []
    for d, (context, risk, action, confidence, alternative) in zip(drawn, chosen, strict=True):
        sev = d.event.severity
        candidates = [c.action for c in engine.scope(context, risk)[1]] or [FALLBACK.action]
        p = world.chance(d.fault, action, d.t, sev)
        steps.append(
            Step(
                t=d.t,
                fault=d.fault.name,
                context=f"{context}/{risk}",
                action=action,
                confidence=confidence,
                success=d.luck < p,
                p=p,
                best_candidate=max(world.chance(d.fault, a, d.t, sev) for a in candidates),
                best_any=max(world.chance(d.fault, a, d.t, sev) for a in universe),
                alternative=alternative,
            )
        )
    return steps


def _alternatives(engine: DecisionEngine) -> set[str]:
    return {a for r in engine.rules for a in r.alternatives} | {FALLBACK.action}


async def _runtime(
    drawn: list[_Drawn],
    rules: Sequence[Rule],
    learning: LearningPolicy | None,
    journal: str,
    *,
    learn: bool,
    world: World,
) -> list[_Chosen]:
    from ..runtime.host import Host  # here: the engines-only baselines need no runtime

    clock = ManualClock()
    out: list[_Chosen] = []
    async with Host(
        journal, clock=clock, rules=list(rules), learning=learning, durability="normal"
    ) as host:
        for d in drawn:
            clock.advance(1.0)
            agent = host.agent(d.agent)
            decision = await agent.process(d.event)
            out.append(
                (
                    decision.context,
                    decision.risk,
                    decision.action,
                    decision.confidence,
                    decision.instead_of is not None,
                )
            )
            if learn:
                p = world.chance(d.fault, decision.action, d.t, d.event.severity)
                await agent.record_outcome(decision, success=d.luck < p)
    return out


def _thompson(world: World, drawn: list[_Drawn], engine: DecisionEngine) -> list[_Chosen]:
    """Thompson sampling with a Beta(1, 1) prior per (agent, context, risk, action)."""
    rng = random.Random(f"{world.scenario.name}/{world.seed}/thompson")
    classify = ContextEngine().classify
    counts: dict[tuple[str, str, str, str], list[float]] = {}
    out: list[_Chosen] = []
    for d in drawn:
        ctx = classify(d.event)
        candidates = [c.action for c in engine.scope(ctx.context, ctx.risk)[1]]
        candidates = candidates or [FALLBACK.action]
        best, best_draw = candidates[0], -1.0
        for action in candidates:
            s, f = counts.get((d.agent, ctx.context, ctx.risk, action), (0.0, 0.0))
            draw = rng.betavariate(1.0 + s, 1.0 + f)
            if draw > best_draw:
                best, best_draw = action, draw
        tally = counts.setdefault((d.agent, ctx.context, ctx.risk, best), [0.0, 0.0])
        confidence = (1.0 + tally[0]) / (2.0 + tally[0] + tally[1])
        p = world.chance(d.fault, best, d.t, d.event.severity)
        tally[0 if d.luck < p else 1] += 1.0
        out.append((ctx.context, ctx.risk, best, round(confidence, 4), False))
    return out
