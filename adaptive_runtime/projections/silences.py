"""Silences and maintenance windows: folded from the `~host` stream, matched at decision time.

A silence is journaled (SilenceSet, SilenceEnded), so `explain`, replay and every host
sharing the journal see the same ones. Inside a silence, a matching decision is made and
journaled as ever, and its action is skipped with an ActionSkipped naming the silence.
When a silence ends, nothing skipped inside it fires afterwards, unless it was set with
`fire_after`: then the host runs those actions, once each (runtime.controls).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..engines.events import target_of
from ..journal.base import Journal
from ..records import HOST_STREAM, Entry, SilenceEnded, SilenceSet, read_as

__all__ = ["SILENCED_BY", "Silences", "read_silences", "silence_named", "target_of"]

SILENCED_BY = "silenced by "
"""How the reason of an action a silence skipped begins: then the silence's id, a space,
and its comment in brackets."""


def silence_named(reason: str) -> str | None:
    """The id of the silence a skipped action's reason names, or None (another reason)."""
    if not reason.startswith(SILENCED_BY):
        return None
    return reason[len(SILENCED_BY) :].split(" ", 1)[0]


class Silences(msgspec.Struct):
    """Every silence journaled and not ended, by id; `seq` is the last `~host` entry folded."""

    by_id: dict[str, SilenceSet] = {}
    seq: int = 0
    ended_by: dict[str, str] = {}
    """Who ended each silence ended by a record: what a second end is told."""

    def fold(self, entries: Iterable[Entry]) -> None:
        """Fold `~host` entries (any order of re-reads: a silence is keyed by its id)."""
        for entry in entries:
            if entry.stream != HOST_STREAM:
                continue
            if entry.kind == "SilenceSet":
                silence = read_as(entry, SilenceSet)
                self.by_id[silence.id] = silence
            elif entry.kind == "SilenceEnded":
                ended = read_as(entry, SilenceEnded)
                if self.by_id.pop(ended.id, None) is not None:
                    self.ended_by[ended.id] = ended.by
            self.seq = max(self.seq, entry.seq)

    def matching(
        self, *, agent: str, target: str | None, event_type: str, context: str, ts_ns: int
    ) -> SilenceSet | None:
        """The silence (earliest id first) covering a decision at ts_ns, or None."""
        for silence_id in sorted(self.by_id):
            s = self.by_id[silence_id]
            m = s.matcher
            if not s.starts_ns <= ts_ns < s.ends_ns:
                continue
            if (
                (m.agent is None or m.agent == agent)
                and (m.target is None or m.target == target)
                and (m.event_type is None or m.event_type == event_type)
                and (m.context is None or m.context == context)
            ):
                return s
        return None

    def listed(self, now_ns: int, *, ended: bool = False) -> list[SilenceSet]:
        """The silences in force or to come (with `ended`, the expired ones too), by start."""
        kept = [s for s in self.by_id.values() if ended or s.ends_ns > now_ns]
        return sorted(kept, key=lambda s: (s.starts_ns, s.id))


def read_silences(journal: Journal, after: int = 0) -> list[Entry]:
    """The `~host` entries after a seq (the silence fold skips the other kinds)."""
    return list(journal.read(HOST_STREAM, after=after))
