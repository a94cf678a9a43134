"""The operator's controls as the journal holds them: approvals and dead letters.

Requests (an approval's answer, a dead letter's retry or dismissal) are journaled in the
`~host` stream by whoever makes them (the CLI, the HTTP API, a host); the host that owns
the agent carries each out and journals what it did in the agent's own stream
(ApprovalDecided, ActionRetried), where the agent's fold schedules the action. So a
request made while no host runs is carried out by the next one, and one carried out
before a crash is not carried out twice.

An approval request takes one answer, and a dead letter one retry or dismissal: each is
journaled under an event id of its own (`approval:<decision seq>`, `dead-letter:<seq of
the abandonment>`), so of two people answering at once (from the CLI, the HTTP API, two
hosts) the journal takes the first, and the second is told who answered, and how.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..engines.events import approval_key, dead_letter_key
from ..errors import AlreadyAnsweredError, JournalCorruptError
from ..journal.base import Journal
from ..records import (
    ALERT_RESOLVED,
    ActionAbandoned,
    ActionAwaitingApproval,
    ActionRetried,
    ActionSkipped,
    ActionStarted,
    ApprovalDecided,
    ApprovalGiven,
    ApprovalPolicy,
    ApprovalPolicySet,
    DeadLetterDismissed,
    DeadLetterRetry,
    Entry,
    SilenceEnded,
    SilenceSet,
    read_as,
    read_record,
)
from .fleet import HOST_STREAM
from .rebuild import rebuild
from .silences import Silences, silence_named

__all__ = [
    "Answer",
    "DeadLetter",
    "FireAfter",
    "HostControls",
    "PendingApproval",
    "already_answered",
    "answer_under",
    "dead_letters",
    "decided_unanswered",
    "fire_after_owed",
    "left_to_a_person",
    "letter_answer",
    "owed_after_silence",
    "pending_approvals",
    "pending_of",
    "refuse_unless_repeat",
    "retry_wanted",
    "unanswered_approvals",
    "waits_for_approval",
]

REQUEST_KINDS = frozenset({"ApprovalGiven", "DeadLetterRetry"})


class HostControls:
    """The `~host` stream folded: silences, the approval policy, and requests to carry out."""

    __slots__ = (
        "approvals",
        "fire_after_ended",
        "fire_after_seen",
        "seq",
        "silences",
        "stream_seq",
    )

    def __init__(self) -> None:
        self.silences = Silences()
        self.approvals: ApprovalPolicy | None = None
        self.seq = 0
        self.stream_seq = 0
        """`~host`'s stream_seq as last folded: what a batch planned now was planned from."""
        self.fire_after_ended = False
        """A `fire_after` silence was ended by a record since this was last reset (its
        skipped actions are owed: see fire_after_owed)."""
        self.fire_after_seen = False
        """A `fire_after` silence was ever journaled: only then can one owe anything."""

    def fold(self, entries: Iterable[Entry]) -> list[Entry]:
        """Fold `~host` entries past the last one seen; return the requests among them."""
        fresh = [e for e in entries if e.stream == HOST_STREAM and e.seq > self.seq]
        fire_after = {i for i, s in self.silences.by_id.items() if s.fire_after}
        for entry in fresh:  # in seq order: one set and ended in this fold counts too
            if entry.kind == "SilenceSet":
                silence = read_as(entry, SilenceSet)
                if silence.fire_after:
                    fire_after.add(silence.id)
                    self.fire_after_seen = True
            elif entry.kind == "SilenceEnded" and read_as(entry, SilenceEnded).id in fire_after:
                self.fire_after_ended = True
        self.silences.fold(fresh)
        for entry in fresh:
            if entry.kind == "ApprovalPolicySet":
                self.approvals = read_as(entry, ApprovalPolicySet).policy
            self.seq = max(self.seq, entry.seq)
            self.stream_seq = max(self.stream_seq, entry.stream_seq)
        return [e for e in fresh if e.kind in REQUEST_KINDS]


class PendingApproval(msgspec.Struct, frozen=True, kw_only=True):
    agent: str
    decision_seq: int
    action: str
    reason: str
    requested_ns: int
    expires_ns: int

    def open_at(self, ts_ns: int) -> bool:
        """Whether an answer at ts_ns is in time: past expires_ns the request is denied by
        default, whether or not a host has journaled that yet."""
        return ts_ns < self.expires_ns


