"""A trading-bot domain pack for Adaptive Runtime: its events, its rules and its actions.

Enable it with `Host(..., plugins=["trading"])` (or `--plugins trading`).
"""

from __future__ import annotations

from adaptive_runtime import Event, RetryPolicy
from adaptive_runtime.engines.context import ContextOverride

__all__ = ["RULES", "classify", "register"]

# What the bot's events mean. Losing the VPS or the broker is critical whatever the
# load looks like; a stop-loss hit is high. Everything else is left to the built-in map.
_MEANINGS = {
    "vps_disconnect": ("trading_infrastructure", "critical"),
    "broker_disconnect": ("trading_infrastructure", "high"),
    "stop_loss_hit": ("trading_position", "high"),
    "take_profit_hit": ("trading_position", "low"),
    "price_update": ("trading_market_data", None),
}


def classify(event: Event) -> ContextOverride | None:
    """Map a trading event to its context (and risk); None for events it does not know."""
    meaning = _MEANINGS.get(event.type)
    if meaning is None:
        return None
    context, risk = meaning
    tags = ("trading",) if event.attrs.get("symbol") is None else ("trading", "position_open")
    return ContextOverride(context=context, risk=risk, tags=tags)


RULES = [
    ("trading_infrastructure", "critical", 0.0, "emergency_save_state", "vps_connection_lost"),
    ("trading_infrastructure", "high", 0.0, "reconnect_broker", "broker_connection_lost"),
    ("trading_position", "high", 0.0, "close_position", "stop_loss_triggered"),
    ("trading_position", None, 0.0, "log_trade", "position_event"),
    ("trading_market_data", None, 0.0, "log_telemetry", "market_data"),
]


def register(host: object) -> None:
    """Register the pack's action handlers on a host."""

    @host.action("emergency_save_state", retry=RetryPolicy(max_attempts=2, base_delay=0.5))  # type: ignore[attr-defined]
    async def emergency_save_state(call: object) -> None:
        # a real bot would flush its open orders and positions to durable storage here
        return None
