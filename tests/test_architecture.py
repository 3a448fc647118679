"""The rooms and their one-way data flow, checked on the source, not by convention.

geodata -> engine -> (planning, runtime) -> rpc -> studio -> cli. A room imports only the rooms
below it; only the backend modules import a solver library; only the Dask executor imports Dask;
the engine never imports gRPC.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORTOOLS_MODULES = [
    # the routing backend
    "engine/backends/ortools.py",
    # the screening model of depot layouts (capacitated facility location, OR-Tools' MIP
    # interface): no routing, and nothing else of OR-Tools
    "planning/backends/ortools_mip.py",
]
PYVRP_PACKAGE = "engine/backends/pyvrp"
ROOMS = ("geodata", "engine", "planning", "runtime", "rpc", "studio", "cli")
PRODUCT = {*ROOMS, "server.py"}
DASK_MODULE = "runtime/dask_executor.py"
GRPC = {"grpc", "grpc_health", "grpc_reflection", "grpc_status"}

# What each room may import of the product (besides itself). Anything else of the product is
# forbidden, and so are the third-party packages in FORBIDDEN_THIRD_PARTY.
ALLOWED = {
    "geodata": set(),
    "engine": {"geodata"},
    "planning": {"geodata", "engine"},
    "runtime": {"geodata", "engine"},
    "rpc": {"geodata", "engine", "planning", "runtime"},
    "studio": {"geodata", "engine", "planning", "runtime", "rpc"},
    "cli": {"geodata", "engine", "planning", "runtime", "rpc", "studio"},
}
FORBIDDEN_THIRD_PARTY = {
    "geodata": GRPC | {"dask", "distributed", "ortools", "pyvrp"},
    "engine": GRPC | {"dask", "distributed"},
    "planning": GRPC | {"dask", "distributed"},
    "runtime": GRPC,
    "rpc": set(),
    "studio": set(),
    "cli": set(),
}


def python_files() -> list[Path]:
    skip = {".venv", "build", "pb", "__pycache__"}
    return sorted(p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def top(name: str) -> str:
    return name.split(".")[0]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_relative_imports_are_not_used():
    """Absolute imports only, so the checks below see every import."""
    offenders = [
        relative(p)
        for p in python_files()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not offenders


@pytest.mark.parametrize("room", ROOMS)
def test_room_imports_only_the_rooms_below_it(room):
    forbidden = (set(ROOMS) - ALLOWED[room] - {room}) | FORBIDDEN_THIRD_PARTY[room] | {"server"}
    offenders = {
        relative(p): sorted(m for m in imported_modules(p) if top(m) in forbidden)
        for p in (ROOT / room).rglob("*.py")
        if "pb" not in p.relative_to(ROOT).parts
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{room} must not import {sorted(forbidden)}: {offenders}"


def test_the_rooms_are_the_packages_of_the_distribution():
    """Every room is a package that pyproject.toml installs and mypy checks (strict)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = config["tool"]["setuptools"]["packages"]["find"]["include"]
    mypy = config["tool"]["mypy"]
    assert mypy["strict"] is True
    for room in ROOMS:
        assert (ROOT / room / "__init__.py").is_file(), room
        assert f"{room}*" in installed, f"{room} is not installed"
        assert room in mypy["packages"], f"mypy does not check {room}"


def test_only_the_ortools_modules_import_ortools():
    importers = sorted(
        relative(p) for p in python_files() if any(top(m) == "ortools" for m in imported_modules(p))
    )
    assert importers == sorted(ORTOOLS_MODULES)


def test_the_facility_module_uses_only_the_mip_interface():
    """The screening model must not grow into a second routing backend."""
    used = {
        m
        for m in imported_modules(ROOT / "planning/backends/ortools_mip.py")
        if top(m) == "ortools"
    }
    assert used == {"ortools.linear_solver"}, used


def test_only_the_dask_executor_imports_dask():
    """In the product; benchmarks and tests may use Dask freely."""
    importers = sorted(
        relative(p)
        for p in python_files()
        if p.relative_to(ROOT).parts[0] in PRODUCT
        and any(top(m) in {"dask", "distributed"} for m in imported_modules(p))
    )
    assert importers == [DASK_MODULE]


def test_the_checker_is_independent_of_engine_internals():
    allowed = {"engine.model", "engine.solution"}
    used = {m for m in imported_modules(ROOT / "tests" / "checker.py") if top(m) == "engine"}
    assert used <= allowed, used


def test_only_the_pyvrp_backend_imports_pyvrp_in_the_product():
    """benchmarks/ runs PyVRP as a peer; inside the product only the backend package touches it."""
    product = [p for p in python_files() if p.relative_to(ROOT).parts[0] in PRODUCT]
    importers = [
        relative(p) for p in product if any(top(m) == "pyvrp" for m in imported_modules(p))
    ]
    assert importers, "the PyVRP backend imports pyvrp"
    assert all(path.startswith(PYVRP_PACKAGE + "/") for path in importers), importers


def test_tests_mirror_the_rooms():
    """Tests of a room live in tests/<room>/; shared helpers and cross-room tests stay on top."""
    for room in ("geodata", "engine", "planning", "runtime", "rpc", "studio"):
        assert list((ROOT / "tests" / room).glob("test_*.py")), room