def pending_approvals(journal: Journal) -> dict[tuple[str, int], PendingApproval]:
    """Every approval request not yet decided, by (agent, decision seq)."""
    pending: dict[tuple[str, int], PendingApproval] = {}
    for entry in journal.read(kind="ActionAwaitingApproval"):
        request = pending_of(entry)
        pending[(request.agent, request.decision_seq)] = request
    for entry in journal.read(kind="ApprovalDecided"):
        pending.pop((entry.stream, read_as(entry, ApprovalDecided).decision_seq), None)
    return pending


Answer = ApprovalGiven | DeadLetterRetry | DeadLetterDismissed
"""An operator's request that takes one per approval request or dead letter."""


def answer_under(journal: Journal, key: str) -> Answer | None:
    """The answer journaled under `key` (approval_key, dead_letter_key), carried out or
    not; None if none was."""
    entry = journal.by_event_id(key)
    if entry is None or entry.kind not in (
        "ApprovalGiven",
        "DeadLetterRetry",
        "DeadLetterDismissed",
    ):
        return None
    record = read_record(entry)
    assert isinstance(record, ApprovalGiven | DeadLetterRetry | DeadLetterDismissed)
    return record


def already_answered(given: Answer) -> AlreadyAnsweredError:
    """The error for an answer to what has one: who gave it, and what it was."""
    if isinstance(given, ApprovalGiven):
        verdict = "approved" if given.approve else "denied"
        what = f"the approval request for the decision at seq {given.decision_seq}"
    else:
        verdict = "retried" if isinstance(given, DeadLetterRetry) else "dismissed"
        what = f"the dead letter of the decision at seq {given.decision_seq}"
    msg = (
        f"{what} was already answered: {verdict} by {given.by}. The first answer stands;"
        " nothing was journaled for this one"
    )
    return AlreadyAnsweredError(msg, decision_seq=given.decision_seq, answer=verdict, by=given.by)


def decided_unanswered(journal: Journal, decision_seq: int) -> AlreadyAnsweredError | None:
    """For an approval request that is neither waiting nor answered under its key: the
    error saying how it ended (denied by its timeout, most often), or None if no request
    of the decision at `decision_seq` has ended (it never asked for approval, or the
    timeout that ends it is not journaled yet)."""
    for entry in journal.read(kind="ApprovalDecided"):
        decided = read_as(entry, ApprovalDecided)
        if decided.decision_seq != decision_seq:
            continue
        verdict = "approved" if decided.approved else "denied"
        how = (
            "timed out unanswered: denied by default"
            if decided.by == "timeout"
            else f"was already answered: {verdict} by {decided.by}"
        )
        msg = (
            f"the approval request for the decision at seq {decision_seq} {how} (seq"
            f" {entry.seq}). Nothing was journaled for this answer"
        )
        return AlreadyAnsweredError(msg, decision_seq=decision_seq, answer=verdict, by=decided.by)
    return None


def refuse_unless_repeat(given: Answer, mine: Answer) -> None:
    """Raise AlreadyAnsweredError naming `given`, the answer taken, unless `mine` is that
    very answer sent again (a client retrying after a lost reply): taken already."""
    if mine != given:
        raise already_answered(given)


def letter_answer(journal: Journal, decision_seq: int) -> Answer | None:
    """The retry or dismissal taken for the last dead letter of the decision at
    `decision_seq` (carried out or not), or None: for a request sent again once the
    letter is off the list (a client retrying after a lost reply)."""
    last = None
    for entry in journal.read(kind="ActionAbandoned"):
        if read_as(entry, ActionAbandoned).decision_seq == decision_seq:
            last = entry.seq
    return None if last is None else answer_under(journal, dead_letter_key(last))


