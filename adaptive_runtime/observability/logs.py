"""Log lines like `[16:08:13][CONTEXT_ENGINE] risk=high stability=low pressure=0.65`.

Everything goes through stdlib logging under the `adaptive_runtime` logger, which
has only a NullHandler: a library is silent until its user configures logging.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["COMPONENTS", "ComponentFormatter", "enable_console_logging", "logger_for"]

COMPONENTS = (
    "RUNTIME",
    "CONTEXT_ENGINE",
    "CONFIDENCE_ENGINE",
    "DECISION_ENGINE",
    "STATE_ENGINE",
    "RECOVERY_ENGINE",
    "EVENT_BUS",
)

ROOT = logging.getLogger("adaptive_runtime")
ROOT.addHandler(logging.NullHandler())


def logger_for(component: str) -> logging.Logger:
    """Return the logger of one component, e.g. `adaptive_runtime.CONTEXT_ENGINE`."""
    return logging.getLogger(f"adaptive_runtime.{component}")


class ComponentFormatter(logging.Formatter):
    """Format a record as [HH:MM:SS][COMPONENT] message."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        component = record.name.rpartition(".")[2].upper()
        text = f"[{self.formatTime(record, self.datefmt)}][{component}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def enable_console_logging(
    level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Show the runtime's log lines on a stream (stderr by default); return the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ComponentFormatter())
    ROOT.addHandler(handler)
    ROOT.setLevel(level)
    return handler
