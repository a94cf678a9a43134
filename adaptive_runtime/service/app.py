"""The HTTP API over a Host: events in, decisions, explanations, state and a live feed out.

Every route is a thin face on the library: events go to `Host.process`, reads to the
projections the command line uses, errors through the one table in `outcomes`, as
RFC 9457 problem details. Handlers run on the event loop; journal reads run where the
host's journal calls run (its own thread), after the appends queued before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import HttpMethod, Litestar, MediaType, Request, Response, get, post, route
from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader
from litestar.enums import ParamType, RequestEncodingType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import (
    BodyKwarg,
    FromPath,
    FromQuery,
    JSONBody,
    ParameterKwarg,
    PathParameter,
    QueryParameter,
)
from litestar.response import ServerSentEvent, ServerSentEventMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .._text import is_age, parse_time, seq_or_time
from ..engines.silences import new_silence
from ..errors import (
    AdaptiveRuntimeError,
    AgentOwnedElsewhere,
    AlreadyAnsweredError,
    DuplicateEventError,
    InvalidEventError,
)
from ..journal.open import hide_passwords
from ..outcomes import outcome_of
from ..projections.audit import (
    Explanation,
    HistoryItem,
    decision_at,
    explain,
    history,
    stats,
)
from ..projections.audit import agents as agent_summaries
from ..projections.fleet import HOST_STREAM
from ..projections.rebuild import state_at
from ..receivers import (
    alertmanager_alerts,
    binary_cloudevent,
    cloudevent_to_event,
    firing_event,
    resolved_event_id,
)
from ..records import (
    Decision,
    Entry,
    FleetIncident,
    SilenceMatcher,
    SilenceSet,
    named,
    read_as,
)
from ..runtime.host import Host
from .auth import Tokens
from .feed import Feed
from .page import EVERY_RESPONSE, dashboard_page
from .telemetry import Telemetry
from .views import (
    AgentView,
    AlertResult,
    AlertsReceived,
    ApprovalIn,
    ApprovalView,
    AskedBy,
    BatchResult,
    DecisionPage,
    DecisionView,
    IncidentView,
    OutcomeIn,
    OutcomeView,
    Problem,
    SilenceIn,
    SilenceView,
    decision_view,
    history_view,
)

__all__ = ["ServiceConfig", "create_app"]

T = TypeVar("T")

log = logging.getLogger("adaptive_runtime.service")

PROBLEM_JSON = "application/problem+json"
MAX_BATCH = 1000
MAX_PAGE = 500
MAX_SEQ = 2**63 - 1
RETRY_AFTER_SECONDS = "5"
"""How long a sender told to come again (503) is asked to wait."""


class ServiceConfig(msgspec.Struct, kw_only=True):
    """How the HTTP service behaves (the command line's `serve` options)."""

    tokens: Tokens = msgspec.field(default_factory=Tokens)
    insecure_no_auth: bool = False
    """Accept every request without a token (the server says so loudly at start)."""
    max_body_bytes: int = 1_048_576
    feed_poll: float = 1.0
    """Seconds between the live feed's looks at the journal when no commit of this host woke it."""
    on_stop: Literal["wait", "interrupt"] = "wait"
    """At shutdown, let running actions finish ("wait") or interrupt them to resume at the next start."""
    notify_urls: tuple[str, ...] = ()
    """Apprise URLs to notify people through (the notify extra); none: no notifications."""
    notify_priority: str = "high"
    """Decisions at this priority or above are notified."""
    manage_host: bool = True
    """Start the host at the app's startup and stop it at its shutdown (False: the caller does,
    on the loop that serves the requests; a test client runs the lifespan on a loop of its own)."""


_NUMBER = {"type": "number", "minimum": 0}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "An operational event: `type` and the numeric fields are known; any other key is kept"
        " as an attribute (strings, numbers, booleans, null, and lists or objects of them)."
        " Numbers past a field's limit are clamped to it."
    ),
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "minLength": 1, "maxLength": 64, "examples": ["cpu_spike"]},
        "severity": _NUMBER | {"description": "0 to 1"},
        "cpu": _NUMBER | {"description": "percent"},
        "memory": _NUMBER | {"description": "percent"},
        "error_rate": _NUMBER | {"description": "0 to 1"},
        "latency_ms": _NUMBER,
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "makes a retry idempotent",
        },
        "agent_id": {"type": "string", "minLength": 1, "maxLength": 256},
    },
    "additionalProperties": True,
}


StateAt = Annotated[
    str | None,
    QueryParameter(
        description="a seq (an integer below 10^12, as `state --at` reads it), or a time:"
        " ISO 8601, Unix seconds with a fraction (1764000030.0), or an age such as 30m"
    ),
]

EventsBody = Annotated[
    dict[str, Any] | list[dict[str, Any]],
    BodyKwarg(
        media_type=RequestEncodingType.JSON,
        schema_extra={
            "oneOf": [EVENT_SCHEMA, {"type": "array", "items": EVENT_SCHEMA, "maxItems": MAX_BATCH}]
        },
    ),
]