def unanswered_approvals(
    journal: Journal,
) -> tuple[list[PendingApproval], dict[int, ApprovalGiven]]:
    """The approval requests not yet decided, by decision seq: those with no answer yet,
    and the answers journaled to the others (to be carried out by the host that serves
    the agent; one that carried an answer out has decided it)."""
    requests = sorted(pending_approvals(journal).values(), key=lambda p: p.decision_seq)
    answered: dict[int, ApprovalGiven] = {}
    for p in requests:
        given = answer_under(journal, approval_key(p.decision_seq))
        if isinstance(given, ApprovalGiven):
            answered[p.decision_seq] = given
    return [p for p in requests if p.decision_seq not in answered], answered


def pending_of(entry: Entry) -> PendingApproval:
    """The approval request an ActionAwaitingApproval entry makes."""
    waiting = read_as(entry, ActionAwaitingApproval)
    return PendingApproval(
        agent=entry.stream,
        decision_seq=entry.seq - 1,  # journaled right after its decision, in one batch
        action=waiting.action,
        reason=waiting.reason,
        requested_ns=entry.ts_ns,
        expires_ns=waiting.expires_ns,
    )


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """An action given up after its attempts, and not retried or dismissed since."""

    agent: str
    decision_seq: int
    action: str
    attempts: int
    reason: str
    abandoned_seq: int
    abandoned_ns: int


class UnfinishedAction(msgspec.Struct, frozen=True, kw_only=True):
    """An action its decision scheduled that has not finished: what a host resumes."""

    agent: str
    decision_seq: int
    action: str
    state: str
    """scheduled, running, retrying, verifying, or failed (see OpenAction.step)."""
    attempt: int
    """The last attempt started (0: none yet)."""
    due_ns: int
    """When its next step is due: an attempt, a retry, or the check of its effect."""


def unfinished_actions(journal: Journal) -> list[UnfinishedAction]:
    """Every agent's actions scheduled and not finished, by agent and decision seq.

    A running one had started an attempt with no result journaled: either a host is
    running it now, or the process stopped during it and the next start resumes it.
    """
    out: list[UnfinishedAction] = []
    for stream in journal.streams():
        if stream == HOST_STREAM:
            continue
        opened = rebuild(journal, stream).state.open_actions
        for seq, open_action in sorted(opened.items()):
            out.append(
                UnfinishedAction(
                    agent=stream,
                    decision_seq=seq,
                    action=open_action.action,
                    state=open_action.step,
                    attempt=open_action.attempt,
                    due_ns=open_action.due_ns,
                )
            )
    return out


def owed_after_silence(journal: Journal, agent: str, decision_seq: int) -> str | None:
    """The action a `fire_after` silence, in force or over, still owes the decision at
    `decision_seq` (see fire_after_owed), or None."""
    for owed in _owed_by_fire_after(journal, None):
        if (owed.agent, owed.decision_seq) == (agent, decision_seq):
            return owed.action
    return None


def dead_letters(journal: Journal) -> list[DeadLetter]:
    """The dead-letter queue: abandoned actions with no run, retry or dismissal after it
    (one abandoned because its alert resolved is not on it: nothing is left to do)."""
    abandoned: dict[tuple[str, int], DeadLetter] = {}
    for entry in journal.read(kind="ActionAbandoned"):
        record = read_as(entry, ActionAbandoned)
        if record.reason == ALERT_RESOLVED:
            abandoned.pop((entry.stream, record.decision_seq), None)
            continue
        abandoned[(entry.stream, record.decision_seq)] = DeadLetter(
            agent=entry.stream,
            decision_seq=record.decision_seq,
            action=record.action,
            attempts=record.attempts,
            reason=record.reason,
            abandoned_seq=entry.seq,
            abandoned_ns=entry.ts_ns,
        )
    later: dict[tuple[str, int], int] = {}
    for kind in ("ActionStarted", "ActionRetried"):
        for entry in journal.read(kind=kind):
            key = (entry.stream, _decision_of(entry))
            later[key] = max(later.get(key, 0), entry.seq)
    for entry in journal.read(HOST_STREAM, kind="DeadLetterDismissed"):
        gone = read_as(entry, DeadLetterDismissed)
        key = (gone.agent, gone.decision_seq)
        later[key] = max(later.get(key, 0), entry.seq)
    return sorted(
        (d for key, d in abandoned.items() if later.get(key, 0) < d.abandoned_seq),
        key=lambda d: d.abandoned_seq,
    )


