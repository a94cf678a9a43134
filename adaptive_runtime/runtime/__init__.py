"""The imperative shell: the Runtime, its event bus and its journal worker."""

from __future__ import annotations

from .bus import ALL, EventBus
from .runtime import Runtime

__all__ = ["ALL", "EventBus", "Runtime"]
