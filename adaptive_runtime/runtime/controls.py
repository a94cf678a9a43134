"""The operator's controls on a host's actions: dry run, silences, approvals, dead letters.

Each acts on actions only, never on decisions: a decision is made and journaled as ever,
and what becomes of its action is journaled beside it (ActionSkipped naming the dry run
or the silence; ActionAwaitingApproval, then ApprovalDecided). Operators' requests are
journaled in the `~host` stream, so the CLI can make them with no server running; the
host carries them out (see projections.controls), looking for new ones every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..engines.events import approval_key, dead_letter_key
from ..engines.reachable import near_event_type, unknown_context
from ..engines.silences import MAX_COMMENT, check_text_field, new_silence
from ..errors import AdaptiveRuntimeError, DuplicateEventError
from ..journal import Journal
from ..projections.audit import agents_beside, agents_clause
from ..projections.controls import (
    Answer,
    DeadLetter,
    FireAfter,
    HostControls,
    PendingApproval,
    already_answered,
    answer_under,
    dead_letters,
    decided_unanswered,
    fire_after_owed,
    left_to_a_person,
    letter_answer,
    owed_after_silence,
    pending_approvals,
    pending_of,
    refuse_unless_repeat,
    retry_wanted,
    unanswered_approvals,
    waits_for_approval,
)
from ..projections.fleet import HOST_STREAM
from ..projections.silences import SILENCED_BY, read_silences, silence_named, target_of
from ..records import (
    ALERT_RESOLVED,
    DRY_RUN_SKIP,
    ActionAbandoned,
    ActionAwaitingApproval,
    ActionRetried,
    ApprovalDecided,
    ApprovalGiven,
    ApprovalPolicy,
    ApprovalPolicySet,
    DeadLetterDismissed,
    DeadLetterRetry,
    Decision,
    Entry,
    Event,
    Record,
    SilenceEnded,
    SilenceMatcher,
    SilenceSet,
    read_as,
    read_record,
    to_pending,
)

if TYPE_CHECKING:
    from .host import Host
    from .ledger import Ledger

__all__ = ["CONTROLS_POLL_S", "OperatorControls", "warn_replaced"]

log = logging.getLogger("adaptive_runtime.controls")
CONTROLS_POLL_S = 1.0


def warn_replaced(
    logger: logging.Logger, told: set[str], what: str, theirs: str, mine: str
) -> None:
    """Warn, once per policy (`told` keeps them), that another host journaled `what`,
    `theirs`, which replaces this host's `mine` for every host of the journal."""
    if theirs in told:
        return
    told.add(theirs)
    logger.warning(
        "another host journaled %s %s, which replaces this host's %s for every host of the"
        " journal from now on (the last one journaled is in force); give every host the"
        " same policy",
        what,
        theirs,
        mine,
    )