class _Request(Request[Any, Any, Any]):
    """A request whose JSON body, nested past what the decoder can follow, is the sender's
    error (400), not the server's: msgspec raises RecursionError, not a DecodeError."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException("the JSON body is nested too deeply to read") from None
        except UnicodeDecodeError as exc:  # was Python's "'utf-8' codec can't decode byte..."
            bad = exc.object[exc.start : exc.end].hex(" ")
            msg = (
                f"the JSON body is not UTF-8 text: it holds the byte(s) {bad} (hex), which"
                " UTF-8 does not allow there; send JSON encoded as UTF-8"
            )
            raise ClientException(msg) from None


PROBE = [HttpMethod.GET, HttpMethod.HEAD]


def _responses(*statuses: int) -> dict[int, ResponseSpec]:
    descriptions = {
        400: "The request is malformed",
        401: "No token, or a token this server does not know",
        403: "The token lacks the scope this route needs",
        404: "Nothing is journaled there",
        409: (
            "An event's or an outcome's id reused with another body, an agent another host"
            " owns, or an approval answered already"
        ),
        413: "The request body is too large",
        422: (
            "What was sent is invalid (an event, an outcome, a stream's position);"
            " `field` names what to fix"
        ),
        503: (
            "The journal can't be used now; or, to the Alertmanager receiver, an alert is"
            " for an agent another host owns (Retry-After): send the payload again"
        ),
    }
    return {
        status: ResponseSpec(
            data_container=Problem, description=descriptions[status], media_type=PROBLEM_JSON
        )
        for status in statuses
    }


READ = _responses(400, 401, 403, 503)
WRITE = _responses(400, 401, 403, 409, 413, 422, 503)


def create_app(host: Host, config: ServiceConfig | None = None) -> Litestar:
    """The ASGI application serving `host`; it starts the host at startup and stops it at shutdown."""
    config = config or ServiceConfig()
    telemetry = Telemetry(host)
    feed = Feed(host, poll=config.feed_poll)
    notifier = None
    if config.notify_urls:
        from ..notify import Notifier, NotifyPolicy

        policy = NotifyPolicy(min_priority=config.notify_priority)
        notifier = Notifier(host, list(config.notify_urls), policy)
    secrets = config.tokens.secrets
    resolved_lock = asyncio.Lock()

    def guard(scope: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
        def check(
            connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
        ) -> None:
            if not config.insecure_no_auth:  # who may ask, before what was asked
                granted = config.tokens.scopes_of(connection.headers.get("authorization"))
                if granted is None:
                    raise NotAuthorizedException(
                        "send 'Authorization: Bearer <token>' with a token this server knows"
                    )
                if scope not in granted:
                    raise PermissionDeniedException(
                        f"this route needs a token with the {scope!r} scope"
                    )
            _check_query_parameters(connection, route_handler)

        return check

    read, write = [guard("read")], [guard("write")]

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        """A read that is part of a write: after the appends queued before it."""
        worker = await host.when_ready()
        return await worker.run(fn, worker.journal, *args)

    # A route that only reads goes through host.read: off the appends' way (see Host.read).

    # -- events in -------------------------------------------------------------------

    @post(
        "/v1/events",
        guards=write,
        status_code=200,
        responses=WRITE,
        summary="Decide about one event, or a batch",
        description=(
            "One event (an object with at least `type`) returns its decision. A list returns"
            " one result per event, in order: a decision, or the problem that event alone met."
            " Each event goes to the agent its `agent_id` names (else the default agent). An"
            " event with an `id` that was decided before returns the recorded decision and"
            " journals nothing; the same id with another body is a 409."
        ),
    )
    async def post_events(
        data: EventsBody,
    ) -> DecisionView | list[BatchResult]:
        started = time.perf_counter()
        if isinstance(data, list):
            if len(data) > MAX_BATCH:
                msg = f"a batch may hold at most {MAX_BATCH} events, not {len(data)}; send it in parts"
                raise InvalidEventError(msg, field="body")
            results = await host.process_many(data)
            telemetry.process_seconds.labels("events").observe(time.perf_counter() - started)
            return [
                _batch_result(result, _agent_of(host, event), secrets)
                for result, event in zip(results, data, strict=True)
            ]
        decision = await host.process(data)
        telemetry.process_seconds.labels("events").observe(time.perf_counter() - started)
        return decision_view(decision, host.route(data))

    @post(
        "/v1/outcomes",
        guards=write,
        status_code=201,
        responses=WRITE | _responses(404),
        summary="Record how a decision turned out",
    )
    async def post_outcome(data: JSONBody[OutcomeIn]) -> OutcomeView:
        item = await run(decision_at, data.seq)
        if item is None or item.stream == HOST_STREAM:
            raise LookupError(f"no decision is journaled at seq {data.seq}")
        recorded = await host.agent(item.stream).record_outcome(
            item.decision, success=data.success, id=data.id
        )
        return OutcomeView(
            decision_seq=data.seq, agent=item.stream, success=data.success, recorded=recorded
        )

    @post(
        "/v1/receivers/alertmanager",
        guards=write,
        status_code=200,
        responses=WRITE,
        summary="Prometheus Alertmanager's webhook (payload version 4)",
        description=(
            "Each firing alert becomes an event (see `adaptive_runtime.receivers` for the"
            " mapping); its id is the alert's fingerprint and startsAt, so re-sends are decided"
            " once. A resolved alert records a successful outcome of the decision its firing got,"
            " once; it never triggers an action. An alert that can't be decided (an agent"
            " label no agent may have, a cpu label that is not a number...) is `refused`, with"
            " its problem, and the others are decided: Alertmanager does not re-send a payload"
            " answered with a 4xx, so one bad alert would lose the rest. An alert for an agent"
            " another host owns makes the payload a 503 (with Retry-After), once the others"
            " are decided: Alertmanager sends it again, and those are answered from the"
            " journal."
        ),
    )
    async def alertmanager(data: JSONBody[dict[str, Any]]) -> AlertsReceived:
        telemetry.requests.labels("alertmanager").inc()
        alerts = alertmanager_alerts(data)
        results: list[AlertResult] = []
        owned_elsewhere: list[str] = []
        started = time.perf_counter()
        for alert in alerts:
            try:
                if alert.status == "firing":
                    results.append(await _fire(firing_event(alert)))
                else:
                    async with resolved_lock:
                        results.append(await _resolve(resolved_event_id(alert)))
            except AdaptiveRuntimeError as exc:
                problem = _problem_of(exc, secrets)
                if problem.status >= 500:  # the server's trouble: fail the payload, to be re-sent
                    raise
                if isinstance(exc, AgentOwnedElsewhere):
                    owned_elsewhere.append(f"{resolved_event_id(alert)!r}: {problem.detail}")
                    continue
                log.warning("alert %r refused: %s", resolved_event_id(alert), problem.detail)
                results.append(
                    AlertResult(id=resolved_event_id(alert), status="refused", problem=problem)
                )
        telemetry.process_seconds.labels("alertmanager").observe(time.perf_counter() - started)
        if owned_elsewhere:
            raise _sent_to_a_host_that_does_not_own(owned_elsewhere, len(alerts))
        return AlertsReceived(results=results)

    async def _fire(event: dict[str, Any]) -> AlertResult:
        from ..projections.audit import decision_for_event

        try:
            decision = await host.process(event)
        except (DuplicateEventError, AgentOwnedElsewhere) as exc:
            # the same firing, with annotations that moved since; or one sent again to a
            # host that does not own its agent, which answers from the journal if it can
            item = await run(decision_for_event, event["id"])
            if item is None and isinstance(exc, AgentOwnedElsewhere):
                raise  # for the host that owns the agent to decide
            return AlertResult(
                id=event["id"],
                status="already_decided",
                seq=None if item is None else item.seq,
                action=None if item is None else item.decision.action,
            )
        return AlertResult(
            id=event["id"], status="decided", seq=decision.seq, action=decision.action
        )

    async def _resolve(event_id: str) -> AlertResult:
        from ..projections.audit import decision_for_event

        item = await run(decision_for_event, event_id)
        if item is None:
            return AlertResult(id=event_id, status="unknown_alert")
        fingerprint = item.event.attrs.get("fingerprint")
        episode = fingerprint if isinstance(fingerprint, str) and fingerprint else None
        try:
            if episode is not None:  # the next firing is a new episode
                await host.agent(item.stream).close_episode(episode, reason="resolved")
            return await _resolved(event_id, item, await run(explain, item.seq))
        except AgentOwnedElsewhere:
            # What the resolution asks (to close the episode, record the outcome, drop
            # what a silence owes) is the owning host's to journal; once it has (the
            # payload sent again), any host answers from the journal.
            if episode is not None and await host.episode_open_now(item.stream, episode):
                raise
            explained = await run(explain, item.seq)
            if not explained.outcomes and not explained.never_acted:
                raise  # its outcome is to be recorded
            return await _resolved(event_id, item, explained)

    async def _resolved(event_id: str, item: HistoryItem, explained: Explanation) -> AlertResult:
        """A resolution's answer, the episode closed: the outcome recorded, or why not."""
        if explained.outcomes:
            return AlertResult(id=event_id, status="already_resolved", seq=item.seq)
        if explained.never_acted:  # it cleared on its own: no evidence that the action works
            kinds = {a.kind for a in explained.attempts}
            if "ActionAwaitingApproval" in kinds and "ApprovalDecided" not in kinds:
                # a yes given later would act on trouble that is over: the request is denied
                with contextlib.suppress(AlreadyAnsweredError, LookupError):
                    await host.controls.answer(
                        item.seq,
                        approve=False,
                        by="alertmanager",
                        comment="its alert resolved before anyone answered",
                    )
            # nor does a silence that asked to run what it skipped, once it ends
            await host.controls.alert_resolved(item.stream, item.seq)
            return AlertResult(
                id=event_id, status="not_acted", seq=item.seq, action=item.decision.action
            )
        await host.agent(item.stream).record_outcome(item.decision, success=True)
        return AlertResult(
            id=event_id, status="resolved", seq=item.seq, action=item.decision.action
        )

    @post(
        "/v1/receivers/cloudevents",
        guards=write,
        status_code=200,
        responses=WRITE,
        summary="A CloudEvent 1.0, in structured JSON mode or binary mode; or a batch",
        description=(
            "Structured: the body is the CloudEvent, `data` holding the event's fields."
            " Binary (a `ce-specversion` header): the attributes are `ce-*` headers and the"
            " body, JSON, is the event's fields. The id is the CloudEvent's source and id."
            " Batched (`Content-Type: application/cloudevents-batch+json`): the body is a"
            " list of structured CloudEvents, answered with one result each, in order, as"
            " a list sent to /v1/events is."
        ),
    )
    async def cloudevents(
        data: JSONBody[dict[str, Any] | list[Any]], request: Request[Any, Any, Any]
    ) -> DecisionView | list[BatchResult]:
        telemetry.requests.labels("cloudevents").inc()
        if _content_type(request.headers) == CE_BATCH:
            return await cloudevent_batch(data)
        if isinstance(data, list):
            msg = (
                f"a list of CloudEvents is a batch: send it as Content-Type {CE_BATCH}, or"
                " send each CloudEvent in a request of its own"
            )
            raise InvalidEventError(msg, field="body")
        event = cloudevent_to_event(_cloudevent_of(request.headers, data))
        started = time.perf_counter()
        decision = await host.process(event)
        telemetry.process_seconds.labels("cloudevents").observe(time.perf_counter() - started)
        return decision_view(decision, host.route(event))

    async def cloudevent_batch(data: object) -> list[BatchResult]:
        """Batched mode: each CloudEvent decided, or refused alone, as /v1/events does."""
        if not isinstance(data, list):
            msg = f"a {CE_BATCH} body is a JSON list of CloudEvents, not an object"
            raise InvalidEventError(msg, field="body")
        if len(data) > MAX_BATCH:
            msg = f"a batch may hold at most {MAX_BATCH} events, not {len(data)}; send it in parts"
            raise InvalidEventError(msg, field="body")
        events: list[dict[str, Any] | InvalidEventError] = []
        for item in data:
            try:
                events.append(cloudevent_to_event(item))
            except InvalidEventError as exc:
                events.append(exc)
        started = time.perf_counter()
        taken = [e for e in events if not isinstance(e, InvalidEventError)]
        decided = iter(await host.process_many(taken) if taken else [])
        telemetry.process_seconds.labels("cloudevents").observe(time.perf_counter() - started)
        return [
            _batch_result(e, None, secrets)
            if isinstance(e, InvalidEventError)
            else _batch_result(next(decided), _agent_of(host, e), secrets)
            for e in events
        ]

    # -- silences --------------------------------------------------------------------

    def silence_view(s: SilenceSet, now: int) -> SilenceView:
        m = s.matcher
        state = "to_come" if now < s.starts_ns else "in_force" if now < s.ends_ns else "ended"
        return SilenceView(
            id=s.id,
            agent=m.agent,
            target=m.target,
            event_type=m.event_type,
            context=m.context,
            starts_ns=s.starts_ns,
            ends_ns=s.ends_ns,
            comment=s.comment,
            by=s.by,
            fire_after=s.fire_after,
            state=state,
        )

    @get(
        "/v1/silences",
        guards=read,
        responses=READ,
        summary=(
            "Silences and maintenance windows in force or to come (`all`: those past their end"
            " too; one ended early is gone)"
        ),
    )
    async def list_silences(all: FromQuery[bool] = False) -> list[SilenceView]:
        await host.controls.refresh()
        now = host.clock.now_ns()
        return [silence_view(s, now) for s in host.controls.state.silences.listed(now, ended=all)]

    @post(
        "/v1/silences",
        guards=write,
        status_code=201,
        responses=WRITE,
        summary="Set a silence: matching decisions are made and journaled, their actions skipped",
    )
    async def add_silence(data: JSONBody[SilenceIn]) -> SilenceView:
        now = host.clock.now_ns()
        if data.starts is not None and is_age(data.starts):
            # that long ago: no earlier decision is silenced, and it would end no later
            msg = (
                f"starts {data.starts!r} reads as an age, a time that long ago; a silence from"
                " now needs no starts, and one that starts later needs the time it starts"
                " (ISO 8601 or Unix seconds)"
            )
            raise InvalidEventError(msg, field="starts")
        starts = _time_field("starts", data.starts, now) if data.starts is not None else now
        ends = _time_field("ends", data.ends, now)
        if ends <= now:
            msg = "that silence would already be over"
            if is_age(data.ends):
                msg = (
                    f"ends {data.ends!r} reads as an age, a time that long ago, so that silence"
                    " would already be over; give the time it ends (ISO 8601 or Unix seconds)"
                )
            raise InvalidEventError(msg, field="ends")
        matcher = SilenceMatcher(
            agent=data.agent, target=data.target, event_type=data.event_type, context=data.context
        )
        silence = new_silence(
            matcher,
            starts_ns=starts,
            ends_ns=ends,
            comment=data.comment,
            by=data.by,
            fire_after=data.fire_after,
        )
        notes = await host.controls.set_silence(silence)
        view = silence_view(silence, now)
        if notes:  # set all the same: one may be set before its agent first decides
            view.note = (
                f"silence {silence.id} is set, but " + "; and ".join(notes) + ". If you meant"
                f" another, end it (POST /v1/silences/{silence.id}/end) and set it again"
            )
        return view

    @post(
        "/v1/silences/{silence_id:str}/end",
        guards=write,
        status_code=200,
        responses=WRITE | _responses(404),
        summary="End a silence now",
    )
    async def end_silence(silence_id: FromPath[str], data: JSONBody[AskedBy]) -> dict[str, str]:
        # a silence ended before answers as ended, by whoever ended it: a retry is no 404
        return {
            "id": silence_id,
            "ended_by": await host.controls.end_silence(silence_id, by=data.by),
        }

    # -- approvals and dead letters --------------------------------------------------

    approve = [guard("approve")]

    @get("/v1/approvals", guards=read, responses=READ, summary="Actions waiting for approval")
    async def list_approvals() -> list[ApprovalView]:
        return [
            ApprovalView(
                decision_seq=p.decision_seq,
                agent=p.agent,
                action=p.action,
                reason=p.reason,
                requested_ns=p.requested_ns,
                expires_ns=p.expires_ns,
            )
            for p in await host.controls.waiting()
        ]

    @post(
        "/v1/approvals/{seq:int}",
        guards=approve,
        status_code=200,
        responses=WRITE | _responses(404),
        summary="Approve or deny a pending action (a token with the approve scope)",
    )
    async def answer_approval(
        seq: Annotated[int, PathParameter(ge=1, le=MAX_SEQ)], data: JSONBody[ApprovalIn]
    ) -> dict[str, Any]:
        await host.controls.answer(seq, approve=data.approve, by=data.by, comment=data.comment)
        return {"decision_seq": seq, "approved": data.approve, "by": data.by}

    @get(
        "/v1/dead-letters",
        guards=read,
        responses=READ,
        summary="Actions abandoned after their attempts",
    )
    async def list_dead_letters() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = named(await host.controls.dead_letters())
        return out

    @post(
        "/v1/dead-letters/{seq:int}/retry",
        guards=write,
        status_code=200,
        responses=WRITE | _responses(404),
        summary="Run a dead letter's action again",
    )
    async def retry_dead_letter(
        seq: Annotated[int, PathParameter(ge=1, le=MAX_SEQ)], data: JSONBody[AskedBy]
    ) -> dict[str, Any]:
        await host.controls.retry(seq, by=data.by)
        return {"decision_seq": seq, "retried_by": data.by}

    @post(
        "/v1/dead-letters/{seq:int}/dismiss",
        guards=write,
        status_code=200,
        responses=WRITE | _responses(404),
        summary="Take a dead letter off the list",
    )
    async def dismiss_dead_letter(
        seq: Annotated[int, PathParameter(ge=1, le=MAX_SEQ)], data: JSONBody[AskedBy]
    ) -> dict[str, Any]:
        await host.controls.dismiss(seq, by=data.by)
        return {"decision_seq": seq, "dismissed_by": data.by}

    # -- reads -----------------------------------------------------------------------

    @get(
        "/v1/decisions",
        guards=read,
        responses=READ | _responses(404),
        summary="Decisions, newest first",
    )
    async def decisions(
        agent: FromQuery[str | None] = None,
        event_type: Annotated[str | None, QueryParameter(name="type")] = None,
        action: FromQuery[str | None] = None,
        priority: FromQuery[Literal["low", "normal", "high", "critical"] | None] = None,
        since: Annotated[
            str | None,
            QueryParameter(description="ISO 8601, Unix seconds, or an age such as 30m"),
        ] = None,
        until: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
        before: Annotated[
            int | None,
            QueryParameter(ge=1, le=MAX_SEQ, description="a cursor: the `next` of the page before"),
        ] = None,
    ) -> DecisionPage:
        now = host.clock.now_ns()  # an age counts back from the host's clock
        since_ns = _time_query("since", since, parse_time, now)
        until_ns = _time_query("until", until, parse_time, now)
        if since_ns is not None and until_ns is not None and since_ns > until_ns:
            # an age counts back: since=30m&until=2h is an empty span, as history refuses it
            why = (
                f"since {since} is after until {until}: no decision can fall between them (an"
                " age such as 2h is that long ago)"
            )
            raise _bad_query("since", why)

        def page(journal: Any) -> list[Any]:
            _check_agent(journal, agent)
            return list(
                history(
                    journal,
                    agent=agent,
                    event_type=event_type,
                    action=action,
                    priority=priority,
                    since_ns=since_ns,
                    until_ns=until_ns,
                    limit=limit + 1,  # one more than the page: whether another page follows
                    before=before,
                )
            )

        items = await host.read(page)
        views = [history_view(item) for item in items[:limit]]
        # a full page whose decisions were the last ones gave a `next` to an empty page
        return DecisionPage(items=views, next=views[-1].seq if len(items) > limit else None)

    @get(
        "/v1/decisions/{seq:int}",
        guards=read,
        responses=READ | _responses(404),
        summary="Why a decision came out as it did, and what became of it",
    )
    async def decision(seq: Annotated[int, PathParameter(ge=1, le=MAX_SEQ)]) -> dict[str, Any]:
        explained = await host.read(explain, seq)
        out: dict[str, Any] = named(explained)
        return out

    @get(
        "/v1/stats",
        guards=read,
        responses=READ | _responses(404),
        summary="Decision counts, and calibration: success rate per confidence band, ECE, Brier",
    )
    async def statistics(agent: FromQuery[str | None] = None) -> dict[str, Any]:
        def counted(journal: Any) -> Any:
            _check_agent(journal, agent)
            return stats(journal, agent=agent)

        out: dict[str, Any] = named(await host.read(counted))
        return out

    @get("/v1/agents", guards=read, responses=READ, summary="Every agent, at a glance")
    async def list_agents() -> list[AgentView]:
        summaries = await host.read(agent_summaries)
        return [
            AgentView(
                agent=s.agent,
                entries=s.entries,
                events=s.events,
                decisions=s.decisions,
                open_actions=s.open_actions,
                loaded=host.loaded(s.agent) is not None,
                last_action=None if s.last_decision is None else s.last_decision.action,
                last_decision_seq=None if s.last_decision is None else s.last_decision.seq,
            )
            for s in summaries
        ]

    @get(
        "/v1/agents/{agent_id:str}/state",
        guards=read,
        responses=READ | _responses(404),
        summary="An agent's state, now or as it was at a seq or a time",
    )
    async def agent_state(agent_id: FromPath[str], at: StateAt = None) -> dict[str, Any]:
        return await state_of(agent_id, at)

    @get(
        "/v1/agents/state",
        guards=read,
        responses=READ | _responses(404),
        summary="An agent's state, by an id that a path can't hold (one with a '/')",
    )
    async def named_agent_state(
        agent: Annotated[str, QueryParameter(description="the agent's id")], at: StateAt = None
    ) -> dict[str, Any]:
        return await state_of(agent, at)

    async def state_of(agent_id: str, at: str | None) -> dict[str, Any]:
        # as `state --at` reads it, an age counting back from the host's clock
        when = _time_query("at", at, seq_or_time, host.clock.now_ns()) or {"seq": 2**62}

        def read_state(journal: Any) -> Any:
            _check_agent(journal, agent_id)
            return state_at(journal, agent_id, **when)

        state = await host.read(read_state)
        out: dict[str, Any] = named(state)
        out["agent"] = agent_id
        return out

    @get("/v1/incidents", guards=read, responses=READ, summary="Fleet incidents, newest first")
    async def incidents(
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
    ) -> list[IncidentView]:
        def read_incidents(journal: Any) -> list[Entry]:
            return list(journal.latest(limit, kind="FleetIncident"))

        entries: list[Entry] = await host.read(read_incidents)
        view = host.fleet
        now = host.clock.now_ns()
        out = []
        for entry in entries:
            incident = read_as(entry, FleetIncident)
            last = None if view is None else view.incidents.get(incident.context)
            window = 0 if view is None else round(view.policy.correlate_window * 1e9)
            out.append(
                IncidentView(
                    seq=entry.seq,
                    ts_ns=entry.ts_ns,
                    agent=entry.stream,
                    context=incident.context,
                    agents=list(incident.agents),
                    rule=incident.rule,
                    open=last is not None and last >= now - window and last >= entry.ts_ns,
                )
            )
        return out

    @get(
        "/v1/stream",
        guards=read,
        responses=_responses(400, 401, 403, 422, 503),
        media_type="text/event-stream",
        summary=(
            "Server-Sent Events: decisions, actions, outcomes, incidents and operators'"
            " requests as they commit"
        ),
        description=(
            "Each message's id is its journal seq. Reconnect with `Last-Event-ID` (or `after`;"
            " given both, the later counts) to get everything after it, with nothing missed or"
            " repeated. With neither, the stream starts at the journal's head. `follow=false`"
            " ends it once caught up. A following stream waits out a journal server that"
            " restarts; a stream that can't go on ends with a `problem` event whose data is"
            " the problem (RFC 9457 JSON)."
        ),
    )
    async def stream(
        request: Request[Any, Any, Any],
        after: Annotated[int | None, QueryParameter(ge=0, le=MAX_SEQ)] = None,
        follow: FromQuery[bool] = True,
    ) -> ServerSentEvent:
        given: dict[str, int] = {} if after is None else {"after": after}
        last = request.headers.get("last-event-id")
        if last is not None:
            text = last.strip()  # ASCII digits only: isdigit() takes '²', which int() refuses
            if not (text.isascii() and text.isdigit()) or int(text) > MAX_SEQ:
                raise InvalidEventError(
                    f"Last-Event-ID must be a seq (digits, at most {MAX_SEQ})",
                    field="Last-Event-ID",
                )
            given["Last-Event-ID"] = int(text)
        head = await feed.head() if not given or max(given.values()) > 0 else 0
        for field, seq in given.items():
            if seq > head:
                # a seq of another journal, or of this one before it was restored from a
                # backup: followed from there, every entry up to it would be left out
                raise InvalidEventError(
                    f"{field} {seq} is past the journal's head (seq {head}): it is from another"
                    " journal, or from this one before it was restored. Reconnect without it to"
                    " follow from the head",
                    field=field,
                )
        # an EventSource reconnects to the URL it was given, `?after=` and all, and sends
        # the id of the last message it got: the later of the two is where it stands
        position = max(given.values()) if given else head

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            last = position
            try:
                async for seq, name, data in feed.stream(position, follow=follow):
                    if not seq:
                        yield ServerSentEventMessage(comment="keep-alive")
                    else:
                        last = seq
                        yield ServerSentEventMessage(id=seq, event=name, data=data)
            except AdaptiveRuntimeError as exc:
                # the status line is sent: the stream ends with a message saying why instead
                problem = _problem_of(exc, secrets)
                log.warning("a live stream ended after seq %s: %s", last, problem.detail)
                yield ServerSentEventMessage(
                    event="problem", data=msgspec.json.encode(problem).decode()
                )

        return ServerSentEvent(messages())

    # -- operations ------------------------------------------------------------------

    # GET and HEAD: a probe may ask either (HTTP says a server that takes GET takes HEAD)
    @route("/healthz", http_method=PROBE, summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @route("/readyz", http_method=PROBE, summary="The journal answers", responses=_responses(503))
    async def readyz() -> dict[str, Any]:
        if not host.started:
            from ..errors import RuntimeNotStartedError

            raise RuntimeNotStartedError("the host is starting or stopping")
        worker = host.require_worker()
        head = await worker.run(worker.journal.head)
        return {"status": "ready", "seq": head.seq}

    @get(
        "/metrics",
        guards=read,
        summary="Prometheus metrics",
        media_type=CONTENT_TYPE_LATEST,
        responses=_responses(401, 403, 503),
    )
    async def metrics() -> Response[bytes]:
        telemetry.journal_entries = await feed.head()
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @get("/openapi.json", include_in_schema=False)
    async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = request.app.openapi_schema.to_schema()
        return schema

    @get("/", media_type=MediaType.HTML, include_in_schema=False)
    async def dashboard() -> Response[str]:
        page = dashboard_page()
        return Response(page.html, media_type=MediaType.HTML, headers=page.headers)

    # -- errors ----------------------------------------------------------------------

    def problem(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, HTTPException):
            status, title = exc.status_code, _phrase(exc.status_code)
            detail = exc.detail if exc.detail != title else None
            if detail is not None:
                detail = _JSON_ERRORS.get(detail, detail)
            field = None
            if isinstance(exc, ValidationException):
                detail, field = _what_failed(exc)
            elif status == 413:  # the framework's words named no limit, nor what to do
                detail = (
                    f"the request body is past this server's limit of {config.max_body_bytes:,}"
                    " bytes (serve --max-body): send a smaller event, or a batch in parts"
                )
            elif status == 404 and detail == "Not Found":  # no route: the title's words again
                detail = (
                    f"no route {request.method} {request.url.path}; GET /openapi.json lists"
                    " the routes"
                )
            elif status == 405:  # the methods the route takes, from the Allow header
                allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow")
                if allowed:
                    detail = f"{request.url.path} takes {allowed}, not {request.method}"
        else:
            outcome = outcome_of(exc)
            if outcome is None or (outcome.http_status >= 500 and outcome.http_status != 503):
                log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
                status, title, detail = 500, "internal error", "the server logged the error"
            else:
                status, title, detail = outcome.http_status, outcome.title, str(exc)
            field = getattr(exc, "field", None)
        body = Problem(
            type=_problem_type(title),
            title=title,
            status=status,
            detail=None if detail is None else scrub(detail, secrets),
            instance=request.url.path,
            field=field,
        )
        headers = dict(EVERY_RESPONSE)
        if isinstance(exc, HTTPException) and exc.headers:
            headers.update(exc.headers)
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)

    async def on_startup() -> None:
        if config.manage_host:
            await host.start()
        host.watch(telemetry.watch)
        if notifier is not None:
            notifier.start()

    async def on_shutdown() -> None:
        feed.close()
        if notifier is not None:
            await notifier.stop()
        if config.manage_host:
            await host.stop(actions=config.on_stop)

    openapi = OpenAPIConfig(
        title="Adaptive Runtime",
        version=__version__,
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="a server token")
            }
        ),
        security=[{"bearer": []}],
    )
    app = Litestar(
        route_handlers=[
            post_events,
            post_outcome,
            alertmanager,
            cloudevents,
            decisions,
            decision,
            statistics,
            list_silences,
            add_silence,
            end_silence,
            list_approvals,
            answer_approval,
            list_dead_letters,
            retry_dead_letter,
            dismiss_dead_letter,
            list_agents,
            agent_state,
            named_agent_state,
            incidents,
            stream,
            healthz,
            readyz,
            metrics,
            openapi_json,
            dashboard,
        ],
        exception_handlers={Exception: problem},
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=openapi,
        request_max_body_size=config.max_body_bytes,
        request_class=_Request,
        response_headers=[ResponseHeader(name=k, value=v) for k, v in EVERY_RESPONSE.items()],
        logging_config=None,  # the library's loggers stay its user's to configure
        debug=False,
    )
    app.state.feed = feed
    app.state.telemetry = telemetry
    return app


