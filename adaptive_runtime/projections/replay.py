"""Re-decide journaled events: verify determinism, or ask what other rules would have done."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from ..engines.pipeline import Policy, decide
from ..errors import ReplayMismatchError
from ..journal import Journal
from ..records import Decision, DecisionMade, Entry, Event, EventReceived, Rule, read_record
from .agent import AgentState, evolve

__all__ = ["Mismatch", "Redecided", "ReplayReport", "redecide", "verify_replay", "what_if"]

_encode = msgspec.msgpack.Encoder().encode
Progress = Callable[[int], None]


class Redecided(msgspec.Struct, frozen=True, kw_only=True):
    """One journaled decision beside the one the engines make for it now."""

    seq: int
    event: Event
    journaled: Decision
    now: Decision

    @property
    def same_bytes(self) -> bool:
        return _encode(self.journaled) == _encode(self.now)


class Mismatch(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    fields: tuple[str, ...]
    """The decision fields that differ."""
    journaled: Decision
    replayed: Decision


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    decisions: int
    mismatches: tuple[Mismatch, ...]

    def check(self) -> None:
        """Raise ReplayMismatchError for the first mismatch, if there is one."""
        if self.mismatches:
            first = self.mismatches[0]
            msg = (
                f"{len(self.mismatches)} of {self.decisions} decisions differ on replay; the first is "
                f"seq {first.seq} ({', '.join(first.fields)}): run `adaptive-runtime replay --verify`"
            )
            raise ReplayMismatchError(msg, seq=first.seq)


def redecide(
    journal: Journal,
    stream: str | None = None,
    *,
    rules: Sequence[Rule] | None = None,
    progress: Progress | None = None,
) -> Iterator[Redecided]:
    """Yield every journaled decision beside a fresh one, each made from the state before it.

    With `rules`, the fresh decisions are made under those custom rules instead of the
    journaled ones (a what-if); the history still comes from the journal.
    """
    states: dict[str, AgentState] = {}
    policies: dict[tuple[Rule, ...], Policy] = {}
    events: dict[str, tuple[Entry, Event]] = {}
    fixed = None if rules is None else Policy(rules=rules)
    for count, entry in enumerate(journal.read(stream), start=1):
        if progress is not None and count % 100_000 == 0:
            progress(count)
        state = states.get(entry.stream)
        if state is None:
            state = states[entry.stream] = AgentState(stream=entry.stream)
        record = read_record(entry)
        if isinstance(record, EventReceived):
            events[entry.stream] = (entry, record.event)
        elif isinstance(record, DecisionMade):
            event_entry, event = events.pop(entry.stream)
            policy = fixed or policies.get(state.rules)
            if policy is None:
                policy = policies[state.rules] = Policy(rules=state.rules)
            fresh = decide(policy, state.history, event, event_entry.ts_ns)
            yield Redecided(seq=entry.seq, event=event, journaled=record.decision, now=fresh)
        evolve(state, entry)


def verify_replay(
    journal: Journal, stream: str | None = None, *, progress: Progress | None = None
) -> ReplayReport:
    """Re-decide every event from an empty state and compare, byte for byte, with the journal."""
    mismatches: list[Mismatch] = []
    decisions = 0
    for item in redecide(journal, stream, progress=progress):
        decisions += 1
        if not item.same_bytes:
            mismatches.append(
                Mismatch(
                    seq=item.seq,
                    fields=_differing(item.journaled, item.now),
                    journaled=item.journaled,
                    replayed=item.now,
                )
            )
    return ReplayReport(ok=not mismatches, decisions=decisions, mismatches=tuple(mismatches))


def what_if(journal: Journal, rules: Iterable[Rule], stream: str | None = None) -> list[Redecided]:
    """Return the journaled decisions whose action would change under other custom rules."""
    return [
        r
        for r in redecide(journal, stream, rules=tuple(rules))
        if r.now.action != r.journaled.action
    ]


def _differing(a: Decision, b: Decision) -> tuple[str, ...]:
    left: Mapping[str, Any] = msgspec.structs.asdict(a)
    right: Mapping[str, Any] = msgspec.structs.asdict(b)
    return tuple(name for name in left if _encode(left[name]) != _encode(right[name]))
