"""The Host: every agent of one journal in one process, with one writer, one action
scheduler and one event bus.

Agents load lazily: an agent's state is rebuilt (newest snapshot plus tail) on its first
use, and idle agents past `max_loaded_agents` are snapshotted and dropped, to be rebuilt
when next used. A Runtime is a Host that serves one agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._checks import check_stored_name
from .._text import shown
from ..clock import Clock, SystemClock, checked
from ..engines.backoff import BreakerPolicy, RetryPolicy
from ..engines.decision import DEFAULT_RULES, FALLBACK
from ..engines.events import AGENT_FIELD as DEFAULT_AGENT_FIELD
from ..engines.events import MAX_EVENT_BYTES, event_list
from ..engines.fleet import FleetView, close_episode, fingerprint_key
from ..engines.pipeline import PluginSet
from ..engines.reachable import decided_by, unmatched_rules, unreachable
from ..errors import (
    AdaptiveRuntimeError,
    AgentOwnedElsewhere,
    ConfigurationError,
    InvalidEventError,
    RuntimeNotStartedError,
)
from ..journal import (
    Durability,
    Journal,
    JournalWorker,
    Ownership,
    has_ownership,
    is_journal,
)
from ..journal.open import describe, is_memory, open_journal, sqlite_path
from ..journal.reader import JournalReader
from ..observability.logs import logger_for
from ..projections.fleet import (
    HOST_STREAM,
    evolve_fleet,
    journaled_plugins,
    journaled_policy,
    rebuild_fleet,
    settle,
    settles,
    snapshot_fleet,
)
from ..projections.rebuild import STATE_VERSION
from ..records import (
    FLEET_FOLD,
    ApprovalPolicy,
    Decision,
    Entry,
    EpisodeClosed,
    Event,
    FleetPolicy,
    FleetPolicySet,
    LearningPolicy,
    Pending,
    PluginsSet,
    Rule,
    RulesChanged,
    read_as,
    to_pending,
)
from .actions import ActionScheduler, Handler, Resume, Verification, register_action
from .agent import Agent
from .bus import EventBus
from .controls import OperatorControls, warn_replaced
from .ledger import Ledger
from .rules import LearningArg, RulesArg, learning_from, rules_from

if TYPE_CHECKING:  # the loader is imported only by a host with plugins (see _start_plugins)
    from ..plugins import Registrar

__all__ = ["DEFAULT_AGENT_FIELD", "Host"]

log = logger_for("RUNTIME")
log_decision = logger_for("DECISION_ENGINE")
T = TypeVar("T")

MAX_AGENT_ID = 256


class Host:
    """Serve every agent of one journal: decide, journal, act, and rebuild each on demand.

    `journal` is a path, `sqlite:///path`, `memory:`, or a Journal object (which stays
    the caller's: the host does not close it, and commits to it on the journal's thread
    unless `commit_on_caller=True`, which a PostgreSQL journal does not take; it keeps
    the durability it was opened at, and another `durability=` is refused).
    `host.agent(id)` returns a handle with the Runtime API; `await host.process(event)`
    routes an event by its `agent_id` field, or to `default_agent`. `rules` may be a
    policy file (TOML or JSON): its `rules`, and its `[learning]` and `[fleet]` tables
    unless `learning=` or `fleet=` is given. `dry_run=True` decides and journals
    everything and runs no handler (each action is journaled as skipped, "dry run");
    `approvals` makes the actions it names wait for a person's answer. `host.controls`
    sets silences, answers approvals, and lists, retries or dismisses dead letters.
    """

    def __init__(
        self,
        journal: str | os.PathLike[str] | Journal = "adaptive_runtime.db",
        *,
        default_agent: str = "default",
        durability: Durability | None = None,
        clock: Clock | None = None,
        checkpoint_every: int = 100,
        max_loaded_agents: int = 1000,
        rules: RulesArg = None,
        learning: LearningArg = None,
        sensitive_fields: Iterable[str] = (),
        max_event_bytes: int = MAX_EVENT_BYTES,
        fleet: FleetPolicy | None = None,
        plugins: Sequence[str] | None = None,
        max_decide_ms: float = 250.0,
        commit_on_caller: bool = False,
        only_agent: str | None = None,
        dry_run: bool = False,
        approvals: ApprovalPolicy | None = None,
    ) -> None:
        if type(checkpoint_every) is not int or checkpoint_every < 1:
            raise ConfigurationError(
                f"checkpoint_every must be a positive int, not {checkpoint_every!r}"
            )
        if durability not in ("full", "normal", None):
            raise ConfigurationError(f"durability must be 'full' or 'normal', not {durability!r}")
        if type(max_loaded_agents) is not int or max_loaded_agents < 1:
            raise ConfigurationError(
                f"max_loaded_agents must be a positive int, not {max_loaded_agents!r}"
            )
        if type(max_event_bytes) is not int or max_event_bytes < 1024:
            raise ConfigurationError(
                f"max_event_bytes must be an int of at least 1024, not {max_event_bytes!r}"
            )
        check_flag("commit_on_caller", commit_on_caller)
        check_flag("dry_run", dry_run)
        self.default_agent = check_agent_id(default_agent, "default_agent")
        self._only = None if only_agent is None else check_agent_id(only_agent)
        if not isinstance(journal, str | os.PathLike) and not is_journal(journal):
            raise ConfigurationError(
                "journal must be a path, a URL (sqlite:///path, memory:, postgresql://...) or"
                f" a Journal, not {type(journal).__name__}"
            )
        self._journal_arg = journal
        self._owns_journal = isinstance(journal, str | os.PathLike)
        if not self._owns_journal:  # a journal object was opened at its durability: it holds
            own: Durability = journal.durability  # type: ignore[union-attr]
            if durability is not None and durability != own:
                msg = (
                    f"durability={durability!r}, but the journal given was opened at {own!r},"
                    " and a journal object keeps its own: open it at the one you want, or"
                    " leave durability out"
                )
                raise ConfigurationError(msg)
            durability = own
        self.durability: Durability = durability or "full"
        self.clock: Clock = checked(clock or SystemClock())
        self.checkpoint_every = checkpoint_every
        self.max_loaded_agents = max_loaded_agents
        self.commit_on_caller = commit_on_caller
        """Commit (and fsync, at full) on the caller's thread instead of the journal's own."""
        self.redact = _field_names(sensitive_fields)
        self.max_event_bytes = max_event_bytes
        if isinstance(rules, str | os.PathLike):  # a policy file: its tables, unless given here
            from ..rulefiles import load_policy

            file = load_policy(rules)
            parsed = file.rules
            learning = file.learning if learning is None else learning
            fleet = file.fleet if fleet is None else fleet
            approvals = file.approvals if approvals is None else approvals
        else:
            parsed = rules_from(rules)
        self.rules: tuple[Rule, ...] | None = parsed
        """Custom rules for every agent served; journaled for an agent whose rules differ."""
        self.learning: LearningPolicy | None = learning_from(learning)
        """How every agent served learns from outcomes; journaled for an agent whose differs."""
        if fleet is not None and not isinstance(fleet, FleetPolicy):
            raise ConfigurationError(f"fleet must be a FleetPolicy, not {type(fleet).__name__}")
        if isinstance(plugins, str):
            raise ConfigurationError(f"plugins must be a list of names, e.g. [{plugins!r}]")
        self._plugin_names = None if plugins is None else list(plugins)
        self._plugin_handlers: set[tuple[str | None, str]] = set()
        """The handlers the plugins registered at the last start: theirs to register again."""
        if not isinstance(max_decide_ms, int | float) or not max_decide_ms > 0:
            raise ConfigurationError(
                f"max_decide_ms must be a positive number, not {max_decide_ms!r}"
            )
        self.max_decide_ms = float(max_decide_ms)
        """A decision that takes longer (a slow plugin's analyser) is refused, not journaled."""
        self.plugins = PluginSet()
        """The plugins in force: named here, or else the ones the journal was decided with."""
        self.fleet_policy = fleet
        """The fleet policy to journal at start (None: keep whatever the journal holds)."""
        self.fleet: FleetView | None = None
        """What decisions are gated by: the committed fleet view plus the decisions queued."""
        self._fleet_committed: FleetView | None = None
        self._fleet_seq = 0
        """The journal seq the committed fleet view covers: every entry up to it, folded."""
        self.fleet_view_seq = 0
        """The seq `fleet` was copied from the committed view at (it holds this host's own
        decisions since, and no other writer's): each gated batch carries it, and the
        journal refuses one if another writer journaled a fleet entry after it."""
        self.fleet_stale = False
        """A queued decision failed: the view must be rebuilt from the committed one."""
        self._replacements_told: set[str] = set()
        """Digests of the fleet policies another writer journaled that this host warned of."""
        self._fleet_resync = asyncio.Lock()
        self.bus = EventBus()
        self.actions = ActionScheduler(
            self.clock,
            dry_run=dry_run,
            max_in_flight=lambda: None if self.fleet is None else self.fleet.policy.max_in_flight,
            holding=lambda *asked: self.controls.holding(*asked),
            controls_seen=lambda: self.controls.seen,
        )
        self._worker: JournalWorker | None = None
        self._reader: JournalReader | None = None
        self._loaded: OrderedDict[str, Ledger] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Ledger]] = {}
        self._handles: weakref.WeakValueDictionary[str, Agent] = weakref.WeakValueDictionary()
        self._streams: set[str] = set()
        """The agents with entries: found at start, and added as agents are loaded."""
        self._ready = asyncio.Event()
        self._starting = False
        self._stopped = False
        """Whether stop() closed the journal (and start() has not opened it again)."""
        self.evictions = 0
        self._ownership: Ownership | None = None
        """The journal's ownership of agents by hosts (PostgreSQL's claims, SQLite's locks)."""
        self._claims_local = False
        """Whether claims are locks on this machine (SQLite): taken at once, when an agent is
        first used (at start, only those with actions to resume), and never lost while this
        process lives. Else they are a server's, leased: taken at start for every agent no
        live host holds, and kept by _keep_claims."""
        self._claims_task: asyncio.Task[None] | None = None
        self._sweep: asyncio.Task[None] | None = None
        """_keep_claims' take-over of agents whose host died, while it runs."""
        self._stopping = False
        """Set as stop() begins: a stopping host takes no agent over (another will)."""
        self._taking_up: set[asyncio.Task[None]] = set()
        """Tasks taking up what a dead host left in a stream found to have a history."""
        self.takeovers = 0
        self._watchers: list[Callable[[list[Entry]], None]] = []
        if approvals is not None and not isinstance(approvals, ApprovalPolicy):
            msg = f"approvals must be an ApprovalPolicy, not {type(approvals).__name__}"
            raise ConfigurationError(msg)
        if approvals is not None and (unusable := approvals.unusable()) is not None:
            raise ConfigurationError(unusable)
        self.controls = OperatorControls(self, approvals=approvals)
        """Dry run, silences, approvals and dead letters: what becomes of decided actions."""

    def __repr__(self) -> str:
        where = (
            describe(self._journal_arg)
            if isinstance(self._journal_arg, str | os.PathLike)
            else repr(self._journal_arg)
        )
        return f"Host(journal={where!r}, loaded_agents={len(self._loaded)}, started={self.started})"

    @property
    def started(self) -> bool:
        return self._worker is not None and self._ready.is_set()

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal, and resume every agent's unfinished actions; then serve."""
        if self._starting:
            await self.when_ready()
            return
        if self._worker is not None:
            # else "started" here with nothing done, and every later call refused here
            self._refuse_another_loop(then="; to go on here, await stop() here, then start()")
            return
        self._starting = True
        try:
            await self._start()
        finally:
            self._starting = False

    async def _start(self) -> None:
        self._stopping = False
        self._stopped = False
        named = None
        if self._plugin_names is not None:
            # loaded before the journal is opened: a plugin that is not installed (a typo)
            # is refused with no journal file made for it
            from ..plugins import load

            named = load(self._plugin_names)
        arg = self._journal_arg
        if isinstance(arg, str | os.PathLike):
            # The WAL checkpoint syncs: at "normal", where commits run inline on the loop,
            # it gets a thread of its own; at "full" it runs after a commit, on whichever
            # thread committed (the journal's, or the caller's with commit_on_caller).
            # Measured here: an idle checkpointer thread alone slowed synced commits by
            # 35-60 us each.
            # With commit_on_caller the caller's thread does all of a local journal's
            # work, opening included: a thread left idle in the process (the loop's
            # default executor) slowed each synced commit by 15-40 us on this machine,
            # and raw fsyncs alike. A server's journal (PostgreSQL) never runs inline.
            opening = partial(
                open_journal,
                arg,
                durability=self.durability,
                checkpoint="background" if self.durability == "normal" else "inline",
            )
            local = is_memory(arg) or sqlite_path(arg) is not None
            journal: Journal = (
                opening() if self.commit_on_caller and local else await asyncio.to_thread(opening)
            )
        else:
            journal = arg
        # At "normal" a commit never syncs (checkpoints run on the journal's own thread),
        # so appends run inline; at "full" every commit syncs, so a worker thread shares them.
        # A journal given as an object may checkpoint where it commits: off the loop, unless
        # the caller asked for commit_on_caller.
        inline = self.commit_on_caller or (journal.durability == "normal" and self._owns_journal)
        self._loaded.clear()
        self._ownership = journal if has_ownership(journal) else None
        self._claims_local = self._ownership is not None and self._ownership.claims_are_local
        if self._ownership is not None and not self._claims_local:
            inline = False  # a shared server's round trips stay off the event loop
            if self.commit_on_caller:  # asked for, and not done: say so, once, at start
                log.warning(
                    "commit_on_caller=True is not taken by a journal on a database server:"
                    " its commits stay on the journal's thread, off the event loop"
                )
        self._worker = JournalWorker(
            journal,
            asyncio.get_running_loop(),
            self._on_commit,
            inline=inline,
            on_lost=self._on_lost,
            on_unheard=self._on_unheard,
        )
        self._reader = JournalReader(self._worker)
        try:
            await self._start_plugins(journal, named)
            await self._start_fleet(journal)
            self._streams = set(await self._worker.run(journal.streams))
            self._streams.discard(HOST_STREAM)  # known before the controls load any agent
            await self.controls.start(journal)
            streams = [self._only] if self._only is not None else sorted(self._streams)
            rules_seen: list[Rule] = []  # the custom rules of the agents looked at
            held: list[str] = []  # the agents another host holds
            for agent_id in streams:
                if self._ownership is not None and self._only is None and not self._claims_local:
                    if not await self._take_over(agent_id):  # agents another host holds
                        held.append(agent_id)  # are left to it
                else:
                    rules_seen.extend(await self._resume(agent_id))
            if self._ownership is not None:
                await self.controls.take_up(set(self._ownership.claims()))
            if self._ownership is not None and not self._claims_local:
                keeping = self._keep_claims(self._ownership, self._worker)
                self._claims_task = asyncio.create_task(keeping)
            await self._warn_unreachable_names(rules_seen, held)
        except BaseException:
            await self._close()
            self._ready.set()  # wake callers waiting on start(): they find it failed
            self._ready.clear()
            raise
        self._ready.set()

    async def _start_plugins(
        self,
        journal: Journal,
        named: tuple[PluginSet, list[tuple[str, Registrar]]] | None,
    ) -> None:
        """Take the plugins named, loaded as given (or load those the journal was decided
        with), and journal a change."""
        worker = self.require_worker()
        journaled = await worker.run(journaled_plugins, journal)
        if named is None and not journaled:
            return
        if named is None:
            # here: only a host with plugins reads the entry points (importlib.metadata and
            # what it imports are about 4 MB of resident memory)
            from ..plugins import load

            versions = {ref.name: ref.version for ref in journaled or ()}
            plugins, registrars = load(versions, versions=versions)
        else:
            plugins, registrars = named
            if plugins.refs != (journaled or ()):
                ts = self.clock.now_ns()
                await worker.append([to_pending(HOST_STREAM, PluginsSet(plugins.refs), ts)])
                log.info("Plugins journaled: %s", ", ".join(plugins.labels) or "none")
        self.plugins = plugins
        # a start after a stop runs the registrars again: the handlers they made then go
        # first, or each new one (a new function) would be refused as a second handler
        for key in self._plugin_handlers:
            self.actions.specs.pop(key, None)
        before = set(self.actions.specs)
        try:
            for name, register in registrars:
                try:
                    register(self)
                except Exception as exc:
                    msg = f"plugin {name!r} failed to register its actions: {type(exc).__name__}: {exc}"
                    raise ConfigurationError(msg) from None
        finally:
            self._plugin_handlers = set(self.actions.specs) - before

    async def _start_fleet(self, journal: Journal) -> None:
        """Rebuild the fleet view if a fleet policy is (or is to be) in force; journal a new one."""
        worker = self.require_worker()
        journaled = await worker.run(journaled_policy, journal)
        if self.fleet_policy is None and journaled is None:
            return  # no fleet policy, ever: the gate never runs, and nothing is folded for it
        committed, seq = await worker.run(rebuild_fleet, journal)
        self._fleet_committed, self._fleet_seq = committed, seq
        if self.fleet_policy is not None and (
            self.fleet_policy != committed.policy or committed.fold != FLEET_FOLD
        ):
            ts = self.clock.now_ns()
            policy_set = FleetPolicySet(self.fleet_policy, fold=FLEET_FOLD)
            await worker.append([to_pending(HOST_STREAM, policy_set, ts)])
            log.info("Fleet policy %s journaled", self.fleet_policy.digest)
        self.fleet, self.fleet_view_seq = committed.copy(), self._fleet_seq

    async def _warn_unreachable_names(
        self, rules_seen: Sequence[Rule], held: Sequence[str] = ()
    ) -> None:
        """Warn of each name in this host's set-up that no decision can reach (see
        reachable): a policy that gates nothing, a handler or a step that never runs, a
        custom rule that never matches. `rules_seen`: the custom rules journaled for the
        agents start looked at; `held`: the agents another host holds, whose journaled
        rules are read only if there is something to warn of (this host may take them over).
        """
        warnings = self._unreachable_names(rules_seen)
        if warnings and held:
            worker = self.require_worker()
            more = await worker.run(_journaled_rules, worker.journal, held)
            warnings = self._unreachable_names([*rules_seen, *more])
        for warning in warnings:
            log.warning("%s", warning)
        if self.rules and not self.plugins.refs:  # else a plugin's analyser may give it
            for warning in unmatched_rules(self.rules):
                log.warning("%s", warning)

    def _unreachable_names(self, rules_seen: Sequence[Rule]) -> list[str]:
        rules = [*DEFAULT_RULES, FALLBACK, *(self.rules or ()), *rules_seen]
        for _, pack in self.plugins.packs:
            rules.extend(pack)
        for ledger in self._loaded.values():
            rules.extend(ledger.state.rules)
        specs = self.actions.specs.values()
        approvals = self.controls.approval_policy
        return unreachable(
            decided=decided_by(rules),
            handlers={spec.name for spec in specs},
            ladders={spec.name: spec.escalate for spec in specs if spec.escalate},
            approvals=() if approvals is None else approvals.actions,
            disruptive=() if self.fleet_policy is None else self.fleet_policy.disruptive,
        )

    def _warn_if_replaced(self, policy: FleetPolicy) -> None:
        """Say so when another writer journaled a fleet policy other than this host's: the
        last one journaled is every host's, so this host gates by it from here on."""
        mine = self.fleet_policy
        if mine is not None and policy != mine:
            warn_replaced(log, self._replacements_told, "fleet policy", policy.digest, mine.digest)

    async def resync_fleet(self) -> None:
        """After a failed append, rebuild the decision view from the committed fleet state.

        The failed append may have committed with its answer lost (a server gone during
        the commit), so the committed state first catches up with the journal from the
        last seq it is sure of (commits answered meanwhile were not folded in); the view
        is copied from it once no decision is queued.
        """
        async with self._fleet_resync:
            while self.fleet_stale and self._fleet_committed is not None:
                busy = [
                    ledger.idle.wait()
                    for ledger in self._loaded.values()
                    if not ledger.idle.is_set()
                ]
                if busy:
                    await asyncio.gather(*busy)
                    continue
                worker = self.require_worker()
                missed = await worker.run(_entries_after, worker.journal, self._fleet_seq)
                committed = self._fleet_committed
                for entry in missed:  # on the loop, as _on_commit folds: in seq order, once
                    if entry.seq > self._fleet_seq:
                        evolve_fleet(committed, entry)
                        self._fleet_seq = entry.seq
                        if entry.kind == "FleetPolicySet":
                            self._warn_if_replaced(committed.policy)
                if any(not ledger.idle.is_set() for ledger in self._loaded.values()):
                    continue  # a decision was queued meanwhile: copy once it is committed
                self.fleet, self.fleet_view_seq = committed.copy(), self._fleet_seq
                self.fleet_stale = False
                worker.rebased()  # fleet batches decided from here on count no refused one

    def _on_lost(self, batches: Sequence[Sequence[Pending]]) -> None:
        """A transaction failed with its outcome unknown (it may have committed, its answer
        lost). Called on the loop before any later commit is answered: the fleet's committed
        state stays where it was sure, other agents' commits are not folded into it until
        it has caught up with the journal from there, and each agent catches up before it
        decides again (its own batches queued behind are refused by the journal's worker)."""
        if self._fleet_committed is not None:
            self.fleet_stale = True
        for batch in batches:
            ledger = self._loaded.get(batch[0].stream)
            if ledger is not None:
                ledger.doubt(batch)

    def _on_unheard(self, entries: list[Entry]) -> None:
        """A batch committed after its caller was cancelled (a timeout around process(),
        say): the action it scheduled starts now, as the caller would have started it. The
        rest of what the caller did after a commit (metrics, the event's bus handlers) was
        the caller's: it stopped waiting, and those are skipped, as after a lost answer. A
        stopping host starts nothing, nor does one that evicted the agent meanwhile (its
        calls all answered, it was idle): the action stays open, and the next start
        resumes it."""
        ledger = self._loaded.get(entries[0].stream)
        if ledger is not None and not self._stopping:
            self.actions.start_recovered(ledger, [entries])

    def resume_recovered(self, ledger: Ledger, batches: list[list[Entry]]) -> None:
        """Batches journaled while their callers heard an error (the answer lost), found
        when the agent caught up, now that one of its appends proved this host owns it: their
        approval requests join the pending ones, and their scheduled actions start."""
        for entries in batches:
            self.controls.on_commit(entries)
        self.actions.start_recovered(ledger, batches)

    async def _redeciding(self) -> bool:
        """A batch is about to be decided again after a conflict. The operators' controls
        are read again first (the conflict may be theirs: a silence set meanwhile). Under a
        fleet policy the fleet's decision view holds its first try, so it is rebuilt first,
        and True says the batch must be decided again in queue order, on the loop: decided
        on the journal's thread while other agents' batches are queued, its gate could count
        batches journaled after it."""
        await self.controls.refresh()
        if self.fleet is None:
            return False
        self.fleet_stale = True
        await self.resync_fleet()
        return True

    async def _resume(self, agent_id: str) -> tuple[Rule, ...]:
        """Resume an agent's unfinished actions; an agent with none is not kept loaded.
        Return its custom rules, as journaled."""
        if agent_id == self._only:
            ledger = await self._load(agent_id, starting=True)
            if self._ownership is not None:
                return ledger.state.rules  # the claim made in _load resumed them
        else:
            ledger = Ledger(
                agent_id,
                self.require_worker(),
                self.clock,
                self.checkpoint_every,
                self.plugins,
                self._redeciding,
            )
            await ledger.rebuild()  # a look at its state: kept only if it has actions to resume
            if not ledger.state.open_actions or agent_id in self._loaded:
                return ledger.state.rules
            if self._ownership is not None:  # resumed by the host that claims it: this one?
                await self._take_over(agent_id)
                return ledger.state.rules
            await self._install(ledger)
        if ledger.state.open_actions:
            await self.actions.resume(ledger)
        await self._evict_over_bound(keep=agent_id)
        return ledger.state.rules

    async def _take_over(self, agent_id: str) -> bool:
        """Claim an agent no live host holds, load it and resume its unfinished actions."""
        if agent_id in self._loaded or agent_id in self._loading:
            return False
        try:
            await self._load(agent_id, starting=True)
        except AgentOwnedElsewhere:
            return False
        return True

    def episode_open(self, agent_id: str, fingerprint: str) -> bool:
        """Whether a fingerprint's episode is open for an agent (its repeats are deduplicated)."""
        view = self.fleet
        if view is None or view.policy.dedup_window is None:
            return False
        return fingerprint_key(agent_id, fingerprint) in view.fingerprints

    async def episode_open_now(self, agent_id: str, fingerprint: str) -> bool:
        """episode_open, as the journal holds it now: for a host that does not write the
        agent's stream, whose view has not yet folded what its owner journaled since."""
        if self.fleet is None:
            return False
        self.fleet_stale = True
        await self.resync_fleet()
        return self.episode_open(agent_id, fingerprint)

    def knows(self, agent_id: str) -> bool:
        """Whether the agent's stream was in the journal at start, or this host has loaded it
        since (a look in memory: an agent begun elsewhere since start is not known)."""
        return agent_id in self._streams

    def may_serve(self, agent_id: str) -> bool:
        """Whether this host may take the agent at all (a Runtime serves its own only)."""
        return self._only in (None, agent_id)

    def serves(self, agent_id: str) -> bool:
        """Whether this host writes the agent's stream (for another host's, it leaves requests
        be): it has it loaded, or holds its claim (an agent evicted past max_loaded_agents
        stays claimed, and no other host may carry out what operators ask of it)."""
        if self._only is not None and agent_id != self._only:
            return False
        ownership = self._ownership
        return ownership is None or agent_id in self._loaded or agent_id in ownership.claims()

    async def claim_for_controls(self, agent_id: str) -> bool:
        """Claim an agent to carry out an operator's request for it, where agents are
        claimed when first used (SQLite): False if another live host serves it."""
        if not self._claims_local or self._only is not None:
            return False
        try:  # read: what the request is about was journaled, maybe by a host since dead
            await self._load(agent_id, starting=True, read=True)
        except AgentOwnedElsewhere:
            return False
        return True

    def _history_found(self, ledger: Ledger, upto: int) -> None:
        """A stream this host took to be new had entries up to `upto` from another host
        (one that died, as this host holds its claim): resume the actions that host left
        unfinished, and carry out what operators asked of it."""

        async def take_up() -> None:
            await ledger.idle.wait()
            if any(seq <= upto for seq in ledger.state.open_actions):
                await self.actions.resume(ledger, upto=upto)
            await self.controls.take_up([ledger.agent_id])

        def done(task: asyncio.Task[None]) -> None:
            self._taking_up.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "Taking up what another host left of agent %s failed (%s); a host that"
                    " starts serving it resumes its unfinished actions and carries out what"
                    " operators asked",
                    ledger.agent_id,
                    task.exception(),
                )

        task = asyncio.get_running_loop().create_task(take_up())
        self._taking_up.add(task)
        task.add_done_callback(done)

    async def load_for_controls(self, agent_id: str) -> Ledger:
        """The agent's ledger for carrying out an operator's request (during start-up too)."""
        return await self._load(agent_id, starting=True)

    async def _keep_claims(self, ownership: Ownership, worker: JournalWorker) -> None:
        """Renew this host's leases; drop agents lost; take over agents whose owner died.

        Runs every third of the lease, on the wall clock (leases are the database's time,
        not the injected clock's): a host that dies is replaced within a lease and a third.
        """
        every = ownership.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                for agent_id in await worker.run(ownership.renew):
                    log.warning(
                        "Agent %s was taken over by another host; unloading it", shown(agent_id)
                    )
                    self._loaded.pop(agent_id, None)
                if self._stopping:
                    continue  # the leases held are kept while stop() finishes; no new ones
                self._sweep = asyncio.ensure_future(self._take_over_orphans(ownership, worker))
                await self._sweep
            except AdaptiveRuntimeError as exc:  # the server away: keep trying, fencing holds
                log.warning("Keeping agent claims failed (%s); retrying", exc)

    async def _take_over_orphans(self, ownership: Ownership, worker: JournalWorker) -> None:
        """Take over the agents whose host's lease ran out, until stop() begins."""
        for agent_id in await worker.run(ownership.orphans):
            if self._stopping:
                return
            if agent_id == HOST_STREAM or self._only not in (None, agent_id):
                continue  # a Runtime serves its own agent only
            if await self._take_over(agent_id):
                self.takeovers += 1
                log.warning("Agent %s taken over: its host is gone", shown(agent_id))

    async def stop(
        self, *, actions: Literal["wait", "interrupt"] = "wait", wait_for_handlers: bool = True
    ) -> None:
        """Finish work in flight, snapshot every loaded agent, and close the journal.

        `actions="wait"` lets running actions finish, retries included; "interrupt"
        cancels them and journals each attempt in flight as interrupted, so that the
        next start() resumes it. Awaited inside an action's handler (or, waiting for
        handlers, an event handler) it would wait for that handler: ConfigurationError,
        before anything stops; a handler schedules it instead (loop.create_task).
        """
        if actions not in ("wait", "interrupt"):  # checked first: the host stays as it was
            raise ConfigurationError(f"actions must be 'wait' or 'interrupt', not {actions!r}")
        check_flag("wait_for_handlers", wait_for_handlers)  # "no" is truthy: it would wait
        if self._worker is None:
            return
        scheduled = "asyncio.get_running_loop().create_task(runtime.stop())"
        self.actions.refuse_waiting_here(
            "stop()", instead=f"; schedule it instead, to run once the handler returns: {scheduled}"
        )
        if wait_for_handlers and self.bus.handler_here():
            raise ConfigurationError(
                "stop() was awaited inside an event handler: it waits for every handler"
                " running, that one too, so it would wait for ever; call"
                f" stop(wait_for_handlers=False) there, or schedule it: {scheduled}"
            )
        self._stopping = True
        sweep = self._sweep
        if sweep is not None and not sweep.done():  # the actions it resumes are waited for too
            await asyncio.wait([sweep])
        if self._taking_up:  # what another host left, found since: resumed before stopping
            await asyncio.wait(list(self._taking_up))
        if actions == "interrupt":
            await self.actions.interrupt()
        else:
            await self.actions.wait()
        if wait_for_handlers:
            await self.bus.drain()
        await self._snapshot_all()
        await self._snapshot_fleet()
        self._ready.clear()
        self._stopped = True  # not in _close: a start() that fails closes too
        await self._close()

    async def _snapshot_all(self) -> None:
        """Snapshot every loaded agent that moved since its last snapshot, in one transaction."""
        ledgers = list(self._loaded.values())
        for ledger in ledgers:
            await ledger.quiesce()
        due = [item for item in (ledger.snapshot_due() for ledger in ledgers) if item is not None]
        worker = self._worker
        if not due or worker is None:
            return
        try:
            await worker.run(
                partial(
                    worker.journal.put_snapshots,
                    due,
                    version=STATE_VERSION,
                    ts_ns=self.clock.now_ns(),
                )
            )
        except AdaptiveRuntimeError:
            log.exception(
                "snapshots at stop failed; a snapshot is a shortcut only: the next start"
                " replays the journal from the last one written"
            )
            return
        for agent_id, _, _ in due:
            self._loaded[agent_id].snapshots_written += 1

    async def _snapshot_fleet(self) -> None:
        committed, worker = self._fleet_committed, self._worker
        if committed is None or worker is None or not self._fleet_seq:
            return
        try:
            await worker.run(
                snapshot_fleet, worker.journal, committed, self._fleet_seq, self.clock.now_ns()
            )
        except AdaptiveRuntimeError:
            log.exception("the fleet snapshot failed; the next start replays the journal for it")

    async def _close(self) -> None:
        await self.controls.stop()
        task, self._claims_task = self._claims_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        worker, self._worker = self._worker, None
        reader, self._reader = self._reader, None
        # the loaded states stay readable after stop(); start() rebuilds them afresh
        if worker is None:
            return
        # Past this point nothing else would close them: a stop() cancelled here (a timeout
        # around it, a second Ctrl-C) still closes the journal and frees the agents, then
        # lets the cancellation go on.
        closing = asyncio.ensure_future(self._close_journal(worker, reader))
        cancel: asyncio.CancelledError | None = None
        while not closing.done():
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError as exc:
                cancel = exc
        error = closing.exception()
        if cancel is not None:
            raise cancel
        if error is not None:
            raise error

    async def _close_journal(self, worker: JournalWorker, reader: JournalReader | None) -> None:
        if reader is not None:  # the reads in flight finish first
            await asyncio.to_thread(reader.close)
        ownership = self._ownership
        if ownership is not None:  # let another host take this one's agents at once
            with contextlib.suppress(AdaptiveRuntimeError):
                if asyncio.get_running_loop() is worker.loop:
                    await worker.run(ownership.release)
                else:  # stopped from another loop than it ran on: the worker's is gone
                    await asyncio.to_thread(ownership.release)
        # the journal's thread finishes what was queued on it before the journal closes
        await asyncio.to_thread(worker.close)
        if self._owns_journal:  # a journal the caller passed in stays the caller's
            # off the loop even when appends run inline: closing may checkpoint and sync
            await asyncio.to_thread(worker.journal.close)

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- agents ----------------------------------------------------------------

    def agent(self, agent_id: str) -> Agent:
        """The handle of one agent (its state is rebuilt when first used)."""
        handle = self._handles.get(agent_id)
        if handle is None:
            check_agent_id(agent_id)
            if self._only is not None and agent_id != self._only:
                msg = f"this runtime serves agent {self._only!r} only, not {agent_id!r}"
                raise ConfigurationError(msg)
            handle = self._handles[agent_id] = Agent(self, agent_id)
        return handle

    async def process(self, event: Mapping[str, Any] | Event) -> Decision:
        """Decide about an event for the agent its `agent_id` field names (or the default)."""
        return await self.agent(self.route(event)).process(event)

    async def process_many(self, events: Sequence[Mapping[str, Any] | Event]) -> list[Any]:
        """Decide about many events, each for the agent it names; results in the events' order.

        Each agent's events are journaled together, in one commit; each result is a
        Decision or the error that event alone met. An event id met again in the call
        under another agent is taken up after the agents' commits, so the first
        occurrence is the one journaled, as if the events had come one by one.
        """
        events = event_list(events)
        by_agent: dict[str, list[int]] = {}
        results: list[Any] = [None] * len(events)
        agent_of_id: dict[str, str] = {}
        later: list[int] = []  # an id first met under another agent: after the others
        for index, event in enumerate(events):
            try:
                agent = self.route(event)
            except AdaptiveRuntimeError as exc:
                results[index] = exc
                continue
            event_id = _id_of(event)
            if event_id is not None and agent_of_id.setdefault(event_id, agent) != agent:
                later.append(index)
                continue
            by_agent.setdefault(agent, []).append(index)
        calls = []
        for agent, indexes in by_agent.items():
            try:
                handle = self.agent(agent)
            except AdaptiveRuntimeError as exc:  # an agent this host may not serve
                for index in indexes:
                    results[index] = exc
                continue
            calls.append((indexes, handle.process_many([events[i] for i in indexes])))
        # one agent's failure as a whole (another host owns it, the journal refused its
        # commit) is its events' answer: the other agents' events are decided all the same
        answers = await asyncio.gather(*(call for _, call in calls), return_exceptions=True)
        for (indexes, _), decided in zip(calls, answers, strict=True):
            if isinstance(decided, BaseException):
                if not isinstance(decided, AdaptiveRuntimeError):
                    raise decided
                for index in indexes:
                    results[index] = decided
                continue
            for index, result in zip(indexes, decided, strict=True):
                results[index] = result
        if later:
            for index, result in zip(
                later, await self.process_many([events[i] for i in later]), strict=True
            ):
                results[index] = result
        return results

    def route(self, event: object) -> str:
        """The agent an event is for: its `agent_id` field, else the default agent."""
        if isinstance(event, Mapping):
            named = event.get(DEFAULT_AGENT_FIELD)
        elif isinstance(event, Event):
            named = event.attrs.get(DEFAULT_AGENT_FIELD)
        else:
            named = None
        if named is None:
            return self.default_agent
        if not isinstance(named, str):
            msg = f"'agent_id' must be a string naming an agent, not {type(named).__name__}"
            raise InvalidEventError(msg, field=DEFAULT_AGENT_FIELD)
        try:
            check_agent_id(named)
        except ConfigurationError as exc:  # a field of the event, not a setting
            raise InvalidEventError(str(exc), field=DEFAULT_AGENT_FIELD) from None
        if not named.isprintable():  # shown in tables, logs and metric labels: one plain line
            # (checked here, where ids arrive from outside; an agent already journaled under
            # such an id is still served through host.agent(), its outcomes recorded)
            msg = f"'agent_id' must be printable, with no line break, tab or control character: {named!r}"
            raise InvalidEventError(msg, field=DEFAULT_AGENT_FIELD)
        return named

    def loaded_agents(self) -> list[str]:
        """The agents whose state is in memory now, least recently used first."""
        return list(self._loaded)

    async def agents(self) -> list[str]:
        """Every agent with entries in the journal, sorted."""
        worker = await self.when_ready()
        return [s for s in await worker.run(worker.journal.streams) if s != HOST_STREAM]

    def action(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        retry_on: Callable[[BaseException], bool] | None = None,
        fallback: Handler | None = None,
        resume: Resume = "retry",
        verify: Verification | None = None,
        escalate: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Register a handler for action `name` for every agent (an agent's own one wins).

        `verify` checks, a while after the handler returns, that the action worked (its
        outcome is recorded from that check); when the check fails, `escalate` is the
        ladder of actions walked in turn (e.g. ["rollback_deployment", "page_human"]).
        """
        return register_action(
            self.actions,
            None,
            name,
            retry,
            breaker,
            retry_on,
            fallback,
            resume,
            verify=verify,
            escalate=escalate,
        )

    async def wait_for_actions(self) -> None:
        """Wait until every action running now has finished (retries included)."""
        await self.actions.wait()

    def watch(self, watcher: Callable[[list[Entry]], None]) -> Callable[[], None]:
        """Call `watcher(entries)` on the event loop after each of this host's commits.

        It hears the entries once they are durable and folded, in commit order. It must
        not block; an exception it raises is logged and never reaches the writer. Returns
        a function that stops the watching.
        """
        self._watchers.append(watcher)

        def unwatch() -> None:
            with contextlib.suppress(ValueError):
                self._watchers.remove(watcher)

        return unwatch

    @property
    def journal_location(self) -> str | None:
        """Where the journal is, as given (a path or URL); None for a Journal object."""
        arg = self._journal_arg
        return os.fspath(arg) if isinstance(arg, str | os.PathLike) else None

    @property
    def journal(self) -> Journal:
        """The journal this host writes. While the host runs, reading it is safe from any
        thread, but a read may wait out a commit in flight (see Runtime.journal); `read`
        runs a read off the commits' way."""
        return self.require_worker().journal

    def metrics(self) -> dict[str, Any]:
        """The host's counters: agents loaded and evicted, agents its lease sweep took over
        from a host that died (shared journals only), actions running, commits, the bus."""
        return {
            "agents_loaded": len(self._loaded),
            "agents_evicted": self.evictions,
            "agents_taken_over": self.takeovers,
            "actions_running": self.actions.running(),
            "commits": 0 if self._worker is None else self._worker.commits,
            "bus": {"delivered": self.bus.delivered, "errors": self.bus.errors},
        }

    # -- internals -------------------------------------------------------------

    def require_worker(self) -> JournalWorker:
        if self._worker is None:
            if self._stopped:
                raise RuntimeNotStartedError(
                    "this runtime was stopped: call `await runtime.start()` (or"
                    " `await host.start()`) again to use it; the state is rebuilt from the journal"
                )
            raise RuntimeNotStartedError(
                "call `await runtime.start()` (or `await host.start()`, or use `async with`) first"
            )
        return self._worker

    async def when_ready(self) -> JournalWorker:
        """The worker, once start() has finished; a call made during start() waits for it."""
        self._refuse_another_loop()
        if self._starting and not self._ready.is_set():
            await self._ready.wait()
        return self.require_worker()

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """Return `fn(journal, *args)`, a call that only reads, run off the appends' way.

        On a reader thread with a journal of its own where the journal can give one
        (a SQLite file, PostgreSQL; see JournalReader), so that a long read holds back
        neither the commits nor, at durability "normal", the event loop; else after the
        appends queued before it. It sees every commit acknowledged before it began.
        """
        await self.when_ready()
        reader = self._reader
        if reader is None:
            raise RuntimeNotStartedError("the host is stopping")
        return await reader.run(fn, *args)

    def _refuse_another_loop(self, then: str = "") -> None:
        """Refuse a call from a loop other than the one start() ran on (a second
        asyncio.run): its answers would go to that loop, often closed by then, and the
        caller would hear "Event loop is closed" from asyncio, or nothing at all."""
        worker = self._worker
        if worker is not None and asyncio.get_running_loop() is not worker.loop:
            raise RuntimeNotStartedError(
                "this runtime was started on another event loop (each asyncio.run() makes a"
                " new one): start it, use it and stop it on one loop, e.g. all inside one"
                " `async def main()` run by asyncio.run(main()), with `async with Runtime(...)`."
                f" What it acknowledged is journaled{then}"
            )

    async def ledger(self, agent_id: str) -> Ledger:
        """The agent's ledger, rebuilt from the journal if it is not loaded."""
        self._refuse_another_loop()
        ledger = self._loaded.get(agent_id)
        if ledger is not None and self._worker is not None and not self._starting:
            self._loaded.move_to_end(agent_id)  # loaded and serving: what the awaits would give
            return ledger
        await self.when_ready()
        return await self._load(agent_id)

    def loaded(self, agent_id: str) -> Ledger | None:
        return self._loaded.get(agent_id)

    async def _load(self, agent_id: str, *, starting: bool = False, read: bool = False) -> Ledger:
        ledger = self._loaded.get(agent_id)
        if ledger is not None:
            self._loaded.move_to_end(agent_id)
            return ledger
        loading = self._loading.get(agent_id)
        if loading is not None:
            return await asyncio.shield(loading)
        worker = self._worker if starting else self.require_worker()
        if worker is None:
            raise RuntimeNotStartedError("the host is not started")
        future: asyncio.Future[Ledger] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        self._loading[agent_id] = future
        try:
            taken = False
            if self._ownership is not None and agent_id not in self._ownership.claims():
                if self._claims_local:  # a lock on this machine, taken at once
                    self._ownership.claim(agent_id)
                else:  # a server's claim: a round trip
                    await worker.run(self._ownership.claim, agent_id)
                taken = True
            ledger = Ledger(
                agent_id, worker, self.clock, self.checkpoint_every, self.plugins, self._redeciding
            )
            # A stream start() did not see is taken to be new, unread. On a shared server it
            # is read all the same; on one machine, should another host have begun it since,
            # the first append meets a conflict and catches up, and then this host takes
            # up what that host left (_history_found).
            new = not read and agent_id not in self._streams
            new = new and (self._ownership is None or self._claims_local)
            await ledger.rebuild(new=new)
            if new and self._ownership is not None:
                ledger.on_history_found = self._history_found
            self._streams.add(agent_id)
            await self._install(ledger)
            if taken and ledger.state.open_actions:
                await self.actions.resume(ledger)  # taken over from a host that died
            future.set_result(ledger)
        except BaseException as exc:
            self._loaded.pop(agent_id, None)
            future.set_exception(exc)
            raise
        finally:
            del self._loading[agent_id]
        if log.isEnabledFor(logging.INFO):
            log.info(
                "Agent %s loaded: %d entries (snapshot at seq %s, %d replayed)",
                agent_id,
                ledger.state.stream_seq,
                ledger.last_rebuild.get("snapshot_seq"),
                ledger.last_rebuild.get("replayed", 0),
            )
        if taken and ledger.state.stream_seq and not self._starting:  # a new one owes none
            await self.controls.take_up([agent_id])  # (start() takes up all it took at once)
        await self._evict_over_bound(keep=agent_id)
        return ledger

    async def _install(self, ledger: Ledger) -> None:
        """Make a rebuilt ledger the agent's loaded one, and journal the host's rules for it."""
        agent_id = ledger.agent_id
        self._loaded[agent_id] = ledger  # from here on, its commits are folded into it
        state = ledger.state
        rules = state.rules if self.rules is None else self.rules
        learning = state.learning if self.learning is None else self.learning
        if rules != state.rules or (learning or LearningPolicy()) != (
            state.learning or LearningPolicy()
        ):
            policy = ledger.policy_for(rules, learning)
            await ledger.append_records(
                [RulesChanged(rules=rules, ruleset=policy.ruleset, learning=learning)]
            )
            log_decision.info(
                "Policy changed for %s: %d custom rules, ruleset %s",
                agent_id,
                len(rules),
                policy.ruleset,
            )

    async def _evict_over_bound(self, keep: str) -> None:
        """Snapshot and drop the least recently used idle agents past max_loaded_agents."""
        while len(self._loaded) > self.max_loaded_agents:
            victim = next(
                (
                    agent_id
                    for agent_id, ledger in self._loaded.items()
                    if agent_id != keep
                    and not ledger.busy
                    and not ledger.owes_starts
                    and not self.actions.running(agent_id)
                ),
                None,
            )
            if victim is None:
                return  # every loaded agent is busy: the bound is passed until one is idle
            ledger = self._loaded.pop(victim)
            await ledger.settle()
            self.evictions += 1

    def _on_commit(self, entries: list[Entry]) -> None:
        committed = self._fleet_committed
        # While stale the committed state is in doubt (an append whose answer was lost may
        # be in the journal): it stays where it was last known whole, and resync_fleet
        # reads the journal from there, these entries included.
        if committed is not None and not self.fleet_stale and entries[-1].seq > self._fleet_seq:
            first = next(e.seq for e in entries if e.seq > self._fleet_seq)
            if first != self._fleet_seq + 1:
                # another writer's entries came in between (another host, the command
                # line): they may change the fleet, so the view catches up before the next
                # gated decision, and the journal refuses those decided without them
                self.fleet_stale = True
        if committed is not None and not self.fleet_stale and entries[-1].seq > self._fleet_seq:
            for entry in entries:
                if entry.seq <= self._fleet_seq:
                    continue  # folded already, caught up from the journal by resync_fleet
                settled = settles(committed, entry)  # read before the fold settles it
                evolve_fleet(committed, entry)
                # the decision view too: it folds decisions as they are made, not these
                if entry.kind == "EpisodeClosed" and self.fleet is not None:
                    closed = read_as(entry, EpisodeClosed).fingerprint
                    close_episode(self.fleet, entry.stream, closed)
                elif settled is not None and self.fleet is not None:
                    settle(self.fleet, settled, entry.ts_ns)
            # folded with no gap, so these are this host's, which the decision view holds
            # already: it is the journal up to here, plus this host's batches queued since
            self._fleet_seq = self.fleet_view_seq = entries[-1].seq
        ledger = self._loaded.get(entries[0].stream)
        if ledger is not None:
            ledger.on_commit(entries)
        self.controls.on_commit(entries)
        for watcher in self._watchers:
            try:
                watcher(entries)
            except Exception:
                log.exception("a commit watcher failed; the entries are journaled")


def _id_of(event: object) -> str | None:
    """An event's id as sent, if it is a string (anything else is refused when parsed)."""
    if isinstance(event, Event):
        return event.id
    named = event.get("id") if isinstance(event, Mapping) else None
    return named if isinstance(named, str) else None


def _journaled_rules(journal: Journal, agents: Sequence[str]) -> list[Rule]:
    """The custom rules each agent's stream last journaled."""
    out: list[Rule] = []
    for agent_id in agents:
        for entry in journal.latest(1, agent_id, kind="RulesChanged"):
            out.extend(read_as(entry, RulesChanged).rules)
    return out


def _entries_after(journal: Journal, seq: int) -> list[Entry]:
    return list(journal.read(after=seq))


def check_flag(name: str, value: object) -> None:
    """A yes/no setting is a bool: "false", a non-empty string, would read as True."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, not {value!r}")


def check_agent_id(agent_id: object, name: str = "agent_id") -> str:
    """An agent id is a non-empty string of at most 256 characters, which every journal can
    store: valid UTF-8 text with no NUL character. `name` is the setting that gave it."""
    if not isinstance(agent_id, str) or not agent_id or len(agent_id) > MAX_AGENT_ID:
        raise ConfigurationError(
            f"{name} must be a non-empty string of at most {MAX_AGENT_ID} characters"
        )
    try:
        check_stored_name(name, agent_id, MAX_AGENT_ID)
    except InvalidEventError as exc:
        raise ConfigurationError(str(exc)) from None
    if agent_id.startswith("~"):
        raise ConfigurationError(f"agent ids starting with '~' are the journal's own: {agent_id!r}")
    return agent_id


def _field_names(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str | bytes):
        msg = f"sensitive_fields must be a list of field names, e.g. [{names!r}], not one string"
        raise ConfigurationError(msg)
    try:
        listed = list(names)
    except TypeError:
        msg = f"sensitive_fields must be a list of field names, not {type(names).__name__}"
        raise ConfigurationError(msg) from None
    for name in listed:
        if not isinstance(name, str) or not name:
            msg = f"sensitive_fields must hold non-empty strings; found {name!r}"
            raise ConfigurationError(msg)
    return frozenset(name.lower() for name in listed)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