def _cloudevent_of(headers: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvent a request carries, in structured form, whichever mode it was sent in.

    The HTTP binding tells the modes apart by Content-Type (`application/cloudevents...`
    is structured, anything else binary); since a structured event sent as plain
    `application/json` was always taken here, a request is binary when it also carries a
    `ce-specversion` header, as the binding suggests a receiver may judge.
    """
    kind = _content_type(headers)
    if kind.startswith("application/cloudevents") or "ce-specversion" not in headers:
        return body
    if kind and kind != "application/json" and not kind.endswith("+json"):
        msg = f"a binary-mode CloudEvent's data must be a JSON object, not {kind}"
        raise InvalidEventError(msg, field="datacontenttype")
    return binary_cloudevent(headers, body)


CE_BATCH = "application/cloudevents-batch+json"
"""The Content-Type of a batch of CloudEvents (the HTTP binding's batched mode)."""


def _content_type(headers: Mapping[str, str]) -> str:
    """The request's media type, in lower case and without parameters."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _agent_of(host: Host, event: object) -> str | None:
    try:
        return host.route(event)
    except InvalidEventError:
        return None


def _batch_result(
    result: Decision | BaseException, agent: str | None, secrets: tuple[str, ...]
) -> BatchResult:
    if isinstance(result, Decision):
        return BatchResult(decision=decision_view(result, agent))
    problem = _problem_of(result, secrets)
    if problem.status == 500:
        log.error("an event of a batch failed", exc_info=result)
    return BatchResult(problem=problem)


def _sent_to_a_host_that_does_not_own(alerts: list[str], sent: int) -> HTTPException:
    """The 503 for an Alertmanager payload with alerts for agents another host owns.

    Alertmanager sends a payload again only after a 5xx (a 2xx is delivered, a 4xx is
    given up): so the alerts reach a host that owns their agent (through a load balancer
    in front of several servers), or this one once their owner lets the agent go. The
    payload's other alerts are journaled already, and answered from the journal then.
    """
    others = sent - len(alerts)
    taken = (
        f"; the other {others} were taken here, and are answered from the journal then"
        if others
        else ""
    )
    detail = (
        f"{len(alerts)} of the {sent} alerts in this payload are for agents another host"
        f" owns: send it again, for that host to take them{taken}. " + "; ".join(alerts)
    )
    log.warning("alertmanager payload answered 503: %s", detail)
    return HTTPException(detail, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _problem_of(exc: BaseException, secrets: tuple[str, ...]) -> Problem:
    """The problem one item of a batch met, told apart from the others' results."""
    outcome = outcome_of(exc)
    status, title = (
        (500, "internal error") if outcome is None else (outcome.http_status, outcome.title)
    )
    detail = "the server logged the error" if outcome is None else scrub(str(exc), secrets)
    return Problem(
        type=_problem_type(title),
        title=title,
        status=status,
        detail=detail,
        field=getattr(exc, "field", None),
    )


# msgspec's words for a body it could not decode, where they would mislead its sender
_JSON_ERRORS = {
    # said of a body cut short, and of a \ud800-\udfff escape with no pair (no Unicode)
    "Input data was truncated": (
        "the JSON body ends before its last value does, or holds a \\ud800-\\udfff escape"
        " without its pair; send complete JSON of valid Unicode"
    ),
}


def _problem_type(title: str) -> str:
    """The problem's type URI, from its title: `urn:adaptive-runtime:problem:not-found`."""
    return f"urn:adaptive-runtime:problem:{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}"


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with passwords in URLs and the server's tokens taken out."""
    text = hide_passwords(text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _time_field(name: str, text: str, now_ns: int) -> int:
    """A body field that holds a time: one that can't be read is that field's 422."""
    try:
        return parse_time(text, now_ns=now_ns)
    except ValueError as exc:
        raise InvalidEventError(f"{name}: {exc}", field=name) from None


def _check_agent(journal: Any, agent: str | None) -> None:
    """A 404 for an agent the journal has no entries of, as the CLI refuses one: a typo
    in `?agent=` is not an agent with nothing to show."""
    if agent is not None and (agent == HOST_STREAM or journal.stream_head(agent) == 0):
        raise LookupError(f"agent {agent!r} has no entries; GET /v1/agents lists the agents")


def _time_query(name: str, text: str | None, read: Callable[..., T], now_ns: int) -> T | None:
    """A query parameter that holds a time, read by `read`; one that can't be read is a
    400 naming that parameter, as the framework's own checks of a parameter are."""
    if text is None:
        return None
    try:
        return read(text, now_ns=now_ns)
    except ValueError as exc:
        raise _bad_query(name, str(exc)) from None


def _bad_query(name: str, message: str) -> ValidationException:
    """A 400 for one query parameter, said as the framework's own checks of one are."""
    return ValidationException(
        "Validation failed", extra=[{"key": name, "message": message, "source": "query"}]
    )


def _query_names(route_handler: BaseRouteHandler) -> dict[str, bool]:
    """The query parameters a route reads, by the names a request sends them under, each
    with whether it takes several values."""
    names = {}
    for name, parameter in route_handler.parsed_fn_signature.parameters.items():
        kwarg = parameter.kwarg_definition
        if isinstance(kwarg, ParameterKwarg) and kwarg.param_type is ParamType.QUERY:
            names[kwarg.name or kwarg.query or name] = parameter.is_non_string_collection
    return names


def _check_query_parameters(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Refuse a query parameter the route doesn't read, or one of a single value given
    twice: a misspelt filter (`?agnet=`) would be dropped, and of `?agent=a&agent=b` the
    last alone kept, and the answer would look filtered as asked when it isn't."""
    known, given = _query_names(route_handler), connection.query_params
    unknown = sorted(set(given) - set(known))
    repeated = sorted(
        n for n in set(given) & set(known) if not known[n] and len(given.getall(n)) > 1
    )
    if not unknown and not repeated:
        return
    takes = f"it reads {', '.join(known)}" if known else "it reads no query parameters"
    url = connection.url.path + (f"?{connection.url.query}" if connection.url.query else "")
    extra = [
        {"key": name, "message": f"this route has no such parameter; {takes}", "source": "query"}
        for name in unknown
    ] + [
        {
            "key": name,
            "message": f"given {len(given.getall(name))} times; it takes one value",
            "source": "query",
        }
        for name in repeated
    ]
    raise ValidationException(
        f"Validation failed for {connection.scope.get('method', 'GET')} {url}", extra=extra
    )


def _what_failed(exc: ValidationException) -> tuple[str, str | None]:
    """A request that failed the framework's validation, said so that its sender can fix
    it: what was wrong with which part (the body, a query parameter...), and that part."""
    found = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    parts: list[str] = []
    for error in found:
        key, message = error.get("key"), str(error.get("message", ""))
        if key == "data":  # the body as a whole
            parts.append("no JSON body" if message == "'data'" else f"the body: {message}")
        else:
            source = error.get("source")  # "body", or a ParamType: query, path, header...
            source = getattr(source, "value", source)
            where = "the body's" if source == "body" else f"{source} parameter"
            parts.append(f"{where} {key!r}: {message}")
    if not parts:
        return exc.detail, None
    key = found[0].get("key") if len(found) == 1 else None
    return f"{exc.detail}: {'; '.join(parts)}", "body" if key == "data" else key


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"
