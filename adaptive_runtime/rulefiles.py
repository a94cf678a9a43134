"""Rule files: custom rules (and fleet and learning policies) read from TOML or JSON, errors naming the file."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .engines.decision import parse_new_rules
from .errors import InvalidRulesError
from .records import ApprovalPolicy, FleetPolicy, LearningPolicy, Rule

__all__ = ["PolicyFile", "load_policy", "load_rules"]


class PolicyFile(msgspec.Struct, frozen=True, kw_only=True):
    """What a policy file says; None where it says nothing (keep what is in force)."""

    rules: tuple[Rule, ...] | None = None
    fleet: FleetPolicy | None = None
    learning: LearningPolicy | None = None
    approvals: ApprovalPolicy | None = None


_SECTIONS = frozenset(PolicyFile.__struct_fields__)
"""What a policy file's top level may hold: `rules` and one table per PolicyFile field."""
_TABLES = tuple(name for name in PolicyFile.__struct_fields__ if name != "rules")
P = TypeVar("P", FleetPolicy, LearningPolicy, ApprovalPolicy)


def load_rules(path: str | os.PathLike[str]) -> tuple[Rule, ...]:
    """Read custom rules from a TOML or JSON file: a list under `rules`, or (JSON) a bare list."""
    rules = load_policy(path, need_rules=True).rules
    assert rules is not None
    return rules


def _table(file: Path, name: str, data: Any, policy: type[P]) -> P:
    """The policy a file's `[name]` table holds; a bad one is refused naming its knobs."""
    try:
        return msgspec.convert(data, policy)
    except (msgspec.ValidationError, ValueError) as exc:
        why = str(exc)
        if "unknown field" in why:  # a misspelt knob: say which ones there are
            why += f" (the knobs: {', '.join(policy.__struct_fields__)})"
        raise InvalidRulesError(f"{file}: [{name}]: {why}") from None


def load_policy(path: str | os.PathLike[str], *, need_rules: bool = False) -> PolicyFile:
    """Read a policy file: custom `rules`, and optionally a `fleet` table of FleetPolicy knobs
    and a `learning` table of LearningPolicy knobs."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")  # a BOM from an editor is not TOML
    except OSError as exc:
        msg = f"cannot read rules file {file}: {exc.strerror}"
        raise InvalidRulesError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"rules file {file} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise InvalidRulesError(msg) from None
    try:
        data: Any = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
        why = "nested too deeply to read" if isinstance(exc, RecursionError) else exc
        msg = f"{file} is not valid {'TOML' if file.suffix.lower() == '.toml' else 'JSON'}: {why}"
        raise InvalidRulesError(msg) from None
    fleet: FleetPolicy | None = None
    learning: LearningPolicy | None = None
    approvals: ApprovalPolicy | None = None
    if isinstance(data, Mapping):
        unknown = sorted(str(key) for key in data if key not in _SECTIONS)
        if unknown:  # a misspelt table would be left out without a word
            msg = (
                f"{file}: unknown {', '.join(repr(k) for k in unknown)}; a policy file holds"
                f" `rules` and the tables {', '.join(f'[{t}]' for t in _TABLES)}"
            )
            raise InvalidRulesError(msg)
        if "approvals" in data:
            approvals = _table(file, "approvals", data["approvals"], ApprovalPolicy)
        if "fleet" in data:
            fleet = _table(file, "fleet", data["fleet"], FleetPolicy)
        if "learning" in data:
            learning = _table(file, "learning", data["learning"], LearningPolicy)
        if "rules" not in data:
            if need_rules or (fleet is None and learning is None and approvals is None):
                raise InvalidRulesError(f"{file} has no `rules` list")
            return PolicyFile(fleet=fleet, learning=learning, approvals=approvals)
        data = data["rules"]
    if not isinstance(data, list):
        raise InvalidRulesError(f"{file}: `rules` must be a list")
    try:
        return PolicyFile(
            rules=parse_new_rules(data),
            fleet=fleet,
            learning=learning,
            approvals=approvals,
        )
    except InvalidRulesError as exc:
        raise InvalidRulesError(f"{file}: {exc}", index=exc.index) from None
