"""The receivers' mappings, pinned: what each documented label, annotation or field becomes."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_runtime.errors import InvalidEventError
from adaptive_runtime.receivers import (
    alertmanager_alerts,
    cloudevent_to_event,
    firing_event,
    snake_case,
)


def payload(**alert: Any) -> dict[str, Any]:
    base = {
        "status": "firing",
        "labels": {"alertname": "HighCPU"},
        "annotations": {},
        "startsAt": "2026-11-27T01:00:00.123456789Z",
        "fingerprint": "fp1",
    }
    return {"version": "4", "alerts": [base | alert]}


def event_of(**alert: Any) -> dict[str, Any]:
    [one] = alertmanager_alerts(payload(**alert))
    return firing_event(one)


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("HighCPU", "high_cpu"),
        ("KubePodCrashLooping", "kube_pod_crash_looping"),
        ("service_overload", "service_overload"),
        ("Disk-Full 90%", "disk_full_90"),
        ("APIHTTP5xxErrors", "apihttp5xx_errors"),
        # letters beyond ASCII were dropped: these were ber_last and "" (no alertname, it said)
        ("ÜberLast", "über_last"),
        ("Перегрузка", "перегрузка"),
    ],
)
def test_alertname_in_snake_case(name: str, snake: str) -> None:
    assert snake == snake_case(name)


def test_an_alertname_with_no_letter_or_digit_is_named_not_called_missing() -> None:
    """`alertname="!!!"` was refused as "an alert needs the label 'alertname'"."""
    with pytest.raises(InvalidEventError) as caught:
        event_of(labels={"alertname": "!!!"})
    assert ("labels.alertname", "the alertname '!!!' has no letter or digit to make an event"
            " type of; give the alert an event_type label") == (caught.value.field, str(caught.value))  # fmt: skip
    assert "bang" == event_of(labels={"alertname": "!!!", "event_type": "bang"})["type"]


def test_a_firing_alert_becomes_the_documented_event() -> None:
    event = event_of(
        labels={"alertname": "HighCPU", "severity": "warning", "job": "node", "service": "api"},
        annotations={"cpu": "97.5", "latency_ms": "1200", "summary": "hot"},
        generatorURL="http://prom/graph",
    )
    assert {
        "type": "high_cpu",
        "severity": 0.6,
        "id": "am:fp1:2026-11-27T01:00:00.123Z",
        "alertname": "HighCPU",
        "labels": {"alertname": "HighCPU", "severity": "warning", "job": "node", "service": "api"},
        "annotations": {"cpu": "97.5", "latency_ms": "1200", "summary": "hot"},
        "starts_at": "2026-11-27T01:00:00.123456789Z",
        "fingerprint": "fp1",
        "source": "alertmanager",
        "generator_url": "http://prom/graph",
        "agent_id": "api",
        "cpu": 97.5,
        "latency_ms": 1200.0,
    } == event


@pytest.mark.parametrize(
    ("labels", "annotations", "severity"),
    [
        ({"severity": "critical"}, {}, 0.9),
        ({"severity": "ERROR"}, {}, 0.8),
        ({"severity": "high"}, {}, 0.8),
        ({"severity": "warning"}, {}, 0.6),
        ({"severity": "info"}, {}, 0.3),
        ({"severity": "none"}, {}, 0.1),
        ({"severity": "page-someone"}, {}, 0.5),
        ({}, {}, 0.5),
        ({"severity": "info", "severity_score": "0.95"}, {}, 0.95),
        ({"severity": "info"}, {"severity_score": "0.7"}, 0.7),
    ],
)
def test_severity(labels: dict[str, str], annotations: dict[str, str], severity: float) -> None:
    event = event_of(labels={"alertname": "X"} | labels, annotations=annotations)
    assert severity == event["severity"]


@pytest.mark.parametrize(
    ("labels", "agent"),
    [
        ({"agent_id": "a", "service": "s", "job": "j"}, "a"),
        ({"service": "s", "job": "j"}, "s"),
        ({"job": "j"}, "j"),
        ({}, None),
    ],
)
def test_agent_label_precedence(labels: dict[str, str], agent: str | None) -> None:
    assert agent == event_of(labels={"alertname": "X"} | labels).get("agent_id")


def test_event_type_label_wins_over_alertname() -> None:
    assert (
        "cpu_spike" == event_of(labels={"alertname": "HighCPU", "event_type": "cpu_spike"})["type"]
    )


@pytest.mark.parametrize(
    ("alert", "field"),
    [
        ({"labels": {"alertname": "X", "cpu": "lots"}}, "cpu"),
        ({"labels": {"alertname": "X"}, "annotations": {"memory": "-3"}}, "memory"),
        ({"labels": {"alertname": "X", "severity_score": "1.5"}}, "severity_score"),
        ({"labels": {"severity": "critical"}}, "labels.alertname"),
    ],
)
def test_bad_alert_values_name_their_field(alert: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        event_of(**alert)
    assert field == caught.value.field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4"}, None),
        ({"version": "4", "alerts": [{"status": "pending"}]}, "alerts[0]"),
        (payload(status="pending"), "alerts[0].status"),
        (payload(fingerprint=""), "alerts[0].fingerprint"),
        ({"version": "4", "alerts": [payload()["alerts"][0]] * 1001}, "alerts"),
    ],
)
def test_bad_payloads_are_invalid_events(body: dict[str, Any], field: str | None) -> None:
    with pytest.raises(InvalidEventError) as caught:
        alertmanager_alerts(body)
    assert field == caught.value.field


def cloudevent(**overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "7",
        "source": "/ops",
        "type": "com.example.ops.memory_leak",
        "data": {"severity": 0.7, "memory": 95},
    } | overrides


def test_a_cloudevent_becomes_the_documented_event() -> None:
    assert {
        "type": "memory_leak",
        "severity": 0.7,
        "memory": 95,
        "id": "ce:/ops:7",
        "agent_id": "db-1",
        "ce_source": "/ops",
        "ce_type": "com.example.ops.memory_leak",
        "ce_time": "2026-11-27T01:00:00Z",
    } == cloudevent_to_event(cloudevent(subject="db-1", time="2026-11-27T01:00:00Z"))


def test_two_alerts_never_share_an_id() -> None:
    """A `:` in a fingerprint moved the split between it and startsAt: fingerprint `a:b`
    at startsAt `c` and fingerprint `a` at `b:c` made one id, so the second alert was
    answered as already decided. Hex fingerprints, Alertmanager's, keep their ids."""
    pairs = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c")]
    ids = [event_of(fingerprint=f, startsAt=s)["id"] for f, s in pairs]
    assert len(set(ids)) == len(pairs), ids
    hex_id = event_of(fingerprint="8f2e31c0a1b2c3d4")["id"]
    assert "am:8f2e31c0a1b2c3d4:2026-11-27T01:00:00.123Z" == hex_id


