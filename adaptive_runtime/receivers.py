"""What the monitoring tools people already run send, as the events the runtime decides about.

Pure functions of a payload, with no web framework: the HTTP service's receivers call
them, and so can any other transport. Each raises InvalidEventError naming the field
when a payload is not what its sender documents.

Prometheus Alertmanager's webhook (payload version 4), one event per firing alert:

| event field   | taken from                                                              |
|---------------|-------------------------------------------------------------------------|
| `type`        | the label `event_type` if set, else `alertname` in snake_case           |
|               | (`HighCPU` -> `high_cpu`, `KubePodCrashLooping` -> `kube_pod_crash_looping`) |
| `severity`    | the label or annotation `severity_score` (0 to 1) if set, else the      |
|               | label `severity`: critical 0.9, error or high 0.8, warning 0.6,         |
|               | info 0.3, none 0.1, anything else 0.5                                   |
| `agent_id`    | the label `agent_id`, else `service`, else `job` (else the host's       |
|               | default agent)                                                          |
| `cpu`, `memory`, `error_rate`, `latency_ms` | a label or annotation of that name, as a number |
| `id`          | `am:<fingerprint>:<startsAt>`, startsAt to the millisecond: the re-sends |
|               | of one firing are the same event, decided once (a `%` or `:` in the     |
|               | fingerprint is written `%25`, `%3A`)                                    |
| attributes    | `alertname`, `labels`, `annotations`, `starts_at`, `fingerprint`        |
|               | (the fleet policy's dedup_window keys on it), `generator_url`,          |
|               | `source` = `alertmanager`                                               |

A `resolved` alert is not an event: it is evidence about the decision made when the
same alert (same fingerprint and startsAt) fired, recorded as a successful outcome of
it unless one is recorded already (the HTTP service does this). A resolved alert whose
firing was never decided here records nothing.

CloudEvents 1.0, in structured JSON mode or in binary mode (the attributes in `ce-*`
headers, the data as the body): `data` (an object) holds the event's fields; `type` is
`data.type` if set, else the last dot-separated part of the CloudEvent's `type`
(`com.example.ops.cpu_spike` -> `cpu_spike`); the id is `ce:<source>:<id>` (CloudEvents
says source and id together are unique), with each `%` and `:` of the CloudEvent's id
written `%25` and `%3A`, so that the last `:` ends the source and no two (source, id)
pairs make one id; `agent_id` is `data.agent_id`, else the CloudEvent's `subject`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import msgspec

from .errors import InvalidEventError

__all__ = [
    "AlertmanagerAlert",
    "alertmanager_alerts",
    "binary_cloudevent",
    "cloudevent_to_event",
    "firing_event",
    "resolved_event_id",
]

SEVERITY_NAMES: dict[str, float] = {
    "critical": 0.9,
    "error": 0.8,
    "high": 0.8,
    "warning": 0.6,
    "info": 0.3,
    "none": 0.1,
}
UNKNOWN_SEVERITY = 0.5
AGENT_LABELS = ("agent_id", "service", "job")
NUMBER_FIELDS = ("cpu", "memory", "error_rate", "latency_ms")
MAX_ALERTS = 1000


class AlertmanagerAlert(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One alert of Alertmanager's webhook payload (version 4)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: str
    ends_at: str = ""
    generator_url: str = msgspec.field(default="", name="generatorURL")
    fingerprint: str


class _Webhook(msgspec.Struct, frozen=True, kw_only=True):
    version: str = "4"
    alerts: list[AlertmanagerAlert]


def alertmanager_alerts(payload: object) -> list[AlertmanagerAlert]:
    """The alerts of a webhook payload (the decoded JSON), checked against its documented form."""
    try:
        hook = msgspec.convert(payload, _Webhook)
    except msgspec.ValidationError as exc:
        raise InvalidEventError(
            f"not an Alertmanager webhook payload: {exc}", field=_path(exc)
        ) from None
    if hook.version != "4":
        msg = (
            f"Alertmanager webhook payload version {hook.version!r} is not supported; version 4 is"
        )
        raise InvalidEventError(msg, field="version")
    if len(hook.alerts) > MAX_ALERTS:
        msg = f"a payload may hold at most {MAX_ALERTS} alerts, not {len(hook.alerts)}; lower max_alerts in the receiver"
        raise InvalidEventError(msg, field="alerts")
    for index, alert in enumerate(hook.alerts):
        if alert.status not in ("firing", "resolved"):
            msg = f"alert {index} has status {alert.status!r}; Alertmanager sends 'firing' or 'resolved'"
            raise InvalidEventError(msg, field=f"alerts[{index}].status")
        if not alert.fingerprint or not alert.starts_at:
            msg = f"alert {index} needs a fingerprint and a startsAt: they make its event id"
            raise InvalidEventError(msg, field=f"alerts[{index}].fingerprint")
    return hook.alerts


def firing_event(alert: AlertmanagerAlert) -> dict[str, Any]:
    """The event of one firing alert (see the module's table)."""
    labels, annotations = alert.labels, alert.annotations
    name = labels.get("alertname", "")
    event_type = labels.get("event_type") or snake_case(name)
    if not event_type:
        msg = "an alert needs the label 'alertname' (or 'event_type') to name its event type"
        if name:  # it has one: "needs the label" sent its sender looking for a missing label
            msg = (
                f"the alertname {name!r} has no letter or digit to make an event type of;"
                " give the alert an event_type label"
            )
        raise InvalidEventError(msg, field="labels.alertname")
    event: dict[str, Any] = {
        "type": event_type,
        "severity": _severity(labels, annotations),
        "id": resolved_event_id(alert),
        "alertname": name,
        "labels": dict(labels),
        "annotations": dict(annotations),
        "starts_at": alert.starts_at,
        "fingerprint": alert.fingerprint,
        "source": "alertmanager",
    }
    if alert.generator_url:
        event["generator_url"] = alert.generator_url
    agent = next((labels[k] for k in AGENT_LABELS if labels.get(k)), None)
    if agent is not None:
        event["agent_id"] = agent
    for field in NUMBER_FIELDS:
        raw = labels.get(field, annotations.get(field))
        if raw is not None:
            event[field] = _number(raw, field)
    return event


def resolved_event_id(alert: AlertmanagerAlert) -> str:
    """The event id of an alert's firing (the decision a resolved alert is evidence for).

    startsAt is cut to the millisecond: Alertmanager's webhook carries nanoseconds, its
    API milliseconds, and an alert re-posted with the API's value keeps the earlier one.
    A `:` in the fingerprint (Alertmanager's are hex) is escaped, so that it can't move
    the split between fingerprint and startsAt: two alerts never share an id.
    """
    return f"am:{_escaped(alert.fingerprint)}:{to_millisecond(alert.starts_at)}"


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def to_millisecond(stamp: str) -> str:
    """An RFC 3339 time with its fraction cut (or padded) to three digits; other text as is."""
    found = _TIME.match(stamp)
    if found is None:
        return stamp
    whole, fraction, zone = found.groups()
    return f"{whole}.{(fraction or '').ljust(3, '0')[:3]}{zone}"


class _CloudEvent(msgspec.Struct, frozen=True, kw_only=True):
    specversion: str
    id: str
    source: str
    type: str
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    data: dict[str, Any] | None = None


def _escaped(part: str) -> str:
    """Part of an event id with no `:` left in it (nor a `%` that could read as an escape)."""
    return part.replace("%", "%25").replace(":", "%3A")


def cloudevent_to_event(payload: object) -> dict[str, Any]:
    """The event of one CloudEvent 1.0 in structured JSON mode (see the module's text)."""
    if isinstance(payload, Mapping) and "data_base64" in payload:
        msg = "binary data (data_base64) is not an event; send the event's fields as a JSON object in 'data'"
        raise InvalidEventError(msg, field="data_base64")
    try:
        ce = msgspec.convert(payload, _CloudEvent)
    except msgspec.ValidationError as exc:
        raise InvalidEventError(f"not a CloudEvent: {exc}", field=_path(exc)) from None
    if ce.specversion != "1.0":
        msg = f"CloudEvents specversion {ce.specversion!r} is not supported; 1.0 is"
        raise InvalidEventError(msg, field="specversion")
    for name in ("id", "source", "type"):
        if not getattr(ce, name):  # named: it was "id and source" for a missing source too
            raise InvalidEventError(f"a CloudEvent needs a non-empty {name}", field=name)
    event: dict[str, Any] = dict(ce.data or {})
    if "type" not in event:
        last = ce.type.rsplit(".", 1)[-1]
        if not last:  # it was "'type' must be a non-empty string, not str ''"
            msg = (
                f"the CloudEvent type {ce.type!r} ends in a dot, so its last part, the event"
                " type, is empty; drop the dot, or give the event type as data.type"
            )
            raise InvalidEventError(msg, field="type")
        event["type"] = last
    event["id"] = f"ce:{ce.source}:{_escaped(ce.id)}"
    if ce.subject and "agent_id" not in event:
        event["agent_id"] = ce.subject
    event["ce_source"] = ce.source
    event["ce_type"] = ce.type
    if ce.time is not None:
        event["ce_time"] = ce.time
    return event


CE_HEADER = "ce-"
"""The prefix of a binary-mode CloudEvent's attribute headers (`ce-id`, `ce-source`...)."""


def binary_cloudevent(headers: Mapping[str, str], data: object) -> dict[str, Any]:
    """A binary-mode CloudEvent (HTTP binding 1.0, section 3.1) in structured form, for
    cloudevent_to_event: each `ce-*` header (names in lower case) an attribute, decoded
    as the binding says (a double-quoted value unquoted, then one round of
    percent-decoding, invalid UTF-8 refused), and `data` the body."""
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith(CE_HEADER) and name != CE_HEADER:
            attributes[name[len(CE_HEADER) :]] = _header_value(name, value)
    return {**attributes, "data": data}


def _header_value(name: str, value: str) -> str:
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':  # RFC 7230's quoted-string
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        msg = f"header {name} is not percent-encoded UTF-8"
        raise InvalidEventError(msg, field=name[len(CE_HEADER) :]) from None


def snake_case(name: str) -> str:
    """`HighCPU` -> `high_cpu`, `KubePodCrashLooping` -> `kube_pod_crash_looping`.

    Letters beyond ASCII are kept (`ÜberLast` -> `über_last`): dropped, two names told
    apart by them became one type. Whatever is neither letter nor digit becomes `_`.
    """
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    return re.sub(r"[\W_]+", "_", spaced).strip("_").lower()


def _severity(labels: Mapping[str, str], annotations: Mapping[str, str]) -> float:
    raw = labels.get("severity_score", annotations.get("severity_score"))
    if raw is not None:
        value = _number(raw, "severity_score")
        if value > 1.0:
            raise InvalidEventError(
                f"severity_score must be from 0 to 1, not {raw!r}", field="severity_score"
            )
        return value
    return SEVERITY_NAMES.get(labels.get("severity", "").lower(), UNKNOWN_SEVERITY)


def _number(raw: str, field: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidEventError(f"{field} must be a number, not {raw!r}", field=field) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidEventError(f"{field} must be a finite number from 0, not {raw!r}", field=field)
    return value


def _path(exc: msgspec.ValidationError) -> str | None:
    """The field a msgspec validation error names (`... - at `$.alerts[0].labels``)."""
    found = re.search(r"at `\$\.?([^`]*)`", str(exc))
    return found.group(1) or None if found else None