class FireAfter(msgspec.Struct, frozen=True):
    """An action a `fire_after` silence skipped, owed now that the silence is over."""

    agent: str
    decision_seq: int
    action: str
    silence_id: str


def fire_after_owed(journal: Journal, now_ns: int) -> list[FireAfter]:
    """Each action skipped by a `fire_after` silence that is over (ended early, or past
    its end at now_ns), with nothing run or left to a person since, in seq order.

    Read from the journal, not from one host's view of the silences: every host owes the
    ones of the agents it serves, whichever host saw the end first, and a host that takes
    an agent up later owes that agent's."""
    return _owed_by_fire_after(journal, now_ns)


def _owed_by_fire_after(journal: Journal, over_at: int | None) -> list[FireAfter]:
    """Each action a `fire_after` silence skipped, with nothing run or left to a person
    since: of the silences over at `over_at` (ended early, or past their end), or of every
    one with None."""
    fire_after: dict[str, SilenceSet] = {}
    ended: set[str] = set()
    for entry in journal.read(HOST_STREAM):
        if entry.kind == "SilenceSet":
            silence = read_as(entry, SilenceSet)
            if silence.fire_after:
                fire_after[silence.id] = silence
        elif entry.kind == "SilenceEnded":
            ended.add(read_as(entry, SilenceEnded).id)
    over = {
        i for i, s in fire_after.items() if over_at is None or i in ended or s.ends_ns <= over_at
    }
    if not over:
        return []
    owed: dict[tuple[str, int], FireAfter] = {}
    for entry in journal.read(kind="ActionSkipped"):
        record = read_as(entry, ActionSkipped)
        silence_id = silence_named(record.reason)
        if silence_id is not None and silence_id in over:  # in its decision's batch, after it
            key = (entry.stream, entry.seq - 1)
            owed[key] = FireAfter(entry.stream, entry.seq - 1, record.action, silence_id)
    for entry in journal.read(kind="ActionRetried"):  # run since
        owed.pop((entry.stream, read_as(entry, ActionRetried).decision_seq), None)
    for entry in journal.read(kind="ActionAbandoned"):  # left to a person (needs_approval)
        owed.pop((entry.stream, read_as(entry, ActionAbandoned).decision_seq), None)
    return [owed[key] for key in sorted(owed, key=lambda k: k[1])]


def left_to_a_person(journal: Journal, decision_seq: int) -> str:
    """For an approval asked of a decision with no request waiting: how to give the yes
    to an action of it the controls left to a person as a dead letter (an escalation step,
    or one a silence skipped), as a clause to add to the refusal; else ""."""
    for letter in dead_letters(journal):
        if letter.decision_seq == decision_seq and letter.attempts == 0:
            return (
                f"; its {letter.action} waits as a dead letter ({letter.reason}): `retry"
                f" {decision_seq}` runs it, `dismiss {decision_seq}` drops it"
            )
    return ""


def waits_for_approval(journal: Journal, decision_seq: int, now_ns: int) -> str:
    """For a retry or dismissal asked of a decision with no dead letter: how to answer the
    approval request its action waits on (the other list a person answers), as a clause
    to add to the refusal; else ""."""
    requests, _ = unanswered_approvals(journal)
    for request in requests:
        if request.decision_seq == decision_seq and request.open_at(now_ns):
            return (
                f"; its {request.action} waits for approval: `approve {decision_seq}` runs it,"
                f" `deny {decision_seq}` drops it"
            )
    return ""


def retry_wanted(journal: Journal, request_seq: int, request: DeadLetterRetry) -> DeadLetter | None:
    """The dead letter a retry request (journaled at request_seq) still applies to, or None."""
    for letter in dead_letters(journal):
        if (letter.agent, letter.decision_seq) == (request.agent, request.decision_seq):
            return letter if letter.abandoned_seq < request_seq else None
    return None


def _decision_of(entry: Entry) -> int:
    record = read_record(entry)
    if not isinstance(record, ActionStarted | ActionRetried):
        raise JournalCorruptError(
            f"the entry at seq {entry.seq} is not an action step", seq=entry.seq
        )
    return record.decision_seq
