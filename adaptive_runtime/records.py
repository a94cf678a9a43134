"""The data that crosses module lines: events, decisions, and the journal's entry kinds.

Entry kinds are past-tense nouns in one msgspec tagged union; each is stored as the
body of a journal entry whose `kind` column carries the same tag.

No `from __future__ import annotations` here: msgspec reads these annotations to build
the record decoder when the module is imported, and each one given as a string costs it
an eval (about half of this module's import time, measured with `-X importtime`).
"""

import hashlib
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

import msgspec

from .errors import ConfigurationError, InvalidEventError, JournalCorruptError

__all__ = [
    "DEFAULT_DISRUPTIVE",
    "ActionAbandoned",
    "ActionAwaitingApproval",
    "ActionEscalated",
    "ActionFailed",
    "ActionRetried",
    "ActionScheduled",
    "ActionSkipped",
    "ActionStarted",
    "ActionSucceeded",
    "ActionVerified",
    "ActionVerifying",
    "ApprovalDecided",
    "ApprovalGiven",
    "ApprovalPolicy",
    "ApprovalPolicySet",
    "Breaker",
    "CheckpointCreated",
    "DeadLetterDismissed",
    "DeadLetterRetry",
    "Decision",
    "DecisionMade",
    "Entry",
    "EpisodeClosed",
    "Event",
    "EventReceived",
    "FleetIncident",
    "FleetPolicy",
    "FleetPolicySet",
    "LearningPolicy",
    "OutcomeRecorded",
    "Pending",
    "PluginRef",
    "PluginsSet",
    "Record",
    "Rule",
    "RulesChanged",
    "SilenceEnded",
    "SilenceMatcher",
    "SilenceSet",
    "StatePatched",
    "decode_record",
    "encode_checked",
    "encode_record",
    "named",
    "own_copy",
    "read_as",
    "read_record",
    "to_pending",
]


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """An entry to append: the journal assigns its seq, stream_seq and digest."""

    stream: str
    kind: str
    ts_ns: int
    body: bytes
    event_id: str | None = None


class Entry(msgspec.Struct, frozen=True):
    """One journaled entry, as read back."""

    seq: int
    stream: str
    stream_seq: int
    kind: str
    ts_ns: int
    event_id: str | None
    body: bytes
    batch: int
    """The seq of the first entry of its batch: the entries of one `append` call, or of one
    batch of `append_many` (which commits several batches, each with its own marker)."""
    digest: bytes


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An operational event, validated and bounded (see engines.events.parse_event)."""

    type: str
    severity: float = 0.0
    cpu: float = 0.0
    memory: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    id: str | None = None
    attrs: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        """Return the event as the flat dict a caller sent (attributes beside the fields)."""
        out: dict[str, Any] = {
            "type": self.type,
            "severity": self.severity,
            "cpu": self.cpu,
            "memory": self.memory,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
        }
        if self.id is not None:
            out["id"] = self.id
        out.update(self.attrs)
        return out


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the decision table: first match wins."""

    context: str | None
    risk: str | None
    min_conf: float
    action: str
    reason: str
    priority: str | None = None
    """The lowest priority a decision from this rule may have."""
    alternatives: tuple[str, ...] = ()
    """Other actions that may compete with this rule's, on their record (same min_conf)."""


