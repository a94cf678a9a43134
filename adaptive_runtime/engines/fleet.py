"""Fleet-level safety, as pure functions: correlate agents that fail together, and bound how
many disruptive actions the fleet takes at once.

Agents fail together: a bad deploy makes fifty services report the same trouble in the
same minute, and fifty independent restarts make it worse. A host sees the whole fleet,
so it keeps a FleetView, folded from the journal's global order (never from wall time or
arrival order), and every decision passes through `gate`:

- **Correlate.** When decisions of one context come from at least `correlate_agents`
  agents within `correlate_window` seconds, a fleet incident opens (journaled with the
  decision that tripped it: which agents, which decisions, which rule).
- **Bound the blast radius.** At most `budget` disruptive actions per `budget_window`
  seconds across the fleet, and none for a context with an open incident if
  `hold_during_incident`. A decision over the budget is degraded to the next rule the
  table would have chosen whose action is not disruptive; the decision says why.
- **Cool down.** At most one of each disruptive action per target (the agent, with the
  event's target label) per `cooldown` seconds; a second within it is degraded the same way.
- **Floors.** Within `budget_window`, disruptive actions on at most `max_share` of the
  fleet's agents, and at least `min_untouched` agents with none; past either, degraded.
- **Deduplicate.** An event whose `fingerprint` an agent saw within `dedup_window`
  seconds is a repeat: decided by the fallback rule, naming the first, so it acts once.
"""

from __future__ import annotations

import msgspec

from ..records import DEFAULT_DISRUPTIVE, Decision, FleetIncident, FleetPolicy
from .decision import FALLBACK, DecisionEngine, RuleMatch

__all__ = [
    "DEFAULT_DISRUPTIVE",
    "Counted",
    "FleetPolicy",
    "FleetView",
    "acting",
    "close_episode",
    "fingerprint_key",
    "gate_in_fleet",
    "held_back",
    "observe",
    "open_incident",
    "restamp",
    "uncount",
]

Counted = tuple[int, str, str, str | None, int | None]
"""A disruptive action as the windows took it in: (ts_ns, agent, action, its cooldown key
or None, the cooldown's previous time for that key or None), so that it can be taken out."""


class FleetView(msgspec.Struct, kw_only=True):
    """What the fleet has decided lately, folded in journal order; the gate reads it."""

    policy: FleetPolicy = FleetPolicy()
    recent: dict[str, list[tuple[int, str, int]]] = {}
    """Per context: (ts_ns, agent, stream_seq) of the decisions in the correlation window."""
    disruptive: list[tuple[int, str, str]] = []
    """(ts_ns, agent, action) of the disruptive actions decided in the budget window."""
    incidents: dict[str, int] = {}
    """Per context with an incident: the ts_ns of its latest decision (open within the window)."""
    last_acted: dict[str, int] = {}
    """Per target and disruptive action: the ts_ns it was last decided (within the cooldown)."""
    targets: dict[str, str | None] = {}
    """Per agent: the target of its event whose decision is still to be folded."""
    agents: dict[str, None] = {}
    """Every agent that has had a decision: the fleet the floors count."""
    fingerprints: dict[str, tuple[int, int]] = {}
    """Per agent and fingerprint: (ts_ns, stream_seq) of the first decision in its window."""
    pending_fingerprints: dict[str, str | None] = {}
    """Per agent: the fingerprint of its event whose decision is still to be folded."""
    fold: int = 1
    """How the action windows count (FleetPolicySet.fold): 1, every disruptive decision
    when it is made; 2, each from its decision, less those the journal says will not run
    (skipped, denied, given up unrun), and from when it runs for those that run later
    (approved, or owed by a silence)."""
    last_counted: tuple[int, Counted] | None = None
    """(seq, what it counted) of the last decision folded, if it counted an action (fold 2)."""
    awaiting: dict[int, Counted] = {}
    """Per decision seq: the action counted while it waits for a person's answer (fold 2)."""
    owed: dict[int, Counted] = {}
    """Per decision seq: the action counted while a `fire_after` silence holds it (fold 2)."""
    fire_after: dict[str, None] = {}
    """The ids of the `fire_after` silences not ended: what they skip is owed."""

    def copy(self) -> FleetView:
        return FleetView(
            policy=self.policy,
            recent={c: list(v) for c, v in self.recent.items()},
            disruptive=list(self.disruptive),
            incidents=dict(self.incidents),
            last_acted=dict(self.last_acted),
            targets=dict(self.targets),
            agents=dict(self.agents),
            fingerprints=dict(self.fingerprints),
            pending_fingerprints=dict(self.pending_fingerprints),
            fold=self.fold,
            last_counted=self.last_counted,
            awaiting=dict(self.awaiting),
            owed=dict(self.owed),
            fire_after=dict(self.fire_after),
        )


