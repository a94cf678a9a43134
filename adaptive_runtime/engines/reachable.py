"""Names in a host's set-up that no decision can reach: mistyped names, most often.

An approval policy that names an action no rule decides gates nothing; a fleet policy
that counts one as disruptive holds nothing back; a handler registered for one never
runs; an escalation step with no handler is owed for ever once a check fails; a custom
rule for a context no event is given never matches. None of these is refused (a rule
that decides the action may come later, with `set_rules`; a plugin enabled later may
give the context), so the host logs a warning for each at start, with the nearest name
it knows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from ..records import Rule
from .context import DEFAULT_CONTEXT_MAP

__all__ = [
    "decided_by",
    "meant_event_type",
    "near_event_type",
    "nearest",
    "unknown_context",
    "unmatched_rules",
    "unreachable",
]

BUILT_IN_CONTEXTS = frozenset(DEFAULT_CONTEXT_MAP.values())
UNKNOWN_PREFIX = "unknown_"
"""The built-in map gives an event type it does not know the context unknown_<type>."""


def decided_by(rules: Iterable[Rule]) -> set[str]:
    """Every action these rules can decide: each rule's own and its alternatives."""
    out: set[str] = set()
    for rule in rules:
        out.add(rule.action)
        out.update(rule.alternatives)
    return out


def unreachable(
    *,
    decided: Collection[str],
    handlers: Collection[str],
    ladders: Mapping[str, Sequence[str]],
    approvals: Sequence[str] = (),
    disruptive: Sequence[str] = (),
) -> list[str]:
    """A warning for each name of the set-up that no decision reaches, in a stable order.

    `decided`: the actions the rules can decide; `handlers`: the actions with a handler;
    `ladders`: each action's escalation steps; `approvals`: the actions an approval
    policy names; `disruptive`: the actions a fleet policy counts.
    """
    reachable = set(decided).union(*ladders.values())
    out: list[str] = []
    for name in approvals:
        if name not in reachable:
            out.append(
                f"the approval policy names {name!r}, which no rule decides and no escalation"
                f" ladder names: it gates nothing{_nearest(name, reachable)}"
            )
    for name in disruptive:
        if name not in reachable:
            out.append(
                f"the fleet policy counts {name!r} as disruptive, but no rule decides it and no"
                f" escalation ladder names it: no budget, floor or cooldown holds it"
                f"{_nearest(name, reachable)}"
            )
    for name in sorted(set(handlers) - reachable):
        out.append(
            f"a handler is registered for {name!r}, which no rule decides and no escalation"
            f" ladder names: it never runs{_nearest(name, reachable)}"
        )
    for action, steps in sorted(ladders.items()):
        for step in steps:
            if step not in handlers:
                out.append(
                    f"the escalation ladder of {action!r} names {step!r}, which has no handler:"
                    f" once a check of {action!r} fails, that step is owed and never runs"
                    f"{_nearest(step, handlers)}"
                )
    return out


def unknown_context(context: str, consequence: str) -> str | None:
    """If the built-in map gives no event `context` (for a host with no plugin, whose
    analysers could give it): "the context ..., which no event is given (...): `consequence`",
    with the nearest context, for a warning; else None."""
    if context in BUILT_IN_CONTEXTS or context.startswith(UNKNOWN_PREFIX):
        return None
    return (
        f"the context {context!r}, which no event is given (the contexts are"
        f" {', '.join(sorted(BUILT_IN_CONTEXTS))}, and {UNKNOWN_PREFIX}<type> for any other"
        f" event type): {consequence}{_nearest(context, BUILT_IN_CONTEXTS)}"
    )


def meant_event_type(event_type: str) -> str | None:
    """The built-in event type `event_type` is close to, if it is not one itself (a typo,
    most likely; a type far from all of them is taken as an event's own); else None."""
    if event_type in DEFAULT_CONTEXT_MAP:
        return None
    return nearest(event_type, DEFAULT_CONTEXT_MAP)


def near_event_type(event_type: str, consequence: str) -> str | None:
    """If `event_type` is not one the built-in map knows but is close to one (a typo, most
    likely; a type far from all of them is taken as an event's own): "the event type ...,
    which the built-in map does not know: `consequence` unless events of that type are
    sent (did you mean ...?)", for a note; else None."""
    meant = meant_event_type(event_type)
    if meant is None:
        return None
    return (
        f"the event type {event_type!r}, which the built-in map does not know: {consequence}"
        f" unless events of that type are sent (did you mean {meant!r}?)"
    )


def unmatched_rules(rules: Sequence[Rule]) -> list[str]:
    """A warning for each custom rule whose context the built-in map never gives (see
    unknown_context), in the rules' order."""
    out: list[str] = []
    for index, rule in enumerate(rules):
        said = None if rule.context is None else unknown_context(rule.context, "it never matches")
        if said is not None:
            out.append(f"custom[{index}] is a rule for {said}")
    return out


def nearest(name: str, known: Collection[str]) -> str | None:
    """The known name closest to `name`, if one is close enough to be what was meant."""
    import difflib  # only when there is something to warn of: not on every import

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None


def _nearest(name: str, known: Collection[str]) -> str:
    close = nearest(name, known)
    return f" (did you mean {close!r}?)" if close is not None else ""
