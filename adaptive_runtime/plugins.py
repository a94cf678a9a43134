"""Plugins from installed packages: context analysers, rule packs and action handlers.

A package offers a plugin under one name in any of three entry-point groups:

- `adaptive_runtime.contexts`: a function `(event: Event) -> ContextOverride | None`, pure
  and deterministic, that says what the package's events mean (context, risk, tags);
- `adaptive_runtime.rules`: a list of rules, in the form of a rules file's `rules`
  (5-tuples or tables), or an object with such a list as `RULES`;
- `adaptive_runtime.actions`: a function `(host) -> None` that registers action handlers
  on the host (`@host.action(...)`), with their retry and breaker policies.

Installed is not enabled: a host uses the plugins it names (`Host(plugins=["trading"])`,
`--plugins trading`). The names and versions in force are journaled, enter the ruleset
hash, and are recorded in every decision; replay loads the same versions or says why not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import msgspec

from .engines.context import Analyser
from .engines.decision import parse_new_rules
from .engines.pipeline import PluginSet
from .errors import ConfigurationError, InvalidRulesError
from .records import PluginRef, Rule

__all__ = [
    "GROUPS",
    "PluginInfo",
    "PluginMismatchError",
    "Registrar",
    "installed",
    "load",
    "load_labels",
]

GROUPS = {
    "contexts": "adaptive_runtime.contexts",
    "rules": "adaptive_runtime.rules",
    "actions": "adaptive_runtime.actions",
}
Registrar = Callable[[Any], None]
"""An action plugin: registers its handlers on the host it is given."""


class PluginMismatchError(ConfigurationError):
    """The plugin a journal was decided with is not installed at that version."""


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An installed plugin: its name, the kinds it offers, and the package that ships it."""

    name: str
    kinds: tuple[str, ...]
    distribution: str
    version: str


def _entry_points() -> dict[str, list[tuple[str, metadata.EntryPoint]]]:
    found: dict[str, list[tuple[str, metadata.EntryPoint]]] = {}
    for kind, group in GROUPS.items():
        for ep in metadata.entry_points(group=group):
            found.setdefault(ep.name, []).append((kind, ep))
    return found


def _distribution(name: str, eps: list[tuple[str, metadata.EntryPoint]]) -> tuple[str, str]:
    dists = {(ep.dist.name, ep.dist.version) for _, ep in eps if ep.dist is not None}
    if len(dists) != 1:
        msg = f"plugin {name!r} is offered by {len(dists)} packages; uninstall all but one"
        raise ConfigurationError(msg)
    return next(iter(dists))


def installed() -> list[PluginInfo]:
    """Every plugin the installed packages offer, by name."""
    out = []
    for name, eps in sorted(_entry_points().items()):
        dist, version = _distribution(name, eps)
        kinds = tuple(sorted(kind for kind, _ in eps))
        out.append(PluginInfo(name=name, kinds=kinds, distribution=dist, version=version))
    return out


def load(
    names: Iterable[str], *, versions: dict[str, str] | None = None
) -> tuple[PluginSet, list[tuple[str, Registrar]]]:
    """Load the named plugins: what decides (a PluginSet) and the action registrars.

    With `versions`, each plugin must be installed at exactly that version (replay and a
    restart use the versions the journal holds). Raises ConfigurationError naming the
    plugin for one that is missing, broken, or of another version.
    """
    available = _entry_points()
    refs: list[PluginRef] = []
    analysers: list[tuple[str, Analyser]] = []
    packs: list[tuple[str, tuple[Rule, ...]]] = []
    registrars: list[tuple[str, Registrar]] = []
    for name in _unique(names):
        eps = available.get(name)
        wanted = None if versions is None else versions.get(name)
        if not eps:
            known = ", ".join(sorted(available)) or "none"
            why = f" (the journal was decided with {name}=={wanted})" if wanted else ""
            msg = f"plugin {name!r} is not installed{why}; installed plugins: {known}"
            raise (PluginMismatchError if wanted else ConfigurationError)(msg)
        _, version = _distribution(name, eps)
        if wanted is not None and wanted != version:
            msg = (
                f"the journal was decided with plugin {name}=={wanted}, but {name}=={version} is "
                f"installed; install {wanted} to replay it exactly"
            )
            raise PluginMismatchError(msg)
        refs.append(PluginRef(name=name, version=version))
        for kind, ep in eps:
            obj = _load(name, kind, ep)
            if kind == "contexts":
                if not callable(obj):
                    raise ConfigurationError(
                        f"plugin {name!r}: its context analyser is not callable"
                    )
                analysers.append((name, obj))
            elif kind == "rules":
                packs.append((name, _rules(name, obj)))
            else:
                if not callable(obj):
                    raise ConfigurationError(
                        f"plugin {name!r}: its action registrar is not callable"
                    )
                registrars.append((name, obj))
    return PluginSet(tuple(refs), analysers, packs), registrars


def load_labels(labels: Sequence[str]) -> PluginSet:
    """The plugin set a decision names (`name==version` each), loaded at those versions."""
    for label in labels:
        if "==" not in label:
            raise PluginMismatchError(f"a decision names plugin {label!r}, not name==version")
    versions = dict(label.split("==", 1) for label in labels)
    plugins, _ = load(versions, versions=versions)
    return plugins


def _load(name: str, kind: str, ep: metadata.EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:
        msg = f"plugin {name!r} ({kind}, {ep.value}) failed to load: {type(exc).__name__}: {exc}"
        raise ConfigurationError(msg) from None


def _rules(name: str, obj: Any) -> tuple[Rule, ...]:
    raw = getattr(obj, "RULES", obj)
    try:
        return parse_new_rules(raw)
    except (InvalidRulesError, TypeError) as exc:
        raise ConfigurationError(f"plugin {name!r}: its rule pack is not valid: {exc}") from None


def _unique(names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        raise ConfigurationError(f"plugins must be a list of names, e.g. [{names!r}]")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a plugin name must be a non-empty string, not {name!r}")
        if name not in out:
            out.append(name)
    return out
