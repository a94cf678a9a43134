"""Publish events to subscribers once their decisions are durable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, overload

from .._awaiting import resolve
from ..engines.reachable import near_event_type
from ..errors import ConfigurationError
from ..records import own_copy

__all__ = ["ALL", "EventBus", "Handler"]

log = logging.getLogger("adaptive_runtime.bus")

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
ALL = "*"
"""Subscribe to this to hear every event type."""


class EventBus:
    """Subscribers per event type, run as tasks after `process()` has returned its decision.

    `process()` does not wait for handlers: they run concurrently, each in its own
    task. A handler's exception is logged with its traceback and counted in
    `errors`; it never stops the other handlers. `drain()` waits for every handler
    still running (`Runtime.stop()` calls it).
    """

    __slots__ = ("_handlers", "_tasks", "delivered", "errors")

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.errors = 0

    def __repr__(self) -> str:
        count = sum(len(h) for h in self._handlers.values())
        return f"EventBus(handlers={count}, running={len(self._tasks)}, errors={self.errors})"

    @overload
    def subscribe(self, event_type: str = ALL) -> Callable[[Handler], Handler]: ...

    @overload
    def subscribe(self, event_type: Handler) -> Handler: ...

    def subscribe(self, event_type: str | Handler = ALL) -> Callable[[Handler], Handler] | Handler:
        """Decorate a handler (sync or async) to run for every event of `event_type`.

        `@bus.subscribe` without parentheses subscribes the handler to every type (it bound
        the handler's name to the decorator instead, and subscribed nothing).
        """
        if callable(event_type):
            self.add(ALL, event_type)
            return event_type
        if not isinstance(event_type, str) or not event_type:
            msg = f"subscribe takes an event type such as 'anomaly_detected' (or none), not {event_type!r}"
            raise ConfigurationError(msg)

        said = near_event_type(event_type, "its handler runs for none")
        if said is not None:  # a typo: the handler would wait for ever, in silence
            log.warning("a handler is subscribed to %s", said)

        def register(handler: Handler) -> Handler:
            self.add(event_type, handler)
            return handler

        return register

    def subscribe_all(self, handler: Handler) -> Handler:
        """Register a handler for every event type."""
        self.add(ALL, handler)
        return handler

    def add(self, event_type: str, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"a handler must be callable, not {type(handler).__name__}")
        self._handlers.setdefault(event_type, []).append(handler)

    def unsubscribe(self, handler: Handler, event_type: str | None = None) -> bool:
        """Remove a handler (from one type, or from all); return whether it was subscribed."""
        removed = False
        for kind, handlers in self._handlers.items():
            if event_type is not None and kind != event_type:
                continue
            while handler in handlers:
                handlers.remove(handler)
                removed = True
        return removed

    def listens(self, event_type: str) -> bool:
        """Whether any handler would hear an event of this type (so the caller can skip work)."""
        return bool(self._handlers.get(event_type) or self._handlers.get(ALL))

    def publish(self, event_type: str, event: dict[str, Any]) -> int:
        """Start every matching handler as a task; return how many were started."""
        handlers = [*self._handlers.get(event_type, ()), *self._handlers.get(ALL, ())]
        for handler in handlers:
            task = asyncio.get_running_loop().create_task(
                self._run(handler, event_type, own_copy(event))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(handlers)

    def handler_here(self) -> bool:
        """Whether this task is one of the handlers running."""
        task = asyncio.current_task()
        return task is not None and task in self._tasks

    async def drain(self) -> None:
        """Wait until every handler started so far has finished (cancelling this wait cancels none).

        Awaited inside a handler it would wait for that handler: ConfigurationError.
        """
        if self.handler_here():
            raise ConfigurationError(
                "drain() was awaited inside an event handler: it waits for every handler"
                " running, that one too, so it would wait for ever"
            )
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _run(self, handler: Handler, event_type: str, event: dict[str, Any]) -> None:
        try:
            await resolve(handler(event))
            self.delivered += 1
        except Exception:
            self.errors += 1
            name = getattr(handler, "__qualname__", repr(handler))
            log.exception("event handler %s failed on a %s event", name, event_type)
