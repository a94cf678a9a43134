"""A seeded fleet simulator with ground truth: how well the runtime decides, and learns.

`adaptive-runtime simulate SCENARIO` runs it; `load_scenario`, `run` and `summarise`
are the same steps as a library.
"""

from __future__ import annotations

from .metrics import Summary, summarise
from .run import POLICIES, Step, run
from .scenario import BUILTIN, Scenario, ScenarioError, load_scenario

__all__ = [
    "BUILTIN",
    "POLICIES",
    "Scenario",
    "ScenarioError",
    "Step",
    "Summary",
    "load_scenario",
    "run",
    "summarise",
]
