"""Log lines in the original project's format, and per-runtime metrics."""

from __future__ import annotations

from .logs import COMPONENTS, enable_console_logging, logger_for
from .metrics import Metrics

__all__ = ["COMPONENTS", "Metrics", "enable_console_logging", "logger_for"]
