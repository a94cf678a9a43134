"""The test command of a mutation run (pyproject.toml, [tool.mutmut]).

mutmut counts only exit code 1 as a mutant killed; a mutant that breaks an import stops
pytest at collection (exit 2) and would count as surviving. So every failure is 1 here.
"""

import sys

import pytest

TESTS = ["tests/unit", "tests/compat/test_original_engines.py"]

if __name__ == "__main__":
    code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *TESTS])
    sys.exit(0 if code == 0 else 1)
