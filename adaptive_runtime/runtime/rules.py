"""Policy as callers give it: custom rules (a list, or a TOML/JSON file) and a learning policy."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from ..engines.decision import parse_new_rules
from ..errors import ConfigurationError
from ..records import LearningPolicy, Rule

__all__ = ["LearningArg", "RulesArg", "learning_from", "rules_from"]

RulesArg = Iterable[Rule | Sequence[Any] | Mapping[str, Any]] | str | os.PathLike[str] | None
LearningArg = LearningPolicy | Mapping[str, Any] | None


def rules_from(rules: RulesArg) -> tuple[Rule, ...] | None:
    """Parse rules given in any accepted form (None stays None: no rules given)."""
    if rules is None:
        return None
    if isinstance(rules, str | os.PathLike):
        from ..rulefiles import load_rules  # here: only a rules file needs the file readers

        return load_rules(rules)
    return parse_new_rules(rules)


def learning_from(learning: LearningArg) -> LearningPolicy | None:
    """A learning policy given as a LearningPolicy or a table of its knobs (None stays None)."""
    if learning is None or isinstance(learning, LearningPolicy):
        return learning
    if not isinstance(learning, Mapping):
        msg = f"learning must be a LearningPolicy or a table of its knobs, not {type(learning).__name__}"
        raise ConfigurationError(msg)
    try:
        return msgspec.convert(dict(learning), LearningPolicy)
    except msgspec.ValidationError as exc:
        msg = f"learning: {exc} (the knobs: {', '.join(LearningPolicy.__struct_fields__)})"
        raise ConfigurationError(msg) from None