def close_episode(view: FleetView, agent: str, fingerprint: str) -> None:
    """Fold an EpisodeClosed: the fingerprint's next event is decided afresh."""
    view.fingerprints.pop(fingerprint_key(agent, fingerprint), None)


def held_back(decision: Decision) -> bool:
    """Whether the fleet policy let a decision stand but holds its action back (a cooldown
    with on_cooldown="skip"): it says why and was not degraded."""
    return decision.fleet is not None and decision.degraded_from is None


def acting(decision: Decision) -> str:
    """The action a decision takes, as the windows count it: none when it is held back."""
    return "" if held_back(decision) else decision.action


def fingerprint_key(agent: str, fingerprint: str) -> str:
    return f"{agent}\x1f{fingerprint}"


def cooldown_key(agent: str, target: str | None, action: str) -> str:
    """The cooldown's key: the agent, the event's target label (if any), the action."""
    return f"{agent}\x1f{target or ''}\x1f{action}"


def observe(
    view: FleetView,
    ts_ns: int,
    agent: str,
    context: str,
    action: str,
    stream_seq: int,
    target: str | None = None,
    fingerprint: str | None = None,
) -> Counted | None:
    """Fold one decision into the view (in place), dropping what left the windows.

    Returns what it counted of a disruptive action (for `uncount`), or None.
    """
    policy = view.policy
    counted_key: str | None = None
    previous: int | None = None
    view.agents[agent] = None
    if policy.dedup_window is not None and fingerprint is not None:
        since = ts_ns - round(policy.dedup_window * 1e9)
        seen = {k: v for k, v in view.fingerprints.items() if v[0] > since}
        seen.setdefault(fingerprint_key(agent, fingerprint), (ts_ns, stream_seq))
        view.fingerprints = seen
    if policy.cooldown is not None and action in policy.disruptive:
        since = ts_ns - round(policy.cooldown * 1e9)
        acted = {k: t for k, t in view.last_acted.items() if t > since}
        counted_key = cooldown_key(agent, target, action)
        previous = acted.get(counted_key)
        acted[counted_key] = ts_ns
        view.last_acted = acted
    window = round(policy.correlate_window * 1e9)
    recent = [r for r in view.recent.get(context, ()) if r[0] >= ts_ns - window]
    recent.append((ts_ns, agent, stream_seq))
    view.recent[context] = recent
    if context in view.incidents and view.incidents[context] >= ts_ns - window:
        view.incidents[context] = ts_ns  # the incident stays open while decisions keep coming
    horizon = ts_ns - round(policy.budget_window * 1e9)
    kept = [d for d in view.disruptive if d[0] >= horizon]
    if action in policy.disruptive:
        kept.append((ts_ns, agent, action))
    view.disruptive = kept
    if action not in policy.disruptive:
        return None
    return (ts_ns, agent, action, counted_key, previous)


def uncount(view: FleetView, counted: Counted) -> None:
    """Take an action the windows counted out of them again: it will not run."""
    ts_ns, agent, action, key, previous = counted
    if (ts_ns, agent, action) in view.disruptive:  # else it left the budget window already
        view.disruptive.remove((ts_ns, agent, action))
    if key is not None and view.last_acted.get(key) == ts_ns:
        if previous is None:
            del view.last_acted[key]
        else:
            view.last_acted[key] = previous


def restamp(view: FleetView, counted: Counted, ts_ns: int) -> None:
    """An action counted from its decision runs only now (approved, or owed by a silence
    that ended): it counts from now instead."""
    uncount(view, counted)
    _, agent, action, key, _ = counted
    view.disruptive.append((ts_ns, agent, action))
    if key is not None and view.last_acted.get(key, ts_ns) <= ts_ns:
        view.last_acted[key] = ts_ns


def open_incident(view: FleetView, incident: FleetIncident, ts_ns: int) -> None:
    """Fold a journaled incident into the view."""
    view.incidents[incident.context] = ts_ns


