"""The original project's tests run unchanged but for imports; back-off here uses manual time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adaptive_runtime.clock import ManualClock
from adaptive_runtime.engines import manual_time


@pytest.fixture(autouse=True)
def no_real_sleeps() -> Iterator[ManualClock]:
    """Engines built without a clock get a ManualClock: retries never sleep for real."""
    with manual_time() as clock:
        yield clock
