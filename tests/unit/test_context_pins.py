"""Pins for the context engine's records and repr (see RELIABILITY.md, "Mutation testing")."""

from __future__ import annotations

import pytest

from adaptive_runtime.engines.context import ContextEngine, ContextOverride, ContextResult


def test_context_records_are_frozen_keyword_built_with_empty_tags_by_default() -> None:
    result = ContextResult(context="c", risk="low", stability="stable", pressure=0.1)
    assert () == result.tags
    with pytest.raises(TypeError):
        ContextResult("c", "low", "stable", 0.1)  # type: ignore[misc]
    override = ContextOverride(context="c")
    assert (None, ()) == (override.risk, override.tags)
    with pytest.raises(AttributeError):
        override.context = "d"  # type: ignore[misc]


def test_the_engine_names_how_many_contexts_it_maps() -> None:
    assert "ContextEngine(contexts=7)" == repr(ContextEngine())
    assert "ContextEngine(contexts=8)" == repr(ContextEngine({"vps_disconnect": "trading"}))
