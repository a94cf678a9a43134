"""The runtime's side of its stream: the folded state, the decision inputs, and every append.

Decisions must be made from exactly the state that replaying the journal up to that
point gives. The ledger keeps that promise while appends are pipelined: every batch is
folded into a view (the committed state plus what is queued) by the same `evolve` that
replay uses, as it is queued, in queue order, which is journal order; decisions read
their inputs (history, rules, breakers) from that view and nothing else changes them.
When commits run inline, a batch commits in the call that builds it, nothing is ever
queued, and the view is the committed state itself.
Every batch carries the stream_seq it expects to follow, so a write by anyone else is
caught as a conflict, and the batch is decided again under the journal's write lock.
Batches queued behind one that was refused or not committed were decided from a view
that counted it: the journal's worker refuses them unwritten until the ledger has caught
up with the journal (`rebased`), and they are decided again. An append that fails with
its outcome unknown (it may have committed, its answer lost) may have scheduled an
action: the catch-up looks for it, and hands what it finds to the host, which owes it
a start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from .._crashpoints import crash_point
from ..clock import Clock
from ..engines.learning import Outcomes
from ..engines.pipeline import PluginSet, Policy
from ..errors import (
    AdaptiveRuntimeError,
    InvalidEventError,
    JournalError,
    RuntimeNotStartedError,
    StreamConflictError,
)
from ..journal import JournalWorker
from ..observability.logs import logger_for
from ..observability.metrics import Metrics
from ..projections import AgentState, decode_state, encode_state, evolve, rebuild
from ..projections.audit import HistoryItem, decision_at, run_started_ns
from ..projections.rebuild import STATE_VERSION, Rebuilt
from ..records import (
    ActionAwaitingApproval,
    ActionScheduled,
    Breaker,
    Entry,
    LearningPolicy,
    Pending,
    Record,
    Rule,
    RuntimeBatch,
    to_pending,
)

__all__ = ["Ledger"]

log_recovery = logger_for("RECOVERY_ENGINE")

MAX_UNANSWERED = 256
"""How many unanswered batches with an action a ledger remembers between two catch-ups;
past it the oldest is forgotten (the next host start still finds its action)."""
_OWED = frozenset({ActionScheduled.__name__, ActionAwaitingApproval.__name__})
"""The kinds that leave a host something to do once their batch is journaled."""


class Ledger:
    """One agent's stream as the runtime sees it: state, decision inputs, appends, snapshots."""

    def __init__(
        self,
        agent_id: str,
        worker: JournalWorker,
        clock: Clock,
        checkpoint_every: int,
        plugins: PluginSet | None = None,
        redeciding: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.agent_id = agent_id
        self._redeciding = redeciding
        """Awaited before a batch is decided again after a conflict (the host's fleet view
        must not hold the first try); True: decide it again in queue order, not under the
        journal's write lock."""
        self.plugins = plugins or PluginSet()
        """The plugins in force for the host: part of every Policy this ledger makes."""
        self.worker = worker
        self.clock = clock
        self.checkpoint_every = checkpoint_every
        self.metrics = Metrics()
        """This agent's own counters and latencies."""
        self.state = AgentState(stream=agent_id)
        """The committed state: every entry of the stream folded in, in seq order."""
        self.view = self.state if worker.inline else AgentState(stream=agent_id)
        """The committed state plus every batch queued after it, folded by the same `evolve`
        as they are queued: what decisions read (its seqs are provisional, its inputs exact).

        With an inline worker nothing is ever queued (each batch commits in the call that
        builds it), so the view is the state itself and each batch is folded once, after
        its commit; only submit_many, which decides later batches from earlier ones before
        their shared commit, folds into a copy while it builds."""
        self._policies: dict[tuple[tuple[Rule, ...], LearningPolicy | None], Policy] = {}
        self._next_stream_seq = 0
        self.stale = False
        """The inputs may be off (a conflict, or a failed append): catch up before deciding."""
        self._unanswered: list[tuple[Pending, ...]] = []
        """Batches that schedule an action (or ask approval for one) and whose append failed
        with the outcome unknown: the next catch-up looks for them in the journal."""
        self.recovered: list[list[Entry]] = []
        """Those a catch-up found journaled: the host owes their actions a start (or their
        approval requests a place among the pending ones)."""
        self._resync_lock = asyncio.Lock()
        self._inflight = 0
        self.idle = asyncio.Event()
        """Set while no append is in flight."""
        self.idle.set()
        self._snapshotted_stream_seq = 0
        self._snapshots: set[asyncio.Task[None]] = set()
        self.snapshots_written = 0
        self.last_rebuild: dict[str, object] = {}
        self._barrier: asyncio.Task[list[Entry]] | None = None
        """Records queued by append_soon(): every later batch waits for them to commit."""
        self.on_history_found: Callable[[Ledger, int], None] | None = None
        """Set by the host for a stream it took to be new (not read on loading): called,
        once, if a catch-up finds that another host began it meanwhile, with the seq of
        the last entry found."""

    def require_worker(self) -> JournalWorker:
        if self.worker.closed:  # this ledger was loaded, so the host was started, then stopped
            raise RuntimeNotStartedError(
                "the runtime was stopped while this call was on its way to the journal (or"
                " before it); `await runtime.start()` again to go on"
            )
        return self.worker

    @property
    def next_stream_seq(self) -> int:
        """The stream_seq the next batch will follow (committed plus queued)."""
        return self._next_stream_seq

    @property
    def busy(self) -> bool:
        """Whether appends, snapshot writes or queued changes are in flight."""
        barrier = self._barrier
        return (
            not self.idle.is_set()
            or bool(self._snapshots)
            or (barrier is not None and not barrier.done())
        )

    @property
    def owes_starts(self) -> bool:
        """Whether batches whose answers were lost may still owe this host an action."""
        return bool(self.recovered or self._unanswered)

    async def run_started_ns(self, decision_seq: int, action: str) -> int | None:
        """When the latest run of a decision's action began (see projections.audit)."""
        worker = self.require_worker()
        started: int | None = await worker.run(
            run_started_ns, worker.journal, self.agent_id, decision_seq, action
        )
        return started

    async def load_decision(self, seq: int) -> HistoryItem | None:
        """Read a journaled decision of this agent, with its event, back from the journal."""
        worker = self.require_worker()
        found = await worker.run(decision_at, worker.journal, seq)
        return None if found is None or found.stream != self.agent_id else found

    @property
    def policy(self) -> Policy:
        """The rules decisions use now: the committed ones plus any change queued."""
        return self.policy_for(self.view.rules, self.view.learning)

    @property
    def history(self) -> Outcomes:
        """The outcomes decisions learn from now: committed plus queued ones."""
        return self.view.history

    @property
    def breakers(self) -> Mapping[str, Breaker]:
        """The action breakers as of the last record queued."""
        return self.view.breakers

    def policy_for(self, rules: tuple[Rule, ...], learning: LearningPolicy | None = None) -> Policy:
        policy = self._policies.get((rules, learning))
        if policy is None:
            policy = Policy(rules=rules, plugins=self.plugins, learning=learning)
            self._policies[(rules, learning)] = policy
        return policy

    async def rebuild(self, *, new: bool = False) -> None:
        """Replace the state with the journal's: newest usable snapshot plus the tail.

        `new=True` says the stream had no entries when last looked at: the state starts
        empty without a read. Should another writer have begun the stream since, the
        first append meets a stream conflict and catches up, as with any other write.
        """
        worker = self.require_worker()
        if new:
            rebuilt = Rebuilt(state=AgentState(stream=self.agent_id), snapshot_seq=None, replayed=0)
        else:
            rebuilt = await worker.run(rebuild, worker.journal, self.agent_id)
        self.state = rebuilt.state
        # the tail replayed after the snapshot is all this stream's: it ends where the snapshot did
        self._snapshotted_stream_seq = rebuilt.state.stream_seq - rebuilt.replayed
        self._sync_view()
        self.stale = False
        worker.rebased(self.agent_id)
        self.last_rebuild = {
            "snapshot_seq": rebuilt.snapshot_seq,
            "replayed": rebuilt.replayed,
            "skipped": list(rebuilt.skipped),
        }

    async def submit(self, make_batch: Callable[[], list[Pending]]) -> tuple[list[Entry], bool]:
        """Build a batch from the current decision inputs and append it.

        Return the entries and whether they are new (False: the journal returned an
        earlier batch with the same event id). If another writer moved the stream, the
        batch is decided again under the journal's write lock, so that it can't lose twice.
        """
        barrier = self._barrier
        if barrier is not None and not barrier.done():
            await asyncio.wait([barrier])
        return await self._submit(make_batch)

    async def submit_many(
        self, makers: list[Callable[[], list[Pending]]]
    ) -> list[tuple[list[Entry], bool] | BaseException]:
        """Build every batch in order and append them in one commit; one answer each.

        A batch that fails alone (its event refused, its id reused) fails alone; one
        that meets a conflict is decided again under the write lock, like submit().
        """
        barrier = self._barrier
        if barrier is not None and not barrier.done():
            await asyncio.wait([barrier])
        worker = self.require_worker()
        if self.stale:
            await self._resync()
        answers: list[tuple[list[Entry], bool] | BaseException | None] = [None] * len(makers)
        built: list[tuple[int, list[Pending], int]] = []
        view = self.view
        for index, make in enumerate(makers):
            try:
                batch = make()
            except AdaptiveRuntimeError as exc:
                answers[index] = exc
                continue
            if view is self.state:  # later batches are decided from this one, before the commit
                self.view = view = decode_state(encode_state(view))
            self._fold_queued(batch)
            built.append((index, batch, self._next_stream_seq))
            self._next_stream_seq += len(batch)
        if built:
            self._inflight += 1
            self.idle.clear()
            try:
                futures = worker.append_all([b for _, b, _ in built], [e for _, _, e in built])
                try:
                    results = await _settled(futures)
                except asyncio.CancelledError:
                    _unheard(worker, futures)
                    raise
            finally:
                self._done()
            again: list[int] = []
            for (index, _, expected), result in zip(built, results, strict=True):
                if isinstance(result, StreamConflictError):
                    self.stale = True
                    again.append(index)
                elif isinstance(result, BaseException):
                    self.stale = True  # this batch was not appended: the view is off by it
                    answers[index] = result
                else:
                    answers[index] = (result, self._is_fresh(result, expected))
            if worker.inline and not self.stale:
                self.view = self.state  # every batch committed and folded: the copy is the state
            for index in again:
                try:
                    answers[index] = await self._submit_caught_up(makers[index])
                except AdaptiveRuntimeError as exc:
                    answers[index] = exc
        return [a for a in answers if a is not None]

    async def _submit(self, make_batch: Callable[[], list[Pending]]) -> tuple[list[Entry], bool]:
        worker = self.require_worker()
        if self.stale:
            await self._resync()
        batch = make_batch()  # no await between building and queueing: order is kept
        if self.view is not self.state:  # else it commits in this call and on_commit folds it
            self._fold_queued(batch)
        expected = self._next_stream_seq
        self._next_stream_seq += len(batch)
        self._inflight += 1
        self.idle.clear()
        try:
            if worker.inline:
                entries = worker.append_now(batch, expected)
                if worker.yield_due():
                    try:
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        worker.unheard(entries)  # committed: the host does the rest
                        raise
            else:
                answer = worker.append(batch, expected)
                try:
                    entries = await answer
                except asyncio.CancelledError:
                    _unheard(worker, [answer])
                    raise
        except StreamConflictError:
            self.stale = True  # another writer moved the stream: catch up, decide again
            entries = []
        except JournalError:
            self.stale = True  # unknown what the journal holds now: rebuild before deciding
            raise
        except InvalidEventError:
            self.stale = True  # nothing was appended, so the predicted stream_seq is off
            raise
        finally:
            self._done()
        if not entries:
            return await self._submit_caught_up(make_batch)
        return entries, self._is_fresh(entries, expected)

    async def _submit_caught_up(
        self, make_batch: Callable[[], list[Pending]]
    ) -> tuple[list[Entry], bool]:
        """Catch up with the stream and decide again, all under the journal's write lock.

        Under a fleet policy the batch is decided again in queue order instead, like a
        first try, once the host has rebuilt its fleet view: the gate reads a view of
        every agent's queued batches, which only the loop may read and change. It can
        meet another conflict and go round again; only a host writes its agents'
        streams, so that takes a writer from outside.
        """
        if self._redeciding is not None and await self._redeciding():
            return await self._submit(make_batch)
        worker = self.require_worker()
        async with self._resync_lock:
            await self.idle.wait()  # the batches queued before this one are answered first
            self._inflight += 1
            self.idle.clear()
            expected = 0
            seen: list[Entry] = []
            looking = list(self._unanswered)
            built: list[list[Pending]] = []
            before, upto = self.state.stream_seq, 0

            def build(caught: list[Entry]) -> list[Pending]:
                nonlocal expected, upto
                if caught:
                    upto = caught[-1].seq  # what another writer began, before this batch
                for entry in caught:
                    evolve(self.state, entry)
                if looking:
                    seen.extend(caught)
                self._sync_view()
                expected = self._next_stream_seq
                batch = make_batch()
                if self.view is not self.state:
                    self._fold_queued(batch)
                self._next_stream_seq += len(batch)
                built.append(batch)
                return batch

            try:
                _, entries = await worker.run(
                    worker.journal.append_caught_up, self.agent_id, self.state.seq, build
                )
            except BaseException as exc:
                self.stale = True
                if built:  # the catch-up was read and folded: what it holds is journaled
                    self._found(seen, looking)
                    if isinstance(exc, JournalError | asyncio.CancelledError):
                        # it may have committed (a cancelled caller leaves the journal's
                        # thread at work), its answer lost: the next catch-up looks for it
                        self.doubt(built[-1])
                raise
            finally:
                self._done()
            self._found(seen, looking)
            self.stale = False
            worker.rebased(self.agent_id)
            worker.committed(entries)  # the host folds them: this ledger, the fleet, controls
            if not looking:  # else what it found may be this host's own, its answer lost
                self._history_found(before, upto)
        return entries, self._is_fresh(entries, expected)

    def _is_fresh(self, entries: list[Entry], expected: int) -> bool:
        # a fresh batch lands right after the expected stream_seq; an earlier one doesn't
        fresh = entries[0].stream == self.agent_id and entries[0].stream_seq == expected + 1
        if not fresh:
            self.stale = True
        return fresh

    def _done(self) -> None:
        self._inflight -= 1
        if not self._inflight:
            self.idle.set()

    async def append_records(self, records: list[Record]) -> list[Entry]:
        """Journal records in one batch, advancing the decision inputs they change."""

        entries, _ = await self.submit(self._records_batch(records))
        return entries

    async def append_built(
        self, build: Callable[[], list[Record]], *, controls_seen: Callable[[], int] | None = None
    ) -> list[Entry]:
        """Journal the records `build` makes from the view as the batch is queued.

        For records computed from the current inputs (a breaker after one more failure):
        reading and queueing happen with no await between them, so no update is lost.
        With `controls_seen` (the operator controls' `~host` stream_seq), `build` reads the
        controls too: the journal refuses the batch if they move on before its commit,
        and it is built again once they are read again (RuntimeBatch.controls_seen).
        """
        entries, _ = await self.submit(self._records_batch(build, controls_seen=controls_seen))
        return entries

    async def append_once(self, record: Record, event_id: str) -> tuple[list[Entry], bool]:
        """Journal a record under an event id, once: True with its entries if it is new;
        False with the earlier entries if that id was journaled before with the same
        record. The same id with another record is a DuplicateEventError."""
        return await self.submit(self._records_batch([record], event_id))

    def _records_batch(
        self,
        records: list[Record] | Callable[[], list[Record]],
        event_id: str | None = None,
        *,
        controls_seen: Callable[[], int] | None = None,
    ) -> Callable[[], list[Pending]]:
        def batch() -> list[Pending]:
            ts = self.clock.now_ns()
            seen = None if controls_seen is None else controls_seen()  # before build reads them
            made = records() if callable(records) else records
            return RuntimeBatch(
                (to_pending(self.agent_id, record, ts, event_id) for record in made), seen
            )

        return batch

    def append_soon(self, records: list[Record]) -> asyncio.Task[list[Entry]]:
        """Queue records from synchronous code: they are journaled before any later batch.

        For a change made by plain assignment (the original API's `runtime._decision = ...`):
        every batch submitted after this call waits until these records have committed.
        """
        previous = self._barrier

        async def append() -> list[Entry]:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            entries, _ = await self._submit(self._records_batch(records))
            return entries

        task = asyncio.get_running_loop().create_task(append())
        task.add_done_callback(_log_failure)
        self._barrier = task
        return task

    def on_commit(self, entries: list[Entry]) -> None:
        """Fold committed entries into the state, in commit order (on the loop thread)."""
        state = self.state
        for entry in entries:
            if entry.stream == self.agent_id:
                evolve(state, entry)
        if (
            state.stream_seq - self._snapshotted_stream_seq >= self.checkpoint_every
            and not self.stale
        ):
            self._snapshotted_stream_seq = state.stream_seq
            task = asyncio.get_running_loop().create_task(
                self._snapshot(encode_state(state), state.seq)
            )
            self._snapshots.add(task)
            task.add_done_callback(self._snapshots.discard)

    async def settle(self) -> None:
        """Wait for appends and snapshot writes in flight, then snapshot what is not yet covered."""
        await self.quiesce()
        due = self.snapshot_due()
        if due is not None:
            await self._snapshot(due[2], due[1])

    async def quiesce(self) -> None:
        """Wait for appends and snapshot writes in flight."""
        await self.idle.wait()
        if self._snapshots:
            await asyncio.wait(list(self._snapshots))

    def snapshot_due(self) -> tuple[str, int, bytes] | None:
        """The (stream, seq, state) to snapshot now if the state is ahead of the last one.

        Taking it marks the state as covered: the caller writes it.
        """
        if self.state.stream_seq <= self._snapshotted_stream_seq or self.stale:
            return None
        self._snapshotted_stream_seq = self.state.stream_seq
        return self.agent_id, self.state.seq, encode_state(self.state)

    def _sync_view(self) -> None:
        """Make the decision inputs equal the committed state's (be it, with an inline worker)."""
        self.view = self.state if self.worker.inline else decode_state(encode_state(self.state))
        self._next_stream_seq = self.state.stream_seq

    def _fold_queued(self, batch: list[Pending]) -> None:
        """Fold a batch into the view as it is queued, with the fold that replay uses."""
        view = self.view
        for pending in batch:
            seq = view.seq + 1  # provisional: the journal assigns the real one
            evolve(
                view,
                Entry(
                    seq,
                    pending.stream,
                    view.stream_seq + 1,
                    pending.kind,
                    pending.ts_ns,
                    pending.event_id,
                    pending.body,
                    seq,
                    b"",
                ),
            )

    async def catch_up(self) -> None:
        """Fold what the journal holds past the state, if an append's outcome is in doubt
        (see doubt()): before acting on the state again."""
        await self._resync()

    async def _resync(self) -> None:
        async with self._resync_lock:
            if not self.stale:
                return
            await self.idle.wait()
            looking = list(self._unanswered)
            before = self.state.stream_seq
            caught = await self.require_worker().run(self._catch_up, bool(looking))
            self._found(caught, looking)
            self._sync_view()
            self.stale = False
            self.worker.rebased(self.agent_id)  # batches decided from here count no refused one
            if not looking:  # else what it found may be this host's own, its answer lost
                self._history_found(before, self.state.seq)

    def _history_found(self, before: int, upto: int) -> None:
        """After a catch-up that found entries up to `upto`: tell the host if a stream it
        took to be new (its stream_seq was 0 `before`) had a history."""
        hook = self.on_history_found
        if hook is not None and before == 0 and upto > 0:
            self.on_history_found = None
            hook(self, upto)

    def _catch_up(self, keep: bool) -> list[Entry]:
        """Fold the stream's entries after the state's seq: other writers', and ours whose
        answers were lost (runs on the journal thread). Return them if `keep`."""
        journal = self.require_worker().journal
        caught: list[Entry] = []
        for entry in journal.read(self.agent_id, after=self.state.seq):
            evolve(self.state, entry)
            if keep:
                caught.append(entry)
        return caught

    def doubt(self, batch: Sequence[Pending]) -> None:
        """An append of `batch` failed with its outcome unknown (the journal's worker says so,
        before its caller hears the error): catch up before deciding again, and look for the
        batch then if it schedules an action or asks approval for one."""
        self.stale = True
        if not any(pending.kind in _OWED for pending in batch):
            return
        if len(self._unanswered) >= MAX_UNANSWERED:
            del self._unanswered[0]
            log_recovery.warning(
                "agent %s: more than %d unanswered appends with an action; if the oldest was "
                "journaled, its action is left to the next host start",
                self.agent_id,
                MAX_UNANSWERED,
            )
        self._unanswered.append(tuple(batch))

    def _found(self, caught: Iterable[Entry], looked_for: list[tuple[Pending, ...]]) -> None:
        """Keep the unanswered batches looked for that a catch-up read back as `recovered`;
        forget the rest. The catch-up ran with none of this ledger's appends in flight, so a
        batch it did not find was not journaled."""
        if not looked_for:
            return
        batches: dict[int, list[Entry]] = {}
        for entry in caught:
            batches.setdefault(entry.batch, []).append(entry)
        for pending in looked_for:
            for entries in batches.values():
                if _same_batch(pending, entries):
                    self.recovered.append(entries)
                    break
        done = {id(pending) for pending in looked_for}
        self._unanswered = [p for p in self._unanswered if id(p) not in done]

    def take_recovered(self) -> list[list[Entry]]:
        """The batches found journaled after their answers were lost, each given out once."""
        found, self.recovered = self.recovered, []
        return found

    async def _snapshot(self, data: bytes, seq: int) -> None:
        worker = self.require_worker()
        crash_point("snapshot.before")
        try:
            await worker.run(self._put_snapshot, data, seq)
        except JournalError:
            log_recovery.exception(
                "snapshot at seq %d failed; a snapshot is a shortcut only: the next start replays"
                " the journal from the last one written",
                seq,
            )
            self.metrics.count("snapshot_failures")
            return
        crash_point("snapshot.written")
        self.snapshots_written += 1
        log_recovery.info("Snapshot #%d written at seq %d", self.snapshots_written, seq)

    def _put_snapshot(self, data: bytes, seq: int) -> None:
        self.require_worker().journal.put_snapshot(
            self.agent_id, seq, data, version=STATE_VERSION, ts_ns=self.clock.now_ns()
        )


async def _settled(
    futures: list[asyncio.Future[list[Entry]]],
) -> list[list[Entry] | BaseException]:
    """Each future's result or exception, once every one is done.

    The worker answers a call's futures in order, most often all in one go, so waiting
    for the last one is usually all the waiting there is: cheaper than a gather, which
    hangs a callback on each of them.
    """
    last = futures[-1]
    if not last.done():
        await asyncio.wait((last,))
    waiting = [f for f in futures if not f.done()]
    if waiting:
        await asyncio.wait(waiting)
    return [f.exception() or f.result() for f in futures]


def _unheard(worker: JournalWorker, futures: list[asyncio.Future[list[Entry]]]) -> None:
    """The caller was cancelled while these answers were on their way; their batches
    commit all the same. Each answered with entries goes to the host now (see
    JournalWorker.unheard); each still unanswered is cancelled, so that the worker hands
    its entries over when its commit is answered."""
    for future in futures:
        if not future.done():
            future.cancel()
        elif not future.cancelled() and future.exception() is None:
            worker.unheard(future.result())


def _log_failure(task: asyncio.Task[list[Entry]]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log_recovery.error("a queued change was not journaled: %s", task.exception())


def _same_batch(batch: Sequence[Pending], entries: Sequence[Entry]) -> bool:
    """Whether journaled entries are this batch, as it was built (same kinds, times, bodies)."""
    return len(batch) == len(entries) and all(
        (p.kind, p.ts_ns, p.event_id, p.body) == (e.kind, e.ts_ns, e.event_id, e.body)
        for p, e in zip(batch, entries, strict=True)
    )