class Decision(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What the runtime decided about one event, and why.

    Journaled as an array of its fields in this order (about half the bytes of a map);
    entries written as maps by earlier versions still read (see `decode_record`).
    """

    action: str
    confidence: float
    reason: str
    priority: str
    context: str
    risk: str
    stability: str
    pressure: float
    rule: str
    """Which rule matched, e.g. `default[2]`, `custom[0]` or `fallback`."""
    ruleset: str
    """A hash of the rules and parameters the decision was made under."""
    event_type: str
    base_confidence: float
    risk_factor: float
    history_weight: float
    tags: tuple[str, ...] = ()
    event_id: str | None = None
    ts_ns: int = 0
    seq: int = 0
    """The seq of the DecisionMade entry; 0 until journaled."""
    event_seq: int = 0
    """The seq of the EventReceived entry; 0 until journaled."""
    degraded_from: str | None = None
    """The action the rules chose, when the fleet's policy put a safer one in its place."""
    fleet: str | None = None
    """Why the fleet's policy changed the action (None: it did not)."""
    fleet_policy: str | None = None
    """The hash of the fleet policy in force (None: none active)."""
    plugins: tuple[str, ...] = ()
    """The plugins in force, as `name==version`; they are in the ruleset hash too."""
    instead_of: str | None = None
    """The action the rules chose, when an alternative with a better record replaced it."""


DEFAULT_DISRUPTIVE = (
    "restart_service",
    "rollback_deployment",
    "isolate_component",
    "circuit_breaker_open",
)
"""Actions that take something away while they run: the ones a budget counts."""


_LATER_KNOBS: dict[str, object] = {
    "cooldown": None,
    "max_share": None,
    "min_untouched": None,
    "max_in_flight": None,
    "dedup_window": None,
    "on_cooldown": "degrade",
}
"""The knobs added after the first version, with their defaults: left at its default, a
knob is not in the digest, so the policies journaled before it keep their decisions'."""


class FleetPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fleet's safety knobs; journaled, so replay and what-if use the ones in force."""

    correlate_agents: int = 0
    """Open an incident when this many agents decide the same context in the window (0: never)."""
    correlate_window: float = 60.0
    disruptive: tuple[str, ...] = DEFAULT_DISRUPTIVE
    budget: int | None = None
    """At most this many disruptive actions across the fleet per budget_window (None: no bound)."""
    budget_window: float = 60.0
    hold_during_incident: bool = False
    """No disruptive action for a context while an incident about it is open."""
    cooldown: float | None = None
    """At most one of each disruptive action per target (the agent, and the event's target
    label) in this many seconds; a decision held back is degraded (None: no cooldown)."""
    max_share: float | None = None
    """Fleet floor: disruptive actions on at most this share of the fleet's agents within
    budget_window (NodeHealthCheck's maxUnhealthy); None: no bound."""
    min_untouched: int | None = None
    """Fleet floor: at least this many agents with no disruptive action within budget_window
    (minHealthy); None: no bound."""
    on_cooldown: str = "degrade"
    """What a decision held back by the cooldown becomes: "degrade" (the next rule whose
    action is not disruptive) or "skip" (the decision stands; its action is skipped)."""
    dedup_window: float | None = None
    """Repeats of an event's `fingerprint` for the same agent within this many seconds of
    the first are journaled and decided as repeats: the fallback rule, no second action."""
    max_in_flight: int | None = None
    """At most this many actions running per target (the agent, and the event's target
    label); one decided past it is skipped, with the reason. It acts on actions only."""

    def __post_init__(self) -> None:
        if type(self.correlate_agents) is not int or self.correlate_agents < 0:
            msg = f"correlate_agents must be an int from 0, not {self.correlate_agents!r}"
            raise ConfigurationError(msg)
        for name in ("correlate_window", "budget_window"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= 86400 * 7
            ):
                raise ConfigurationError(f"{name} must be seconds from 0 to a week, not {value!r}")
        if self.budget is not None and (type(self.budget) is not int or self.budget < 0):
            raise ConfigurationError(f"budget must be an int from 0 or None, not {self.budget!r}")
        disruptive = self.disruptive  # a bare string would be taken letter by letter
        if isinstance(disruptive, str) or not isinstance(disruptive, list | tuple):
            raise ConfigurationError("disruptive must be a list of action names")
        if not all(isinstance(a, str) and a for a in disruptive):
            raise ConfigurationError("disruptive must be a list of action names")
        msgspec.structs.force_setattr(self, "disruptive", tuple(disruptive))  # as journaled
        cooldown = self.cooldown
        if cooldown is not None and (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, int | float)
            or not 0 < cooldown <= 86400 * 7
        ):
            raise ConfigurationError(f"cooldown must be seconds from 0 to a week, not {cooldown!r}")
        share = self.max_share
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
        ):
            raise ConfigurationError(f"max_share must be above 0 and at most 1, not {share!r}")
        floor = self.min_untouched
        if floor is not None and (type(floor) is not int or floor < 0):
            raise ConfigurationError(f"min_untouched must be an int from 0, not {floor!r}")
        window = self.dedup_window
        if window is not None and (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not 0 < window <= 86400 * 7
        ):
            raise ConfigurationError(
                f"dedup_window must be seconds from 0 to a week, not {window!r}"
            )
        if self.on_cooldown not in ("degrade", "skip"):
            msg = f"on_cooldown must be 'degrade' or 'skip', not {self.on_cooldown!r}"
            raise ConfigurationError(msg)
        cap = self.max_in_flight
        if cap is not None and (type(cap) is not int or cap < 1):
            raise ConfigurationError(f"max_in_flight must be a positive int, not {cap!r}")

    @property
    def active(self) -> bool:
        """Whether the policy can change anything at all."""
        return (
            self.correlate_agents > 0
            or self.budget is not None
            or self.hold_during_incident
            or self.cooldown is not None
            or self.max_share is not None
            or self.min_untouched is not None
            or self.dedup_window is not None
        )

    @property
    def digest(self) -> str:
        """A short hash of the policy, recorded in every decision it shaped.

        The knobs added since the first version (the cooldown, the floors) count only when
        set: the policies journaled before they existed keep their decisions' digests.
        """
        fields = {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if name not in _LATER_KNOBS or getattr(self, name) != _LATER_KNOBS[name]
        }
        return hashlib.blake2b(msgspec.msgpack.encode(fields), digest_size=8).hexdigest()


