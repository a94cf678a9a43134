"""The imperative shell: the Host (many agents over one journal), the Runtime (one), the bus."""

from __future__ import annotations

from .actions import ActionCall, Verification
from .agent import Agent
from .bus import ALL, EventBus
from .host import Host
from .runtime import Runtime

__all__ = ["ALL", "ActionCall", "Agent", "EventBus", "Host", "Runtime", "Verification"]
