"""The original project's state and recovery engines: shell-side, over an asynchronous store.

They journal through a store (any Journal, or an agent's own), so they live outside the
pure engines. `adaptive_runtime.engines` still exports them under their original names.
"""

from __future__ import annotations

from .ports import AsyncStore, Store, as_async_store
from .recovery import CheckpointMeta, RecoveryEngine, manual_time
from .state import StateEngine

__all__ = [
    "AsyncStore",
    "CheckpointMeta",
    "RecoveryEngine",
    "StateEngine",
    "Store",
    "as_async_store",
    "manual_time",
]