class EventReceived(msgspec.Struct, frozen=True, tag=True, array_like=True):
    event: Event


class DecisionMade(msgspec.Struct, frozen=True, tag=True, array_like=True):
    decision: Decision


class OutcomeRecorded(msgspec.Struct, frozen=True, tag=True, array_like=True):
    decision_seq: int
    context: str
    risk: str
    action: str
    success: bool
    confidence: float

    @classmethod
    def of(cls, decision: Decision, *, success: bool) -> "OutcomeRecorded":
        """The outcome of a journaled decision."""
        return cls(
            decision_seq=decision.seq,
            context=decision.context,
            risk=decision.risk,
            action=decision.action,
            success=bool(success),
            confidence=decision.confidence,
        )


class StatePatched(msgspec.Struct, frozen=True, tag=True, array_like=True):
    values: dict[str, Any]
    replace: bool = False


class CheckpointCreated(msgspec.Struct, frozen=True, tag=True, array_like=True):
    state: dict[str, Any]


FLEET_FOLD = 2
"""How a host journaling a fleet policy now has its action windows counted (see FleetPolicySet)."""


class FleetPolicySet(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """The host's fleet policy from here on in the journal's order (in the `~host` stream).

    `fold` is how the budget, floor and cooldown windows count from here on: 1 (every
    record journaled before fold 2 existed, which decode with the default), each
    disruptive decision when it is made; 2, each from its decision, less each one whose
    action the journal then says will not run (skipped in its batch by a silence, a
    breaker or max_in_flight; its approval denied or timed out; what a `fire_after`
    silence owed given up unrun), and from when it runs for one that runs later (its
    approval; the end of the silence that owed it). Replay folds each journal the way
    it was decided.
    """

    policy: FleetPolicy
    fold: int = 1


class PluginRef(msgspec.Struct, frozen=True, array_like=True):
    """A plugin by the name it is enabled by, and the version of its distribution."""

    name: str
    version: str


class PluginsSet(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """The plugins a host enabled, from here on in the journal's order (in the `~host` stream)."""

    plugins: tuple[PluginRef, ...]


class FleetIncident(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Agents failing together: journaled in the batch of the decision that made the count."""

    context: str
    agents: tuple[str, ...]
    decisions: tuple[tuple[str, int], ...]
    """(agent, stream_seq) of the other decisions in the window; the tripping one is in this batch."""
    rule: str


def finite_number(value: object) -> bool:
    """A real number (not a bool), neither infinite nor NaN: what a knob of seconds, a
    rate or a weight may be (a NaN passes every comparison, as false)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class LearningPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How an agent learns from outcomes (see engines.learning); journaled, in the ruleset hash."""

    prior_strength: float = 4.0
    """k: how many outcomes the no-history confidence is worth."""
    fade: float = 0.98
    """Each new outcome of an action multiplies the weight of its older ones by this."""
    bonus: float = 0.2
    """c: the optimism an alternative gets, c / sqrt(k + n); 0 lets only the estimates compete."""
    alternatives: bool = True
    """False: only the rule walk chooses (each action still scored by its own record)."""
    respect_gates: bool = False
    """True: an alternative competes only where its estimate clears its rule's min_conf.
    False: min_conf gates the rule walk, and alternatives compete on their record alone."""

    def __post_init__(self) -> None:
        checks: tuple[tuple[str, Any, Callable[[float], bool]], ...] = (
            ("prior_strength", self.prior_strength, lambda v: 0.0 < v <= 1000.0),
            ("fade", self.fade, lambda v: 0.0 < v <= 1.0),
            ("bonus", self.bonus, lambda v: 0.0 <= v <= 10.0),
        )
        for name, value, in_range in checks:
            if not (finite_number(value) and in_range(value)):
                ranges = {
                    "prior_strength": "above 0 and at most 1000",
                    "fade": "above 0 and at most 1",
                    "bonus": "from 0 to 10",
                }
                msg = f"LearningPolicy.{name} must be a number {ranges[name]}, not {value!r}"
                raise ConfigurationError(msg)


class RulesChanged(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """An agent's policy from here on: its custom rules and how it learns from outcomes."""

    rules: tuple[Rule, ...]
    ruleset: str
    learning: LearningPolicy | None = None
    """None: the default LearningPolicy."""


class Breaker(msgspec.Struct, frozen=True, array_like=True):
    """One action's circuit breaker: part of the projected state, so it survives restarts."""

    status: Literal["closed", "open", "half_open"] = "closed"
    failures: int = 0
    """Consecutive failed attempts."""
    opened_at_ns: int = 0


class ActionScheduled(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """A decision's action will run: journaled in the decision's own batch, right after it."""

    action: str
    breaker: Breaker


class ActionSkipped(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """A decision's action won't run (its breaker is open): journaled in the decision's batch."""

    action: str
    reason: str


class ActionStarted(msgspec.Struct, frozen=True, tag=True, array_like=True):
    decision_seq: int
    action: str
    attempt: int


class ActionSucceeded(msgspec.Struct, frozen=True, tag=True, array_like=True):
    decision_seq: int
    action: str
    attempt: int
    breaker: Breaker


class ActionFailed(msgspec.Struct, frozen=True, tag=True, array_like=True):
    decision_seq: int
    action: str
    attempt: int
    error: str
    breaker: Breaker
    retry_in: float | None
    """Seconds until the next attempt; None when no attempt follows."""


class ActionAbandoned(msgspec.Struct, frozen=True, tag=True, array_like=True):
    decision_seq: int
    action: str
    attempts: int
    reason: str
    """attempts_exhausted, not_retryable, time_limit, breaker_open, fallback_used,
    resume_abandoned or gave_up_before_restart; or, for an action never run (attempts 0)
    and left to a person: needs_approval (an escalation step, or an action a silence
    skipped, that the approval policy gates), silenced (an escalation step) or
    breaker_open (either, while its breaker is open)."""


DRY_RUN_SKIP = "dry run: the host runs no handler"
"""ActionSkipped's reason in a dry run (the action stands for one that would have run)."""

ALERT_RESOLVED = "alert_resolved"
"""ActionAbandoned's reason (attempts 0) when an alert resolves while a `fire_after` silence
still owes its decision's action: the trouble is over, nothing is left to run, and it is no
dead letter."""


class SilenceMatcher(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a silence covers: every field given must equal the decision's (None: any)."""

    agent: str | None = None
    target: str | None = None
    """The event's `target` attribute, else its `instance`, else its `service`."""
    event_type: str | None = None
    context: str | None = None


class SilenceSet(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """A silence or maintenance window (in the `~host` stream): inside it, the actions of
    matching decisions are skipped, naming it; the events are still decided and journaled."""

    id: str
    matcher: SilenceMatcher
    starts_ns: int
    ends_ns: int
    comment: str
    by: str
    fire_after: bool = False
    """When it ends, run the actions it skipped (once), instead of letting them go."""


class SilenceEnded(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """A silence taken back before its end (in the `~host` stream)."""

    id: str
    by: str


class ActionVerifying(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """An action's handler returned; whether the symptom cleared is checked at `due_ns`."""

    decision_seq: int
    action: str
    due_ns: int


class ActionVerified(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """What the check found: the action's outcome, journaled beside it."""

    decision_seq: int
    action: str
    ok: bool
    evidence: str


class ActionEscalated(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """The check failed: the next action of the ladder is scheduled by this record."""

    decision_seq: int
    action: str
    """The action escalated to."""
    step: int
    """Its place on the ladder, from 1."""
    reason: str


class EpisodeClosed(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """The trouble a fingerprint named is over (its alert resolved, in the agent's stream):
    the next event with it is a new episode, not a repeat."""

    fingerprint: str
    reason: str


RISK_LEVELS = ("low", "medium", "high", "critical")
"""The risks a decision is made at, lowest first (the context engine assigns one)."""


class ApprovalPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which actions wait for a person's approval before they run (any one test suffices)."""

    actions: tuple[str, ...] = ()
    """These actions, by name."""
    risks: tuple[str, ...] = ()
    """Any action decided at one of these risks (low, medium, high, critical)."""
    below_confidence: float | None = None
    """Any action decided with a confidence below this."""
    timeout_s: float = 3600.0
    """Unanswered this long, the request is denied (the default answer)."""

    def __post_init__(self) -> None:
        # A list, as a program writes one, is kept as the tuple a journaled policy reads back
        # as; a bare string would match by substring and could not be journaled at all.
        # (What a journal may already hold is checked where a policy is given: unusable().)
        for name in ("actions", "risks"):
            given = getattr(self, name)
            if isinstance(given, str) or not isinstance(given, list | tuple):
                msg = f"ApprovalPolicy: {name} must be a list of names, e.g. [{given!r}]"
                raise ConfigurationError(msg)
            msgspec.structs.force_setattr(self, name, tuple(given))
        bad = self.below_confidence is not None and not 0.0 < self.below_confidence <= 1.0
        if bad or not 0.0 < self.timeout_s <= 30 * 86400 or not math.isfinite(self.timeout_s):
            msg = (
                "ApprovalPolicy: below_confidence is above 0 and at most 1, timeout_s above 0"
                f" and at most 30 days; got {self.below_confidence!r}, {self.timeout_s!r}"
            )
            raise ConfigurationError(msg)

    def unusable(self) -> str | None:
        """What in this policy could never match a decision (an empty action name, a risk
        that is not a risk level), said as an error message; None if nothing."""
        for action in self.actions:
            if not isinstance(action, str) or not action:
                return f"ApprovalPolicy: actions must be non-empty names; found {action!r}"
        for risk in self.risks:
            if risk not in RISK_LEVELS:
                return f"ApprovalPolicy: risks are {', '.join(RISK_LEVELS)}; found {risk!r}"
        return None

    def needs(self, action: str, risk: str, confidence: float) -> str | None:
        """Why this action needs approval, or None."""
        if action in self.actions:
            return f"{action} needs approval"
        if risk in self.risks:
            return f"actions at {risk} risk need approval"
        if self.below_confidence is not None and confidence < self.below_confidence:
            return f"confidence {confidence:.4f} is below {self.below_confidence:g}"
        return None


class ApprovalPolicySet(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """The host's approval policy from here on (in the `~host` stream)."""

    policy: ApprovalPolicy


class ActionAwaitingApproval(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """A decision's action waits for approval: journaled in its batch, instead of scheduled."""

    action: str
    reason: str
    expires_ns: int


class ApprovalGiven(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """A person's answer to an approval request (in the `~host` stream, from the CLI or API)."""

    agent: str
    decision_seq: int
    approve: bool
    by: str
    comment: str


class ApprovalDecided(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """How an approval request ended, in the agent's stream: approved (the action is
    scheduled by this record), denied, or timed out (denied by default)."""

    decision_seq: int
    action: str
    approved: bool
    by: str
    reason: str


class DeadLetterRetry(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Run an abandoned action again (in the `~host` stream, from the CLI or API)."""

    agent: str
    decision_seq: int
    by: str


class DeadLetterDismissed(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Take an abandoned action off the dead-letter list (in the `~host` stream)."""

    agent: str
    decision_seq: int
    by: str


class ActionRetried(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """An abandoned action scheduled again by an operator's retry (in the agent's stream)."""

    decision_seq: int
    action: str
    by: str


Record = (
    EventReceived
    | DecisionMade
    | OutcomeRecorded
    | StatePatched
    | CheckpointCreated
    | RulesChanged
    | ActionScheduled
    | ActionSkipped
    | ActionStarted
    | ActionSucceeded
    | ActionFailed
    | ActionAbandoned
    | FleetPolicySet
    | FleetIncident
    | PluginsSet
    | SilenceSet
    | SilenceEnded
    | ApprovalPolicySet
    | ActionAwaitingApproval
    | ApprovalGiven
    | ApprovalDecided
    | DeadLetterRetry
    | DeadLetterDismissed
    | ActionRetried
    | ActionVerifying
    | ActionVerified
    | ActionEscalated
    | EpisodeClosed
)

_encoder = msgspec.msgpack.Encoder()
_copy_in = msgspec.msgpack.Decoder(dict[str, Any]).decode


def own_copy(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of an event's dict (Event.as_dict), nested values included, to hand to one
    piece of user code (a handler, a probe), so that what one changes no other sees."""
    return _copy_in(_encoder.encode(event))


_decoder: msgspec.msgpack.Decoder[Record] = msgspec.msgpack.Decoder(Record)


class _MapDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A Decision as versions before the array encoding journaled it: a map of its fields."""

    action: str
    confidence: float
    reason: str
    priority: str
    context: str
    risk: str
    stability: str
    pressure: float
    rule: str
    ruleset: str
    event_type: str
    base_confidence: float
    risk_factor: float
    history_weight: float
    tags: tuple[str, ...] = ()
    event_id: str | None = None
    ts_ns: int = 0
    seq: int = 0
    event_seq: int = 0


class _MapDecisionMade(msgspec.Struct, frozen=True, tag="DecisionMade", array_like=True):
    decision: _MapDecision


_map_decoder = msgspec.msgpack.Decoder(_MapDecisionMade)


def _decode(body: bytes) -> Record:
    """Decode a body; a DecisionMade of the earlier map encoding is read as a Decision too."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError:
        try:
            old = _map_decoder.decode(body).decision
        except msgspec.DecodeError:
            raise  # the first error: this is not an old DecisionMade either
        fields = {name: getattr(old, name) for name in old.__struct_fields__}
        return DecisionMade(Decision(**fields))


encode_record = _encoder.encode
decode_record = _decode


R = TypeVar("R", bound=msgspec.Struct)


def read_record(entry: Entry) -> Record:
    """Decode a journaled entry's body; an entry this version can't read is a typed error.

    The body must decode, and be of the kind the entry's `kind` column names.
    """
    try:
        record = _decode(entry.body)
    except (msgspec.DecodeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        msg = (
            f"the entry at seq {entry.seq} (kind {entry.kind!r}) can't be read by this version "
            f"({why}); if a newer Adaptive Runtime wrote it, upgrade, else it was damaged"
        )
        raise JournalCorruptError(msg, seq=entry.seq) from None
    if type(record).__name__ != entry.kind:
        msg = (
            f"the entry at seq {entry.seq} says it is a {entry.kind} but holds a "
            f"{type(record).__name__}: the journal was damaged or forged there"
        )
        raise JournalCorruptError(msg, seq=entry.seq)
    return record


_PLAIN = frozenset({str, int, float, bool, type(None)})


def named(value: object) -> Any:
    """Builtins for JSON, with every struct as an object of named fields (array-like ones too)."""
    if type(value) in _PLAIN:
        return value  # most of a record: a string or a number, already a builtin
    if isinstance(value, msgspec.Struct):
        return {name: named(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {key: named(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [named(item) for item in value]
    return msgspec.to_builtins(value)


def read_as(entry: Entry, kind: type[R]) -> R:
    """Decode an entry that must be of one kind; anything else is a JournalCorruptError."""
    record = read_record(entry)
    if not isinstance(record, kind):
        msg = f"the entry at seq {entry.seq} should be a {kind.__name__}, not a {entry.kind}"
        raise JournalCorruptError(msg, seq=entry.seq)
    return record


def encode_checked(record: Record) -> bytes:
    """Encode a record, refusing one that would not read back as written.

    The guard at the journal's door: a hand-built struct with a field of the wrong type,
    a NaN, or an unencodable value is refused here, before any commit, so that no entry
    can ever be journaled that a reader can't decode.
    """
    kind = type(record).__name__
    try:
        body = _encoder.encode(record)
        back = _decoder.decode(body)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError) as exc:
        msg = f"this {kind} can't be journaled: {type(exc).__name__}: {exc}"
        raise InvalidEventError(msg, field=kind) from None
    if back != record:
        msg = (
            f"this {kind} would not read back as written (a field of the wrong type, or a NaN); "
            "nothing was journaled"
        )
        raise InvalidEventError(msg, field=kind)
    return body


HOST_STREAM = "~host"
"""The stream of the host's own records: the operators' controls (silences, approval
answers...), its fleet policy, its plugins. Agent ids may not start with '~'."""


class RuntimeBatch(list[Pending]):
    """A batch the runtime built itself, which the journal's check_batch takes as checked.

    Everything check_batch looks at was checked on its way in: the stream is an agent id
    (check_agent_id) or the host's stream, each kind a record's class name, each ts_ns a
    checked clock's reading, the one event id a parsed event's (or an outcome_key's),
    each body encoded by to_pending. Built anywhere else, a batch is a plain list and is
    checked in full.

    `controls_seen` is the `~host` stream_seq the host's operator controls had read when
    the batch's action was planned (a silence holds it, an approval policy gates it), or
    None for a batch that planned none. The journal refuses the batch if `~host` has
    moved past it (journal._chain.check_controls_view): a silence set by another process
    a moment before would not have held the action. Its host reads the controls again and
    decides it again.
    """

    __slots__ = ("controls_seen",)

    def __init__(self, pending: Iterable[Pending] = (), controls_seen: int | None = None) -> None:
        super().__init__(pending)
        self.controls_seen = controls_seen


class FleetBatch(RuntimeBatch):
    """A batch whose decision went through the fleet gate, built like a RuntimeBatch.

    The gate reads a view that spans every agent's stream: it counts each fleet batch
    queued before this one. So this batch was built on those as surely as on its own
    stream's head, and it must not be journaled after one of them was refused: in one
    append, a FleetBatch behind a refused FleetBatch is refused too (StreamConflictError),
    and its agent decides it again from what was journaled.

    `view_seq` is the journal seq the host's fleet view was last caught up to: the
    journal refuses the batch if another writer journaled a fleet entry after it
    (journal._chain.check_fleet_view).
    """

    __slots__ = ("view_seq",)

    def __init__(
        self,
        pending: Iterable[Pending] = (),
        view_seq: int | None = None,
        controls_seen: int | None = None,
    ) -> None:
        super().__init__(pending, controls_seen)
        self.view_seq = view_seq


def to_pending(stream: str, record: Record, ts_ns: int, event_id: str | None = None) -> Pending:
    """Wrap a record as a journal entry of its own kind (checked by encode_checked)."""
    return Pending(
        stream=stream,
        kind=type(record).__name__,
        ts_ns=ts_ns,
        body=encode_checked(record),
        event_id=event_id,
    )
