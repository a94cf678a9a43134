"""Folds over the journal: the agent state, snapshots, rebuild, replay and time travel."""

from __future__ import annotations

from .agent import AgentState, DecisionSummary, evolve
from .rebuild import (
    STATE_VERSION,
    Rebuilt,
    SnapshotCheck,
    check_snapshots,
    decode_state,
    encode_state,
    rebuild,
    state_at,
)
from .replay import Mismatch, Redecided, ReplayReport, redecide, verify_replay, what_if

__all__ = [
    "STATE_VERSION",
    "AgentState",
    "DecisionSummary",
    "Mismatch",
    "Rebuilt",
    "Redecided",
    "ReplayReport",
    "SnapshotCheck",
    "check_snapshots",
    "decode_state",
    "encode_state",
    "evolve",
    "rebuild",
    "redecide",
    "state_at",
    "verify_replay",
    "what_if",
]
