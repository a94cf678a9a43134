"""The imperative shell: the Runtime and its event bus."""

from __future__ import annotations

from .actions import ActionCall
from .bus import ALL, EventBus
from .runtime import Runtime

__all__ = ["ALL", "ActionCall", "EventBus", "Runtime"]
