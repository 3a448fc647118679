"""Data flows one way: geodata -> engine -> rpc. Checked on the source, not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORTOOLS_MODULES = [
    # the routing backend (engine.backends)
    "engine/backends/ortools_backend.py",
    # the screening model of depot layouts (capacitated facility location, OR-Tools' MIP
    # interface; used by engine/layouts.py): no routing, and nothing else of OR-Tools
    "engine/backends/ortools_facility.py",
]
PYVRP_MODULE = "engine/backends/pyvrp_backend.py"
PRODUCT = {"engine", "geodata", "rpc", "server.py"}
DASK_MODULE = "engine/dask_executor.py"


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


FORBIDDEN = {
    "geodata": {"engine", "rpc", "grpc", "grpc_health", "grpc_reflection", "grpc_status"},
    "engine": {"rpc", "grpc", "grpc_health", "grpc_reflection", "grpc_status"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_downstream(package):
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imported_modules(p) if top(m) in FORBIDDEN[package]
        )
        for p in (ROOT / package).rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{package} must not import {sorted(FORBIDDEN[package])}: {offenders}"


def test_only_the_ortools_modules_import_ortools():
    importers = sorted(
        str(p.relative_to(ROOT))
        for p in python_files()
        if any(top(m) == "ortools" for m in imported_modules(p))
    )
    assert importers == sorted(ORTOOLS_MODULES)


def test_the_facility_module_uses_only_the_mip_interface():
    """The screening model must not grow into a second routing backend."""
    used = {
        m
        for m in imported_modules(ROOT / "engine/backends/ortools_facility.py")
        if top(m) == "ortools"
    }
    assert used == {"ortools.linear_solver"}, used


def test_only_the_dask_executor_imports_dask():
    """In the server (engine, geodata, rpc); benchmarks and tests may use Dask freely."""
    importers = sorted(
        str(p.relative_to(ROOT))
        for p in python_files()
        if p.relative_to(ROOT).parts[0] in {"engine", "geodata", "rpc", "server.py"}
        and any(top(m) in {"dask", "distributed"} for m in imported_modules(p))
    )
    assert importers == [DASK_MODULE]


def test_the_checker_is_independent_of_engine_internals():
    allowed = {"engine.model", "engine.solution"}
    used = {m for m in imported_modules(ROOT / "tests" / "checker.py") if top(m) == "engine"}
    assert used <= allowed, used


def test_only_the_pyvrp_backend_imports_pyvrp_in_the_product():
    """benchmarks/ runs PyVRP as a peer; inside the product only the backend touches it."""
    product = [p for p in python_files() if p.relative_to(ROOT).parts[0] in PRODUCT]
    importers = sorted(
        str(p.relative_to(ROOT))
        for p in product
        if any(top(m) == "pyvrp" for m in imported_modules(p))
    )
    assert importers == [PYVRP_MODULE]