def test_two_cloudevents_never_share_an_id() -> None:
    """Source and id together are unique, and so is the event id made of them: a `:` in
    the source or in the id can't move the split between them."""
    pairs = [("urn:a", "b"), ("urn", "a:b"), ("urn", "a%3Ab"), ("/ops:x", "1"), ("/ops", "x:1")]
    ids = [cloudevent_to_event(cloudevent(source=s, id=i))["id"] for s, i in pairs]
    assert len(set(ids)) == len(pairs), ids
    assert "ce:/ops:7" == cloudevent_to_event(cloudevent())["id"]  # no `:` or `%`: as before
    assert "ce:urn:a:b" == ids[0]
    assert "ce:urn:a%3Ab" == ids[1]


def test_data_type_and_agent_win_over_the_envelope() -> None:
    event = cloudevent_to_event(
        cloudevent(subject="s", data={"type": "cpu_spike", "agent_id": "a"})
    )
    assert ("cpu_spike", "a") == (event["type"], event["agent_id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (cloudevent(specversion="0.3"), "specversion"),
        ({k: v for k, v in cloudevent().items() if k != "source"}, None),
        (cloudevent(id=""), "id"),
        (cloudevent(data="not an object"), "data"),
        (cloudevent(data_base64="AAAA"), "data_base64"),
    ],
)
def test_bad_cloudevents_are_invalid_events(body: dict[str, Any], field: str | None) -> None:
    with pytest.raises(InvalidEventError) as caught:
        cloudevent_to_event(body)
    assert field == caught.value.field


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # was "needs a non-empty id and source", field "id", for an empty source
        (cloudevent(source=""), ("source", "a CloudEvent needs a non-empty source")),
        (cloudevent(type=""), ("type", "a CloudEvent needs a non-empty type")),
        # was "'type' must be a non-empty string, not str ''": the type given was not ''
        (
            cloudevent(type="com.example.ops."),
            (
                "type",
                "the CloudEvent type 'com.example.ops.' ends in a dot, so its last part, the"
                " event type, is empty; drop the dot, or give the event type as data.type",
            ),
        ),
    ],
)
def test_a_cloudevent_s_empty_attribute_is_named_as_given(
    body: dict[str, Any], says: tuple[str, str]
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        cloudevent_to_event(body)
    assert says == (caught.value.field, str(caught.value))


def test_a_cloudevent_type_ending_in_a_dot_is_taken_with_data_type() -> None:
    """What the refusal above says to do works."""
    body = cloudevent(type="com.example.ops.", data={"type": "cpu_spike"})
    assert "cpu_spike" == cloudevent_to_event(body)["type"]