class OperatorControls:
    """One host's view of the controls, and the carrying out of operators' requests."""

    def __init__(self, host: Host, *, approvals: ApprovalPolicy | None) -> None:
        self._host = host
        self.approval_policy = approvals
        """The approval policy to journal at start (None: keep whatever the journal holds)."""
        self.state = HostControls()
        self.pending: dict[tuple[str, int], PendingApproval] = {}
        """Approval requests not answered yet, by (agent, decision seq)."""
        self._task: asyncio.Task[None] | None = None
        self._replacements_told: set[str] = set()
        """The approval policies another writer journaled that this host warned of."""
        self._fired: set[tuple[str, int]] = set()
        """(agent, decision seq) of the actions this host ran, or left to a person, after a
        `fire_after` silence: each once."""

    def _warn_if_replaced(self) -> None:
        """Say so when another writer journaled an approval policy other than this host's:
        the last one journaled is every host's."""
        mine, journaled = self.approval_policy, self.state.approvals
        if mine is not None and journaled is not None and journaled != mine:
            warn_replaced(
                log, self._replacements_told, "an approval policy", f"({journaled})", f"({mine})"
            )

    @property
    def approvals(self) -> ApprovalPolicy | None:
        """The approval policy in force (journaled)."""
        return self.state.approvals

    @property
    def seen(self) -> int:
        """The `~host` stream_seq these controls have read: what a batch planned from them
        now is journaled against (RuntimeBatch.controls_seen)."""
        return self.state.stream_seq

    # -- life cycle ------------------------------------------------------------------

    async def start(self, journal: Journal) -> None:
        """Fold the `~host` stream, journal a new approval policy, carry out what is owed."""
        worker = self._host.require_worker()
        requests = self.state.fold(await worker.run(read_silences, journal, 0))
        policy = self.approval_policy
        if policy is not None and policy != self.state.approvals:
            record = ApprovalPolicySet(policy)
            await worker.append([to_pending(HOST_STREAM, record, self._now())])
            requests += self.state.fold(await worker.run(read_silences, journal, self.state.seq))
        self.pending = await worker.run(pending_approvals, journal)
        await self._carry_out(requests)
        self.state.fire_after_ended = False
        await self._fire_owed()  # silences that ended while no host ran, or this one was away
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> None:
        """Fold what was journaled in `~host` since the last look; carry out requests; deny
        approvals past their timeout."""
        worker = self._host.require_worker()
        requests = self.state.fold(await worker.run(read_silences, worker.journal, self.state.seq))
        self._warn_if_replaced()
        await self._carry_out(requests)
        now = self._now()
        policy = self.state.approvals
        for p in [p for p in self.pending.values() if p.expires_ns <= now]:
            if await self._serves(p.agent):
                timeout = "its timeout" if policy is None else f"{policy.timeout_s:g} s"
                reason = f"no answer within {timeout}: denied by default"
                await self._decide(p, approved=False, by="timeout", reason=reason)
        due = [s for s in self.state.silences.by_id.values() if s.fire_after and s.ends_ns <= now]
        for silence in due:
            # off the list first, so that a second refresh running meanwhile leaves it be
            self.state.silences.by_id.pop(silence.id, None)
        if due or self.state.fire_after_ended:
            self.state.fire_after_ended = False
            await self._fire_owed()
        for silence in due:
            ended = SilenceEnded(id=silence.id, by="its end, its skipped actions run")
            await worker.append([to_pending(HOST_STREAM, ended, now)])

    async def take_up(self, agents: Collection[str]) -> None:
        """This host has just taken agents over (from a host that died, or at start):
        carry out what operators asked of them that their last host left undone, and note
        the approvals they asked for meanwhile. Requests folded while another host served
        an agent were left to that host."""
        if not agents:
            return
        worker = self._host.require_worker()
        journal = worker.journal
        waiting = await worker.run(pending_approvals, journal)
        for key, request in waiting.items():
            if key[0] in agents:
                self.pending.setdefault(key, request)
        requests = await worker.run(read_silences, journal, 0)
        await self._carry_out(
            [e for e in requests if getattr(read_record(e), "agent", None) in agents]
        )
        await self._fire_owed(agents)

    async def _fire_owed(self, agents: Collection[str] | None = None) -> None:
        """Run the actions that `fire_after` silences now over skipped, once each: those
        of the agents this host serves (of `agents` only, if given). Read from the journal
        each time, so that it does not matter which host saw a silence end, or whether a
        host ran then; an action run (or left to a person) is journaled before it starts."""
        if not self.state.fire_after_seen:
            return  # the common case: no silence ever asked for it
        worker = self._host.require_worker()
        try:
            owed = await worker.run(fire_after_owed, worker.journal, self._now())
            for item in owed:
                key = (item.agent, item.decision_seq)
                if (agents is not None and item.agent not in agents) or key in self._fired:
                    continue
                if not await self._serves(item.agent):
                    continue
                self._fired.add(key)  # a call running meanwhile leaves it be
                try:
                    await self._fire(item)
                except BaseException:
                    self._fired.discard(key)
                    raise
        except AdaptiveRuntimeError:
            self.state.fire_after_ended = True  # the next look tries again
            raise

    async def _fire(self, item: FireAfter) -> None:
        ledger = await self._ledger(item.agent)
        found = await ledger.load_decision(item.decision_seq)
        if found is None:
            return
        decision, event = found.decision, found.event.as_dict()
        # needs approval: the silence held it from the approval request it would have waited
        # for, and a request is journaled only with its decision; so, a dead letter
        actions = self._host.actions
        held: list[str | None] = [None]

        def gated() -> list[Record]:  # built again if the controls move on before its commit
            why = held[0] = actions.why_held(ledger, event, decision, item.action)
            if why is not None:
                return [
                    ActionAbandoned(
                        decision_seq=item.decision_seq, action=item.action, attempts=0, reason=why
                    )
                ]
            by = f"{item.silence_id} ended"
            return [ActionRetried(decision_seq=item.decision_seq, action=item.action, by=by)]

        await ledger.append_built(gated, controls_seen=actions.controls_seen)
        why = held[0]
        if why is not None:
            log.warning(
                "%s for decision %d of agent %s, skipped by %s, is not run now that it is over"
                " (%s); it is a dead letter, for a person to retry or dismiss",
                item.action,
                item.decision_seq,
                item.agent,
                item.silence_id,
                why,
            )
            return
        actions.start(ledger, decision, event, action=item.action)

    async def _follow(self) -> None:
        """Every second (the journal's pace, on the wall clock), look at `~host` again."""
        while True:
            await asyncio.sleep(CONTROLS_POLL_S)
            try:
                await self.refresh()
            except AdaptiveRuntimeError as exc:
                log.warning("Reading the operator's controls failed (%s); retrying", exc)

    def on_commit(self, entries: list[Entry]) -> None:
        """This host's own commits: approval requests noted. (`~host` entries are folded by
        refresh(), in seq order with every other writer's.)"""
        if entries[0].stream == HOST_STREAM:
            return
        for entry in entries:
            if entry.kind == "ActionAwaitingApproval":
                request = pending_of(entry)
                self.pending[(request.agent, request.decision_seq)] = request

    # -- at decision time ------------------------------------------------------------

    def hold(self, agent_id: str, event: Event, decision: Decision, ts_ns: int) -> str | None:
        """Why a decision's action must not run (the dry run, a silence), or None."""
        if self._host.actions.dry_run:
            return DRY_RUN_SKIP
        silence = self.silence_covering(agent_id, event.attrs, decision, ts_ns)
        if silence is None:
            return None
        return f"{SILENCED_BY}{silence.id} ({silence.comment})"

    def stands_for_a_run(self, hold: str) -> bool:
        """Whether an action `hold` skips still counts in the fleet's action windows: a dry
        run's (it stands for the run it trials), or one a `fire_after` silence owes (it
        runs when the silence ends, and counts from then). The fleet fold reads the
        journal the same way (projections.fleet.evolve_fleet)."""
        if hold == DRY_RUN_SKIP:
            return True
        silence = self.state.silences.by_id.get(silence_named(hold) or "")
        return silence is not None and silence.fire_after

    def holding(
        self, agent_id: str, event: dict[str, Any], decision: Decision, action: str, ts_ns: int
    ) -> str | None:
        """Why an action no person started (an escalation step, one a `fire_after` silence
        owes) must not run by itself, or None. A silence covering the decision holds it
        (`silenced`); an approval policy that names the action, or the decision's risk or
        confidence, wants a person's yes (`needs_approval`). Either way it becomes a dead
        letter: `retry` is that yes (the dry run and the breaker are the scheduler's)."""
        if self.silence_covering(agent_id, event, decision, ts_ns) is not None:
            return "silenced"
        policy = self.state.approvals
        if policy is not None and policy.needs(action, decision.risk, decision.confidence):
            return "needs_approval"
        return None

    @property
    def any_silence(self) -> bool:
        """Whether any silence is journaled and not ended: else none can cover a decision."""
        return bool(self.state.silences.by_id)

    def silence_covering(
        self, agent_id: str, attrs: dict[str, Any], decision: Decision, ts_ns: int
    ) -> SilenceSet | None:
        """The silence covering a decision at ts_ns (in force then, matching it), or None."""
        if not self.any_silence:
            return None  # the common case: nothing silenced, nothing to look up
        return self.state.silences.matching(
            agent=agent_id,
            target=target_of(attrs),
            event_type=decision.event_type,
            context=decision.context,
            ts_ns=ts_ns,
        )

    def approval(self, decision: Decision, ts_ns: int) -> ActionAwaitingApproval | None:
        """The approval request a decision's action needs under the policy, or None."""
        policy = self.state.approvals
        if policy is None:
            return None
        reason = policy.needs(decision.action, decision.risk, decision.confidence)
        if reason is None:
            return None
        expires = ts_ns + round(policy.timeout_s * 1e9)
        return ActionAwaitingApproval(action=decision.action, reason=reason, expires_ns=expires)

    # -- silences ------------------------------------------------------------------------

    async def add_silence(
        self,
        matcher: SilenceMatcher,
        *,
        starts_ns: int | None = None,
        ends_ns: int,
        comment: str,
        by: str,
        fire_after: bool = False,
    ) -> SilenceSet:
        """Journal a silence (from now, unless `starts_ns`); it holds at once on this host.

        `fire_after=True`: when it ends, the actions it skipped run, once each. A warning
        is logged if it would hold nothing yet (see notes_on).
        """
        silence = new_silence(
            matcher,
            starts_ns=self._now() if starts_ns is None else starts_ns,
            ends_ns=ends_ns,
            comment=comment,
            by=by,
            fire_after=fire_after,
        )
        await self.set_silence(silence)
        return silence

    async def set_silence(self, silence: SilenceSet) -> list[str]:
        """Journal a silence made by new_silence; it holds at once on this host. Return why
        it would hold nothing yet (notes_on), each logged as a warning too: for a face that
        shows them to whoever set it."""
        worker = await self._host.when_ready()
        await worker.append([to_pending(HOST_STREAM, silence, self._now())])
        await self.refresh()
        notes = await self.notes_on(silence.matcher)
        for note in notes:
            log.warning("silence %s is set, but %s", silence.id, note)
        return notes

    async def notes_on(self, matcher: SilenceMatcher) -> list[str]:
        """Why a silence with this matcher would hold nothing yet (a mistyped name, most
        often): an agent the journal has no entries of; on a host with no plugin (whose
        analysers could give it), a context no event is given."""
        notes: list[str] = []
        agent = matcher.agent
        others = (
            None  # the journal is read only for an agent this host has not seen
            if agent is None or self._host.knows(agent)
            else await self._host.read(agents_beside, agent)
        )
        if others is not None:
            notes.append(
                f"agent {agent!r} has no entries in this journal ({agents_clause(others)}),"
                f" so it holds nothing yet; it holds once {agent!r} decides"
            )
        context = matcher.context
        said = None if context is None else unknown_context(context, "it holds nothing")
        if said is not None and not self._host.plugins.refs:
            notes.append(f"it is for {said}")
        event_type = matcher.event_type
        said = None if event_type is None else near_event_type(event_type, "it holds nothing")
        if said is not None:
            notes.append(f"it is for {said}")
        return notes

    async def end_silence(self, silence_id: str, *, by: str) -> str:
        """Journal that a silence ends now, and return who ended it: `by`, or whoever ended
        it before (then nothing is journaled: a request sent again, as by a client that
        lost the reply, is taken as the retry it is). LookupError if no silence has this id.
        """
        check_text_field("by", by)
        await self.refresh()
        silences = self.state.silences
        if silence_id in silences.ended_by:
            return silences.ended_by[silence_id]
        if silence_id not in silences.by_id:
            raise LookupError(f"no silence {silence_id!r} is in force or to come")
        ended = SilenceEnded(id=silence_id, by=by)
        worker = self._host.require_worker()
        await worker.append([to_pending(HOST_STREAM, ended, self._now())])
        await self.refresh()
        return by

    async def alert_resolved(self, agent_id: str, decision_seq: int) -> bool:
        """An alert resolved whose decision's action a `fire_after` silence still owes:
        journal it abandoned (`alert_resolved`), so that the silence's end does not act on
        trouble that is over. False, journaling nothing, when no such silence owes it.
        AgentOwnedElsewhere when one does and another host owns the agent: the resolution
        is for that host to carry out (else it runs the action when the silence ends)."""
        key = (agent_id, decision_seq)
        if key in self._fired or not self._host.may_serve(agent_id):
            return False
        self._fired.add(key)  # the silence's end, running meanwhile, leaves it be
        try:
            worker = self._host.require_worker()
            action = await worker.run(owed_after_silence, worker.journal, agent_id, decision_seq)
            if action is None:
                self._fired.discard(key)
                return False
            ledger = await self._ledger(agent_id)  # the claim, or AgentOwnedElsewhere
            dropped = ActionAbandoned(
                decision_seq=decision_seq, action=action, attempts=0, reason=ALERT_RESOLVED
            )
            await ledger.append_records([dropped])
        except BaseException:
            self._fired.discard(key)
            raise
        return True

    # -- approvals and dead letters ---------------------------------------------------

    async def waiting(self) -> list[PendingApproval]:
        """Every approval request not answered yet and not timed out, read from the journal
        (so another host's too, where several share it), by decision seq."""
        await self.refresh()
        # a scan by kind: on a reader, off the commits' way (and the loop's, at "normal");
        # a request answered already (its answer not carried out yet) is not waiting
        requests, _ = await self._host.read(unanswered_approvals)
        now = self._now()
        return [p for p in requests if p.open_at(now)]

    async def answer(self, decision_seq: int, *, approve: bool, by: str, comment: str = "") -> None:
        """Journal a person's answer to a pending approval request; the host that owns the
        agent carries it out (this one, at once, if it does). A request answered before,
        by anyone, raises AlreadyAnsweredError naming the answer: the first one stands;
        the same answer sent again (a retry after a lost reply) is taken as that one."""
        by = check_text_field("by", by)
        # bounded and printable as a silence's comment is (it was neither)
        comment = check_text_field("comment", comment, MAX_COMMENT) if comment else ""
        found = [p for p in await self.waiting() if p.decision_seq == decision_seq]
        if not found:
            given = await self._host.read(answer_under, approval_key(decision_seq))
            if given is None:
                ended = await self._host.read(decided_unanswered, decision_seq)
                if ended is not None:
                    raise ended
                hint = await self._host.read(left_to_a_person, decision_seq)
                msg = f"no approval is pending for the decision at seq {decision_seq}{hint}"
                raise LookupError(msg)
            mine = ApprovalGiven(
                agent=given.agent,
                decision_seq=decision_seq,
                approve=bool(approve),
                by=by,
                comment=comment,
            )
            refuse_unless_repeat(given, mine)
            return  # this very answer, taken already (carried out or not)
        p = found[0]
        record = ApprovalGiven(
            agent=p.agent, decision_seq=decision_seq, approve=bool(approve), by=by, comment=comment
        )
        await self._request(record, approval_key(decision_seq))

    async def retry(self, decision_seq: int, *, by: str) -> None:
        """Journal a retry of a dead letter (an abandoned action), and carry it out. A
        dead letter takes one retry or dismissal: another one asked for before raises
        AlreadyAnsweredError naming it; the same one sent again is taken as that one."""
        await self._letter_request(DeadLetterRetry, decision_seq, check_text_field("by", by))

    async def dismiss(self, decision_seq: int, *, by: str) -> None:
        """Take a dead letter off the list, journaled (one retry or dismissal, as retry())."""
        await self._letter_request(DeadLetterDismissed, decision_seq, check_text_field("by", by))

    async def _letter_request(
        self, kind: type[DeadLetterRetry | DeadLetterDismissed], decision_seq: int, by: str
    ) -> None:
        try:
            letter = await self._dead_letter(decision_seq)
        except LookupError as missing:
            given = await self._host.read(letter_answer, decision_seq)
            if given is None:
                hint = await self._host.read(waits_for_approval, decision_seq, self._now())
                if hint:
                    raise LookupError(f"{missing.args[0]}{hint}") from None
                raise
            refuse_unless_repeat(given, kind(agent=given.agent, decision_seq=decision_seq, by=by))
            return  # this very request, taken already (carried out or not)
        record = kind(agent=letter.agent, decision_seq=decision_seq, by=by)
        await self._request(record, dead_letter_key(letter.abandoned_seq))

    async def dead_letters(self) -> list[DeadLetter]:
        """The actions abandoned after their attempts, not retried or dismissed since."""
        letters: list[DeadLetter] = await self._host.read(dead_letters)
        return letters

    async def _dead_letter(self, decision_seq: int) -> DeadLetter:
        worker = self._host.require_worker()
        for letter in await worker.run(dead_letters, worker.journal):
            if letter.decision_seq == decision_seq:
                return letter
        raise LookupError(f"no dead letter for the decision at seq {decision_seq}")

    async def _request(self, record: Answer, key: str) -> None:
        """Journal an operator's answer under its key, and carry it out: the first answer
        taken stands, and a different one raises AlreadyAnsweredError naming it."""
        worker = self._host.require_worker()
        try:
            await worker.append([to_pending(HOST_STREAM, record, self._now(), key)])
        except DuplicateEventError:
            given = await self._host.read(answer_under, key)
            if given is None:  # the key taken by something else: the refusal as it was
                raise
            raise already_answered(given) from None
        await self.refresh()

    async def _carry_out(self, requests: list[Entry]) -> None:
        worker = self._host.require_worker()
        for entry in requests:
            if entry.kind == "ApprovalGiven":
                given = read_as(entry, ApprovalGiven)
                p = self.pending.get((given.agent, given.decision_seq))
                if p is None or not await self._serves(p.agent):
                    continue
                if given.approve and not p.open_at(entry.ts_ns):
                    # journaled after the deadline (while no host ran to deny it): a stale
                    # action never runs on a late yes
                    why = f"approved by {given.by} after its timeout: denied by default"
                    await self._decide(p, approved=False, by="timeout", reason=why)
                    continue
                why = given.comment or ("approved" if given.approve else "denied")
                await self._decide(p, approved=given.approve, by=given.by, reason=why)
            elif entry.kind == "DeadLetterRetry":
                request = read_as(entry, DeadLetterRetry)
                if not await self._serves(request.agent):
                    continue
                letter = await worker.run(retry_wanted, worker.journal, entry.seq, request)
                if letter is None:
                    continue  # retried already (before a restart), or not dead any more
                ledger = await self._ledger(request.agent)
                retried = ActionRetried(
                    decision_seq=request.decision_seq, action=letter.action, by=request.by
                )
                await ledger.append_records([retried])
                await self._start_action(ledger, request.decision_seq, letter.action)

    async def _decide(self, p: PendingApproval, *, approved: bool, by: str, reason: str) -> None:
        # taken off the list first: a second refresh running meanwhile can't decide it again
        # (if the append fails, the request is still journaled, and the next start finds it)
        if self.pending.pop((p.agent, p.decision_seq), None) is None:
            return
        ledger = await self._ledger(p.agent)
        record = ApprovalDecided(
            decision_seq=p.decision_seq, action=p.action, approved=approved, by=by, reason=reason
        )
        await ledger.append_records([record])
        if approved:
            await self._start_action(ledger, p.decision_seq, p.action)

    async def _start_action(self, ledger: Ledger, decision_seq: int, action: str) -> None:
        """Start `action` for the decision at `decision_seq`: the action the request names,
        which for a dead letter of an escalation ladder is that step, not the decision's own."""
        found = await ledger.load_decision(decision_seq)
        if found is not None:
            self._host.actions.start(ledger, found.decision, found.event.as_dict(), action=action)

    async def _ledger(self, agent_id: str) -> Ledger:
        return await self._host.load_for_controls(agent_id)

    async def _serves(self, agent_id: str) -> bool:
        """Whether this host carries out requests for the agent: it serves it, or it takes
        it now (on one machine, where an agent is claimed when first used)."""
        return self._host.serves(agent_id) or await self._host.claim_for_controls(agent_id)

    def _now(self) -> int:
        return self._host.clock.now_ns()