def gate_in_fleet(
    view: FleetView,
    decision: Decision,
    agent: str,
    engine: DecisionEngine,
    target: str | None = None,
    fingerprint: str | None = None,
) -> tuple[Decision, FleetIncident | None]:
    """Pass a decision through the fleet's policy: maybe open an incident, maybe degrade it.

    The decision records the policy's hash when one is active, so what shaped it is known.
    """
    policy = view.policy
    if not policy.active:
        return decision, None
    decision = msgspec.structs.replace(decision, fleet_policy=policy.digest)
    ts = decision.ts_ns
    dedup_ns = None if policy.dedup_window is None else round(policy.dedup_window * 1e9)
    first = (
        None
        if dedup_ns is None or fingerprint is None
        else view.fingerprints.get(fingerprint_key(agent, fingerprint))
    )
    if first is not None and dedup_ns is not None and first[0] > ts - dedup_ns:
        repeated = (
            f"repeat of fingerprint {fingerprint}, first decided at stream seq {first[1]}"
            f" {(ts - first[0]) / 1e9:g}s ago"
        )
        return _replaced(
            decision, engine.match_rule("fallback", FALLBACK, decision.risk), repeated
        ), None
    incident = _correlate(view, decision, agent)
    window = round(policy.correlate_window * 1e9)
    last = view.incidents.get(decision.context)
    open_incident_now = incident is not None or (last is not None and last >= ts - window)
    if decision.action not in policy.disruptive:
        return decision, incident
    why = None
    horizon = ts - round(policy.budget_window * 1e9)
    spent = sum(1 for d in view.disruptive if d[0] >= horizon)
    last = (
        None
        if policy.cooldown is None
        else view.last_acted.get(cooldown_key(agent, target, decision.action))
    )
    if policy.cooldown is not None and last is not None and last > ts - policy.cooldown * 1e9:
        where = agent if target is None else f"{agent}/{target}"
        why = (
            f"cooldown: {decision.action} for {where} at most once per {policy.cooldown:g}s"
            f" (the last {(ts - last) / 1e9:g}s ago)"
        )
        if policy.on_cooldown == "skip":  # the decision stands; its action is skipped
            return msgspec.structs.replace(decision, fleet=why), incident
    elif (floor := _floor(view, agent, horizon)) is not None:
        why = floor
    elif policy.hold_during_incident and open_incident_now:
        why = f"held: a fleet incident is open for {decision.context}"
    elif policy.budget is not None and spent >= policy.budget:
        why = (
            f"fleet budget spent: {spent} of {policy.budget} disruptive actions in the last "
            f"{policy.budget_window:g}s"
        )
    if why is None:
        return decision, incident
    return _degrade(decision, engine, policy, why), incident


def _floor(view: FleetView, agent: str, horizon: int) -> str | None:
    """Why one more disruptive action (on `agent`) would pass a fleet floor, or None."""
    policy = view.policy
    if policy.max_share is None and policy.min_untouched is None:
        return None
    acted = {a for ts, a, _ in view.disruptive if ts >= horizon} | {agent}
    fleet = len(view.agents.keys() | {agent})
    window = f"{policy.budget_window:g}s"
    if policy.max_share is not None and len(acted) > policy.max_share * fleet:
        return (
            f"fleet floor: acting on {len(acted)} of {fleet} agents within {window} passes"
            f" max_share {policy.max_share:g}"
        )
    if policy.min_untouched is not None and fleet - len(acted) < policy.min_untouched:
        return (
            f"fleet floor: {fleet - len(acted)} of {fleet} agents would be left untouched"
            f" within {window}; min_untouched is {policy.min_untouched}"
        )
    return None


def _correlate(view: FleetView, decision: Decision, agent: str) -> FleetIncident | None:
    policy = view.policy
    if policy.correlate_agents <= 0:
        return None
    ts, context = decision.ts_ns, decision.context
    window = round(policy.correlate_window * 1e9)
    last = view.incidents.get(context)
    if last is not None and last >= ts - window:
        return None  # already open
    recent = [r for r in view.recent.get(context, ()) if r[0] >= ts - window]
    agents = sorted({a for _, a, _ in recent} | {agent})
    if len(agents) < policy.correlate_agents:
        return None
    return FleetIncident(
        context=context,
        agents=tuple(agents),
        decisions=tuple((a, seq) for _, a, seq in recent),
        rule=(
            f"{policy.correlate_agents} agents decided {context} within "
            f"{policy.correlate_window:g}s"
        ),
    )


def _degrade(decision: Decision, engine: DecisionEngine, policy: FleetPolicy, why: str) -> Decision:
    """The decision the rule table gives once disruptive actions are off the table."""
    safer: RuleMatch | None = None
    passed = False
    for check in engine.explain_all(decision.context, decision.risk, decision.confidence):
        if check.rule == decision.rule:
            passed = True
            continue
        if passed and check.matched and check.definition.action not in policy.disruptive:
            safer = engine.match_rule(check.rule, check.definition, decision.risk)
            break
    if safer is None:
        safer = engine.match_rule("fallback", FALLBACK, decision.risk)
    return _replaced(decision, safer, why)


def _replaced(decision: Decision, match: RuleMatch, why: str) -> Decision:
    """The decision with another rule's action, naming the action it replaced and why."""
    return msgspec.structs.replace(
        decision,
        action=match.action,
        reason=match.reason,
        priority=match.priority,
        rule=match.rule,
        degraded_from=decision.action,
        fleet=why,
    )
