"""Guards on the shape of the package: who imports what, and what is public."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "adaptive_runtime"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, resolved to absolute dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]  # a module and an __init__ both resolve relative to their folder
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
    return found


def modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_journal_imports_apsw(path: Path) -> None:
    """apsw stays behind the journal boundary."""
    if "journal" in path.relative_to(PACKAGE).parts:
        return
    assert not any(name == "apsw" or name.startswith("apsw.") for name in imports_of(path))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_optional_dependency_has_one_importer(path: Path) -> None:
    """psycopg only in the PostgreSQL journal, matplotlib only in plots.py, the web stack
    (litestar, uvicorn, prometheus_client) only in the service package."""
    names = imports_of(path)
    where = str(path.relative_to(PACKAGE))
    if where != "journal/postgres.py":
        assert not any(n.split(".")[0] in ("psycopg", "psycopg_pool") for n in names), names
    if where != "plots.py":
        assert not any(n.split(".")[0] == "matplotlib" for n in names), names
    if where != "notify.py":
        assert not any(n.split(".")[0] == "apprise" for n in names), names
    if not where.startswith("service/"):
        web = ("litestar", "uvicorn", "prometheus_client", "starlette")
        assert not any(n.split(".")[0] in web for n in names), names


def test_nothing_outside_the_service_imports_it() -> None:
    """The service is a face: the library, the engines and the journal never import it (the
    command line's `serve` loads it when run)."""
    for path in modules():
        where = str(path.relative_to(PACKAGE))
        if where.startswith("service/") or where == "cli.py":
            continue
        assert not any(n.startswith("adaptive_runtime.service") for n in imports_of(path)), where


@pytest.mark.parametrize("path", modules("engines"), ids=lambda p: p.name)
def test_engines_know_nothing_of_storage_or_wall_time(path: Path) -> None:
    """Engines import no journal, no projection, no runtime, and no clock or randomness of their own."""
    for name in imports_of(path):
        assert not name.startswith(
            ("adaptive_runtime.journal", "adaptive_runtime.projections", "adaptive_runtime.runtime")
        ), name
        assert name not in ("time", "datetime", "random", "apsw", "sqlite3"), name


@pytest.mark.parametrize("path", modules("projections"), ids=lambda p: p.name)
def test_projections_read_no_clock(path: Path) -> None:
    """Folds depend on entries only."""
    assert not imports_of(path) & {"time", "datetime", "random"}


def test_import_pulls_in_only_the_core_dependencies() -> None:
    """`import adaptive_runtime` loads msgspec and apsw and no other third-party package."""
    code = "import sys, adaptive_runtime; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    top = {name.split(".")[0] for name in loaded}
    ours = {"adaptive_runtime", "__main__", "_distutils_hack"}
    third_party = {
        n for n in top - set(sys.stdlib_module_names) - ours if not n.startswith("__editable__")
    }
    # typing_extensions comes with msgspec
    assert {"msgspec", "apsw", "typing_extensions"} >= third_party, third_party


def test_a_runtime_without_plugins_reads_no_entry_points(tmp_path: Path) -> None:
    """start() imported the plugin loader, and with it importlib.metadata (about 4 MB
    resident), in every process; only a host that names or journaled plugins needs it."""
    code = (
        "import asyncio, sys\n"
        "from adaptive_runtime import Runtime\n"
        "before = set(sys.modules)\n"
        "async def main():\n"
        "    async with Runtime(agent_id='a', path=sys.argv[1]) as runtime:\n"
        "        await runtime.process({'type': 'timeout'})\n"
        "asyncio.run(main())\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "j.db")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "adaptive_runtime.plugins" not in loaded
    assert "importlib.metadata" not in loaded


@pytest.mark.parametrize(
    "name",
    [
        "adaptive_runtime",
        "adaptive_runtime.journal",
        "adaptive_runtime.engines",
        "adaptive_runtime.projections",
        "adaptive_runtime.runtime",
    ],
)
def test_public_exports_are_real(name: str) -> None:
    """Every name in each package's __all__ exists (ruff's RUF022 keeps __all__ sorted)."""
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    for export in module.__all__:
        assert hasattr(module, export), export


IO_MODULES = {
    "asyncio",
    "contextvars",
    "io",
    "json",
    "os",
    "pathlib",
    "shutil",
    "socket",
    "sqlite3",
    "subprocess",
    "tempfile",
    "threading",
    "tomllib",
    "urllib",
}


@pytest.mark.parametrize("path", modules("engines"), ids=lambda p: p.name)
def test_the_pure_engines_do_no_io(path: Path) -> None:
    """No file, network, process or event-loop module; no open(), no coroutine, no await."""
    names = imports_of(path)
    allowed = {"importlib"} if path.name == "__init__.py" else set()  # lazy names, see there
    assert not {n.split(".")[0] for n in names} & (IO_MODULES - allowed), names
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), (path.name, node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("open", "input", "print", "exec", "eval"), (
                path.name,
                node.lineno,
            )
