"""Custom rules as callers give them: a list of rules, tuples or dicts, or a TOML/JSON file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..engines.decision import parse_rules
from ..records import Rule

__all__ = ["RulesArg", "rules_from"]

RulesArg = Iterable[Rule | Sequence[Any] | Mapping[str, Any]] | str | os.PathLike[str] | None


def rules_from(rules: RulesArg) -> tuple[Rule, ...] | None:
    """Parse rules given in any accepted form (None stays None: no rules given)."""
    if rules is None:
        return None
    if isinstance(rules, str | os.PathLike):
        from ..rulefiles import load_rules  # here: only a rules file needs the file readers

        return load_rules(rules)
    return parse_rules(rules)
