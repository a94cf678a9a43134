"""The original project's Runtime internals that its example scripts reached for, kept working.

Its scripts used `runtime._recovery.retry(...)`, `runtime._state.current` and
`runtime._decision = DecisionEngine(custom_rules=...)`. These names are supported,
documented aliases: `_recovery`, `_context` and `_confidence` are the runtime's own
engines; `_state` is its state engine with the original's `current` view; and assigning
`_decision` changes the rules through the journaled rule change, like `set_rules()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..engines.context import ContextEngine
from ..engines.decision import DecisionEngine
from ..engines.original import ConfidenceEngine
from ..errors import ConfigurationError
from ..original.recovery import RecoveryEngine

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["OriginalAPI", "OriginalStateEngine"]


class OriginalStateEngine:
    """The runtime's state engine as the original exposed it, with its `current` view."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __repr__(self) -> str:
        return f"OriginalStateEngine(agent_id={self._runtime.agent_id!r})"

    @property
    def current(self) -> dict[str, Any]:
        """The key/value state, with the last decision's event, action, risk and confidence."""
        state = self._runtime.state
        current: dict[str, Any] = dict(state.kv or {})
        if state.recent:
            last = state.recent[-1]
            current.update(
                last_event=last.event_type,
                last_action=last.action,
                last_risk=last.risk,
                last_confidence=last.confidence,
            )
        return current

    async def save_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        return await self._runtime.state_engine.save_state(state)

    async def patch_state(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self._runtime.state_engine.patch_state(patch)

    async def load_state(self) -> dict[str, Any] | None:
        return await self._runtime.state_engine.load_state()


class OriginalAPI:
    """The original Runtime's private names, as a mixin of Runtime."""

    __slots__ = ()

    @property
    def _recovery(self: Runtime) -> RecoveryEngine:  # type: ignore[misc]
        return self.recovery_engine

    @property
    def _context(self: Runtime) -> ContextEngine:  # type: ignore[misc]
        return self.context_engine

    @property
    def _confidence(self: Runtime) -> ConfidenceEngine:  # type: ignore[misc]
        return self.confidence_engine

    @property
    def _state(self: Runtime) -> OriginalStateEngine:  # type: ignore[misc]
        return OriginalStateEngine(self)

    @property
    def _decision(self: Runtime) -> DecisionEngine:  # type: ignore[misc]
        return self.decision_engine

    @_decision.setter
    def _decision(self: Runtime, engine: DecisionEngine) -> None:  # type: ignore[misc]
        """Change the custom rules to the engine's, journaled (applied at start() if not started)."""
        if not isinstance(engine, DecisionEngine):
            msg = f"_decision must be a DecisionEngine, not {type(engine).__name__}"
            raise ConfigurationError(msg)
        self._change_rules_soon(engine.custom_rules)
