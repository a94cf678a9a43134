"""Recovery: journaled checkpoints, and retrying a flaky call with back-off."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import msgspec

from .._awaiting import resolve
from .._checks import check_functions
from ..clock import Clock, ManualClock, SystemClock
from ..engines.backoff import RetryPolicy, after_failure
from ..engines.events import check_values
from ..errors import ConfigurationError
from ..records import CheckpointCreated, read_as, to_pending
from .ports import AsyncStore, Store, as_async_store

__all__ = ["CheckpointMeta", "RecoveryEngine", "manual_time"]

T = TypeVar("T")

_default_clock: ContextVar[Clock | None] = ContextVar(
    "adaptive_runtime_default_clock", default=None
)


@contextlib.contextmanager
def manual_time() -> Iterator[ManualClock]:
    """Test mode: engines built without a clock get a ManualClock, so back-off never sleeps."""
    clock = ManualClock()
    token = _default_clock.set(clock)
    try:
        yield clock
    finally:
        _default_clock.reset(token)


class CheckpointMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Where a checkpoint was journaled."""

    snapshot_id: int
    """The seq of its CheckpointCreated entry (the original project's name for it).

    A checkpoint is a journaled copy of the caller's state; it is not one of the
    runtime's own snapshots of its projection, which are caches kept beside the journal.
    """
    agent_id: str
    ts_ns: int


class RecoveryEngine:
    """Create and restore checkpoints, and retry calls with capped, jittered back-off."""

    __slots__ = ("_store", "agent_id", "clock", "policy")

    def __init__(
        self,
        store: Store | AsyncStore,
        agent_id: str,
        *,
        max_retries: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        jitter: float = 0.1,
        total_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = as_async_store(store)
        self.agent_id = agent_id
        self.policy = RetryPolicy(
            max_attempts=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            jitter=jitter,
            total_timeout=total_timeout,
        )
        self.clock = clock or _default_clock.get() or SystemClock()

    def __repr__(self) -> str:
        return f"RecoveryEngine(agent_id={self.agent_id!r}, policy={self.policy!r})"

    async def create_checkpoint(self, state: Mapping[str, Any]) -> CheckpointMeta:
        """Journal a copy of `state` that `restore_latest` gives back after a crash."""
        record = CheckpointCreated(state=check_values(state, what="checkpoint state"))
        [entry] = await self._store.append([to_pending(self.agent_id, record, self.clock.now_ns())])
        return CheckpointMeta(snapshot_id=entry.seq, agent_id=self.agent_id, ts_ns=entry.ts_ns)

    async def restore_latest(self) -> dict[str, Any] | None:
        """Return the newest checkpoint as {snapshot_id, ts_ns, state}, or None."""
        found = await self._store.latest(1, self.agent_id, kind="CheckpointCreated")
        if not found:
            return None
        record = read_as(found[0], CheckpointCreated)
        return {"snapshot_id": found[0].seq, "ts_ns": found[0].ts_ns, "state": dict(record.state)}

    async def retry(
        self,
        fn: Callable[[], Awaitable[T] | T],
        fallback: Callable[[], Awaitable[T] | T] | None = None,
        *,
        key: str | None = None,
        retry_on: Callable[[BaseException], bool] | None = None,
        policy: RetryPolicy | None = None,
        on_failure: Callable[[int, BaseException, float | None], Awaitable[None] | None]
        | None = None,
    ) -> T:
        """Call `fn` until it succeeds, waiting longer each time; then `fallback`, or re-raise.

        There is no wait after the last attempt. `retry_on` decides which errors are
        worth another try (default: any Exception). `key` seeds the jitter, so the same
        key always waits the same. `on_failure(attempt, error, next_delay)` is told of
        each failure; next_delay is None when no attempt follows.
        """
        if not callable(fn):  # else its call failed, and was retried, sleeps and all
            raise ConfigurationError(f"fn must be a function, not {type(fn).__name__}")
        check_functions(fallback=fallback, retry_on=retry_on, on_failure=on_failure)
        if policy is not None and not isinstance(policy, RetryPolicy):
            msg = (
                f"policy must be a RetryPolicy, e.g. RetryPolicy(...), not {type(policy).__name__}"
            )
            raise ConfigurationError(msg)
        rules = policy or self.policy
        jitter_key: str = key or str(getattr(fn, "__qualname__", "call"))
        started = self.clock.now_ns()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await resolve(fn())
            except Exception as exc:
                elapsed = (self.clock.now_ns() - started) / 1e9
                delay, _ = after_failure(
                    rules,
                    attempt,
                    elapsed,
                    jitter_key,
                    retryable=retry_on is None or retry_on(exc),
                )
                if on_failure is not None:
                    await resolve(on_failure(attempt, exc, delay))
                if delay is None:
                    if fallback is None:
                        raise
                    return await resolve(fallback())
                await self.clock.sleep(delay)
