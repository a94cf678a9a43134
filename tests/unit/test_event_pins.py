"""Pins for event validation: every limit at its edge and one past it, the size budget's
exact accounting, redaction at any depth and in lists, and the exact messages."""

from __future__ import annotations

import pytest

from adaptive_runtime.engines.events import (
    LIMITS,
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    MAX_INT,
    MAX_ITEMS,
    MAX_KEY_LENGTH,
    MAX_STRING_LENGTH,
    MAX_TYPE_LENGTH,
    REDACTED,
    check_values,
    parse_event,
    severity,
)
from adaptive_runtime.errors import InvalidEventError
from adaptive_runtime.records import Event


def refused(raw: object, **kwargs: object) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(raw, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_the_limits() -> None:
    assert {
        "severity": 1.0,
        "cpu": 100.0,
        "memory": 100.0,
        "error_rate": 1.0,
        "latency_ms": 3_600_000.0,
    } == LIMITS
    assert (64, 128, 64, 4096, 64, 4, 256, 2**53, 1024 * 1024, "[redacted]") == (
        MAX_TYPE_LENGTH,
        MAX_ID_LENGTH,
        MAX_KEY_LENGTH,
        MAX_STRING_LENGTH,
        MAX_ATTRIBUTES,
        MAX_DEPTH,
        MAX_ITEMS,
        MAX_INT,
        MAX_EVENT_BYTES,
        REDACTED,
    )


def test_numbers_at_their_edges() -> None:
    e = parse_event(
        {"type": "t", "cpu": 100, "memory": 100.5, "latency_ms": 3_600_001, "severity": 0}
    )
    assert (100.0, 100.0, 3_600_000.0, 0.0) == (e.cpu, e.memory, e.latency_ms, e.severity)
    assert 1.0 == severity(7)
    assert 0.25 == severity(0.25)
    assert parse_event({"type": "t", "cpu": MAX_INT}).cpu == 100.0
    err = refused({"type": "t", "cpu": MAX_INT + 1})
    assert ("'cpu' is far out of range (an integer of 54 bits)", "cpu") == (str(err), err.field)
    assert "'cpu' must not be negative, got -0.5" == str(refused({"type": "t", "cpu": -0.5}))
    assert "'cpu' must be finite, not inf" == str(refused({"type": "t", "cpu": float("inf")}))
    assert "'cpu' must be a number, not bool True" == str(refused({"type": "t", "cpu": True}))
    assert "'cpu' must be a number, not str '5'" == str(refused({"type": "t", "cpu": "5"}))


def test_type_and_id_at_their_edges() -> None:
    assert "t" * 64 == parse_event({"type": "t" * 64}).type
    assert "'type' is 65 characters long; at most 64 are allowed" == str(
        refused({"type": "t" * 65})
    )
    assert "an event needs a 'type', e.g. 'service_overload'" == str(refused({}))
    assert "'type' must be a non-empty string, not str '  '" == str(refused({"type": "  "}))
    assert "'type' must be a non-empty string, not int 5" == str(refused({"type": 5}))
    assert "'type' must be printable with no spaces (use '_'), got 'a b'" == str(
        refused({"type": "a b"})
    )
    assert "'type' must be printable with no spaces (use '_'), got 'a\\tb'" == str(
        refused({"type": "a\tb"})
    )
    assert "i" * 128 == parse_event({"type": "t", "id": "i" * 128}).id
    assert "'id' is 129 characters long; at most 128 are allowed" == str(
        refused({"type": "t", "id": "i" * 129})
    )
    assert "'id' must be a non-empty string, not str ''" == str(refused({"type": "t", "id": ""}))


def test_attributes_at_their_edges() -> None:
    many = {"type": "t", **{f"a{i}": 1 for i in range(MAX_ATTRIBUTES)}}
    assert MAX_ATTRIBUTES == len(parse_event(many).attrs)
    err = refused({**many, "one_more": 1})
    assert ("an event may carry at most 64 extra attributes", "one_more") == (str(err), err.field)
    assert parse_event({"type": "t", "k" * 64: 1}).attrs == {"k" * 64: 1}
    assert f"{'k' * 65!r} is 65 characters long; at most 64 are allowed" == str(
        refused({"type": "t", "k" * 65: 1})
    )
    assert "s" * 4096 == parse_event({"type": "t", "s": "s" * 4096}).attrs["s"]
    assert "'s' is 4097 characters long; at most 4096 are allowed" == str(
        refused({"type": "t", "s": "s" * 4097})
    )
    items = list(range(MAX_ITEMS))
    assert items == parse_event({"type": "t", "l": items}).attrs["l"]
    err = refused({"type": "t", "l": [*items, 1]})
    assert "attribute 'l' holds 257 items; at most 256 are allowed" == str(err)
    deep = {"type": "t", "a": {"b": {"c": {"d": 1}}}}  # containers to depth 3: allowed
    assert {"b": {"c": {"d": 1}}} == parse_event(deep).attrs["a"]
    err = refused({"type": "t", "a": {"b": {"c": {"d": [1]}}}})
    assert ("attribute 'a.b.c.d' is nested more than 4 levels deep", "a.b.c.d") == (
        str(err),
        err.field,
    )
    err = refused({"type": "t", "n": 2**60})
    assert "attribute 'n' is an integer of 61 bits; send it as a string" == str(err)
    assert "attribute 'f' must be finite, not nan" == str(refused({"type": "t", "f": float("nan")}))
    assert "attribute 'b' has unsupported type bytes" == str(refused({"type": "t", "b": b"x"}))
    err = refused({"type": "t", "d": {1: 2}})
    assert "attribute 'd' has a non-string key int 1" == str(err)
    assert "event keys must be strings; found the key int 5" == str(refused({"type": "t", 5: 1}))
    assert "the field name 'extra' is reserved; rename it (for example to 'details')" == str(
        refused({"type": "t", "extra": 1})
    )
    assert "an event must be a dict, not list" == str(refused([1]))


def test_the_size_budget_counts_each_part_exactly() -> None:
    """key: its length + 2; a string: its UTF-8 length + 5; an int or float: 9; None or a
    bool: 1; a list or dict: 5, plus its items (and a dict's keys)."""
    cases = [
        ({"k": "abc"}, 1 + 2 + 3 + 5),
        ({"k": "é"}, 1 + 2 + 2 + 5),
        ({"k": 7}, 3 + 9),
        ({"k": 7.5}, 3 + 9),
        ({"k": None}, 3 + 1),
        ({"k": True}, 3 + 1),
        ({"k": [1, None]}, 3 + 5 + 9 + 1),
        ({"k": {"ab": 1}}, 3 + 5 + 4 + 9),
    ]
    for attrs, size in cases:
        assert attrs == parse_event({"type": "t", **attrs}, max_bytes=size).attrs
        err = refused({"type": "t", **attrs}, max_bytes=size - 1)
        assert str(err).startswith(f"the event is larger than {size - 1:,} bytes once encoded")


def test_redaction_at_every_depth_and_in_lists() -> None:
    secret = frozenset({"password"})
    e = parse_event(
        {
            "type": "t",
            "Password": "top",
            "a": {"b": {"password": "x", "keep": 1}},
            "l": [{"password": "y"}, {"other": 2}],
        },
        redact=secret,
    )
    assert {
        "Password": REDACTED,
        "a": {"b": {"password": REDACTED, "keep": 1}},
        "l": [{"password": REDACTED}, {"other": 2}],
    } == e.attrs
    # a redacted value that would itself be refused is never looked at
    assert (
        REDACTED == parse_event({"type": "t", "password": b"raw"}, redact=secret).attrs["password"]
    )


def test_an_event_built_by_hand_is_checked_like_a_dict() -> None:
    err = refused(Event(type="t", attrs={"cpu": 1, "id": 2}))
    assert "an Event's attrs may not use the names of its fields: cpu, id" == str(err)
    assert "cpu" == err.field
    err = refused(Event(type="t", attrs=[1]))  # type: ignore[arg-type]
    assert "an Event's attrs must be a dict, not list [1]" == str(err)


def test_check_values_bounds_state_like_attributes() -> None:
    assert {"a": [1]} == check_values({"a": [1]})
    with pytest.raises(InvalidEventError) as err:
        check_values([1], what="state")
    assert "state must be a dict, not list" == str(err.value)
    with pytest.raises(InvalidEventError) as err:
        check_values({f"k{i}": 1 for i in range(MAX_ITEMS + 1)}, what="the patch")
    assert "the patch holds 257 keys; at most 256 are allowed" == str(err.value)
    assert 256 == len(check_values({f"k{i}": 1 for i in range(MAX_ITEMS)}))
    with pytest.raises(InvalidEventError) as err:
        check_values({5: 1})
    assert "state keys must be strings; found the key int 5" == str(err.value)
    with pytest.raises(InvalidEventError) as err:
        check_values({"k": "abc"}, max_bytes=10)
    assert str(err.value).startswith("the event is larger than 10 bytes once encoded")


def test_long_values_are_described_short() -> None:
    err = refused({"type": "t", "cpu": "x" * 100})
    assert "'cpu' must be a number, not str '" + "x" * 36 + "..." == str(err)


def test_more_edges_of_validation() -> None:
    """Names an Event's attrs may not take; a number field among attributes; exact ints."""
    for name in ("type", "extra"):
        err = refused(Event(type="t", attrs={name: 1}))
        assert (f"an Event's attrs may not use the names of its fields: {name}", name) == (
            str(err),
            err.field,
        )
    assert "attrs" == refused(Event(type="t", attrs=[1])).field  # type: ignore[arg-type]
    e = parse_event({"type": "t", "cpu": 5, "x": 1, "memory": 6, "y": 2})
    assert ({"x": 1, "y": 2}, 5.0, 6.0) == (e.attrs, e.cpu, e.memory)

    class Name(str):
        pass

    assert {"k": 1} == parse_event({"type": "t", Name("k"): 1}).attrs
    assert 2**53 == parse_event({"type": "t", "n": 2**53}).attrs["n"]
    err = refused({"type": "t", 2**60: 1})
    assert "event keys must be strings; found the key int of 61 bits" == str(err)
    err = refused({"type": "t", 2**53: 1})
    assert "event keys must be strings; found the key int 9007199254740992" == str(err)
    err = refused({"type": "t", "cpu": "x" * 38})
    assert "'cpu' must be a number, not str '" + "x" * 38 + "'" == str(err)
    err = refused({"type": "t", "cpu": "x" * 39})
    assert "'cpu' must be a number, not str '" + "x" * 36 + "..." == str(err)


def test_nested_names_in_messages_and_the_whole_budget_message() -> None:
    err = refused({"type": "t", "a": {"k" * 65: 1}})
    assert f"'a.{'k' * 65}' is 65 characters long; at most 64 are allowed" == str(err)
    err = refused({"type": "t", "a": {"kk": 1}}, max_bytes=3 + 5 + 3)
    assert str(err) == (
        "the event is larger than 11 bytes once encoded (the bound was passed at 'a.kk'); "
        "send less, or raise max_event_bytes"
    )
    assert "a.kk" == err.field


def test_check_values_counts_and_nests_as_attributes_do() -> None:
    assert {"k": "abc"} == check_values({"k": "abc"}, max_bytes=11)
    with pytest.raises(InvalidEventError):
        check_values({"k": "abc"}, max_bytes=10)
    nested = {"a": {"b": {"c": {"d": 1}}}}
    assert nested == check_values(nested)
    with pytest.raises(InvalidEventError, match="nested more than 4 levels deep"):
        check_values({"a": {"b": {"c": {"d": [1]}}}})


def test_attributes_after_the_id_are_kept() -> None:
    e = parse_event({"type": "t", "id": "i", "x": 1})
    assert ("i", {"x": 1}) == (e.id, e.attrs)
