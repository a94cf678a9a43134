"""Rule files: custom rules (and a fleet policy) read from TOML or JSON, with errors naming the file."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from .engines.decision import parse_rules
from .errors import InvalidRulesError
from .records import FleetPolicy, Rule

__all__ = ["load_policy", "load_rules"]


def load_rules(path: str | os.PathLike[str]) -> tuple[Rule, ...]:
    """Read custom rules from a TOML or JSON file: a list under `rules`, or (JSON) a bare list."""
    rules, _ = load_policy(path, need_rules=True)
    assert rules is not None
    return rules


def load_policy(
    path: str | os.PathLike[str], *, need_rules: bool = False
) -> tuple[tuple[Rule, ...] | None, FleetPolicy | None]:
    """Read a policy file: custom `rules` and, optionally, a `fleet` table of FleetPolicy knobs."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read rules file {file}: {exc.strerror}"
        raise InvalidRulesError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"rules file {file} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise InvalidRulesError(msg) from None
    try:
        data: Any = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        msg = f"{file} is not valid {'TOML' if file.suffix.lower() == '.toml' else 'JSON'}: {exc}"
        raise InvalidRulesError(msg) from None
    fleet: FleetPolicy | None = None
    if isinstance(data, Mapping):
        if "fleet" in data:
            try:
                fleet = msgspec.convert(data["fleet"], FleetPolicy)
            except (msgspec.ValidationError, ValueError) as exc:
                raise InvalidRulesError(f"{file}: [fleet]: {exc}") from None
        if "rules" not in data:
            if need_rules or fleet is None:
                raise InvalidRulesError(f"{file} has no `rules` list")
            return None, fleet
        data = data["rules"]
    if not isinstance(data, list):
        raise InvalidRulesError(f"{file}: `rules` must be a list")
    try:
        return parse_rules(data), fleet
    except InvalidRulesError as exc:
        raise InvalidRulesError(f"{file}: {exc}", index=exc.index) from None
